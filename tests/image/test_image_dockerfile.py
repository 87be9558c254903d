"""The Dockerfile builds what the chart and the operator expect: two non-root targets whose
entrypoints exist, a build context that holds every COPY source, and an operator image that
works without the trainer's dependencies (torch above all).

No Docker engine is needed: the Dockerfile is parsed, and the operator image's Python environment
is emulated by hiding every installed module the `[operator]` install would not bring.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as metadata
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
TARGETS = ("operator", "trainer")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their (INSTRUCTION, arguments) pairs; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation line"

    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(name=name, base=words[0]))
        elif stages:
            stages[-1].instructions.append((instruction, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    parsed = parse_dockerfile(DOCKERFILE.read_text())
    return {stage.name: stage for stage in parsed if stage.name}


def copy_sources(args: str) -> tuple[list[str], dict[str, str]]:
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    if words and words[0].startswith("["):
        words = json.loads(args[args.index("[") :])
    return words[:-1], flags


def dockerignore_excludes(relative: str) -> bool:
    """Docker's .dockerignore semantics for the patterns this repository uses: the last match wins,
    `!` re-includes, a directory pattern covers everything below it."""
    path = ROOT / ".dockerignore"
    if not path.exists():
        return False
    excluded = False
    parts = relative.strip("/").split("/")
    for raw in path.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            tail = pattern[3:]
            hit = any(fnmatch.fnmatchcase(part, tail) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            excluded = not negate
    return excluded


def test_both_targets_exist(stages):
    assert set(TARGETS) <= set(stages), f"Dockerfile stages: {sorted(stages)}"


def test_every_copy_source_is_in_the_build_context(stages):
    checked = 0
    for stage in stages.values():
        for instruction, args in stage.instructions:
            if instruction not in ("COPY", "ADD"):
                continue
            sources, flags = copy_sources(args)
            if "from" in flags:
                assert flags["from"] in stages, f"COPY --from={flags['from']}: no such stage"
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"{instruction} {source}: not in the repository"
                assert not dockerignore_excludes(source), f"{instruction} {source}: excluded by .dockerignore"
                checked += 1
    assert checked, "no COPY from the build context found"


def test_dockerignore_keeps_local_state_out_of_the_context():
    for local in (".venv", ".git", ".tools", "runs", "data", "tests", "operator/deeptrain_operator/__pycache__"):
        assert dockerignore_excludes(local), f"{local} would be sent to the daemon"


def stage_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and the named stages it builds FROM, innermost last."""
    chain = [stages[target]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


@pytest.mark.parametrize("target", TARGETS)
def test_target_runs_as_numeric_non_root_user(stages, target):
    users = [args for stage in stage_chain(stages, target) for instr, args in stage.instructions if instr == "USER"]
    assert users, f"{target}: no USER, the image would run as the base image's root"
    user = users[0]  # the chain is innermost last, so the first USER found is the effective one
    uid, _, gid = user.partition(":")
    # Numeric, because the kubelet refuses runAsNonRoot for a named user it cannot resolve.
    assert uid.isdigit(), f"{target}: USER {user} is not numeric"
    assert int(uid) != 0 and (not gid or int(gid) != 0), f"{target}: USER {user} is root"
    assert int(uid) == 1000, f"{target}: USER {user}, but the chart and the operator assume uid 1000"


def exec_form(stage: Stage) -> list[str]:
    words: list[str] = []
    for instruction in ("ENTRYPOINT", "CMD"):
        for instr, args in stage.instructions:
            if instr == instruction:
                assert args.startswith("["), f"{instr} {args}: use the exec form so signals reach the process"
                words += json.loads(args)
    return words


@pytest.mark.parametrize("target", TARGETS)
def test_entrypoint_module_is_importable(stages, target):
    command = exec_form(stages[target])
    assert "-m" in command, f"{target}: expected `python -m`/`torchrun -m`, got {command}"
    module = command[command.index("-m") + 1]
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{target}: module {module} does not exist"
    if spec.submodule_search_locations is not None:  # a package runs through its __main__
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{target}: `-m {module}` has no __main__"


def test_operator_target_installs_only_the_operator_extra(stages):
    installs = " ".join(args for instr, args in stages["operator"].instructions if instr == "RUN")
    extras = set(re.findall(r"\.whl\)?\[([a-z,]+)\]", installs))
    assert extras == {"operator"}, f"operator image installs extras {extras}"
    assert "torch" not in installs


def test_trainer_target_pins_torch(stages):
    trainer = stages["trainer"]
    args = dict(a.split("=", 1) for i, a in trainer.instructions if i == "ARG" and "=" in a)
    assert args.get("TORCH_VERSION") == "2.13.0"
    runs = " ".join(a for i, a in trainer.instructions if i == "RUN")
    assert '"torch==${TORCH_VERSION}"' in runs
    # torch first: the trainer extra then finds its torch range satisfied and installs no other build.
    assert runs.index("torch==") < runs.index("[trainer")


# --- the operator image's Python environment, emulated -------------------------------------------


def operator_image_distributions() -> set[str]:
    """Distributions `pip install .[operator]` brings: the project's own requirements (read from
    pyproject.toml) and, transitively, what the installed distributions require."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["operator"]]
    seen = {canonicalize_name(project["name"])}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            child = Requirement(spec)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in ("", *requirement.extras)):
                pending.append(child)
    return seen


IMPORT_EVERY_MODULE = """
import importlib, importlib.abc, importlib.util, pkgutil, sys, traceback
packages, hidden = sys.argv[1].split(","), set(sys.argv[2].split(","))

class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this image)", name=name)
        return None

sys.meta_path.insert(0, NotInTheImage())
# Libraries that probe for optional packages (importlib.util.find_spec) see them as absent.
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: (
    None if name.partition(".")[0] in hidden else real_find_spec(name, package))
failed = 0
for package in packages:
    root = importlib.import_module(package)
    for name in [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]:
        if name.rpartition(".")[2] == "__main__":  # running it would start the program
            continue
        try:
            importlib.import_module(name)
        except Exception:
            failed += 1
            print(f"--- {name}", file=sys.stderr)
            traceback.print_exc()
sys.exit(1 if failed else 0)
"""


def import_every_module(packages: list[str], hidden: list[str]) -> subprocess.CompletedProcess[str]:
    """Import every module of `packages` in a fresh interpreter in which the `hidden` top-level modules
    do not exist: what an image without them would do at start-up and at run time."""
    return subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE, ",".join(packages), ",".join(hidden)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_operator_imports_with_only_the_operator_image_dependencies():
    allowed = operator_image_distributions()
    assert "kopf" in allowed and "torch" not in allowed
    hidden = sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in allowed for d in dists) and module.isidentifier()
    )
    assert "torch" in hidden, "torch is not installed here, so hiding it proves nothing"
    result = import_every_module(["deeptrain_operator", "deeptrain_cli"], hidden)
    assert result.returncode == 0, result.stderr[-6000:]
