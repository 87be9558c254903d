"""Each image installs a wheel of the API layer and its own side: the operator image never carries the
trainer, the trainer image never carries the operator, and the `deeptrain` command resolves in both.

No Docker engine: each wheel stage's COPY sources are copied into a scratch directory and built there.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_image_dockerfile import DOCKERFILE, ROOT, copy_sources, import_every_module, parse_dockerfile  # noqa: E402

# image target -> (the stage that builds its wheel, the import packages that wheel holds)
IMAGES = {
    "operator": ("operator-wheel", {"deeptrain_api", "deeptrain_operator", "deeptrain_cli"}),
    "trainer": ("trainer-wheel", {"deeptrain_api", "deeptrain_trainer", "deeptrain_cli"}),
}


@pytest.fixture(scope="module")
def stages():
    return {stage.name: stage for stage in parse_dockerfile(DOCKERFILE.read_text()) if stage.name}


@pytest.mark.parametrize("target", IMAGES)
def test_each_image_installs_its_own_wheel(stages, target):
    sources = {flags.get("from") for instr, args in stages[target].instructions if instr == "COPY"
               for _, flags in [copy_sources(args)]}
    assert sources == {IMAGES[target][0]}, f"{target} copies from {sources}"


def build_wheel(stage, workdir: Path) -> zipfile.ZipFile:
    context = workdir / "context"
    for instruction, args in stage.instructions:
        if instruction != "COPY":
            continue
        sources, flags = copy_sources(args)
        assert "from" not in flags, f"{stage.name}: expected only build-context COPYs"
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                (context / source).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, context / source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(workdir / "wheels"), str(context)],
                   check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (workdir / "wheels").glob("*.whl")
    return zipfile.ZipFile(wheel)


@pytest.mark.parametrize("target", IMAGES)
def test_the_wheel_holds_the_api_layer_and_its_own_side(stages, target, tmp_path):
    stage_name, expected = IMAGES[target]
    wheel = build_wheel(stages[stage_name], tmp_path)
    names = wheel.namelist()
    packages = {name.split("/")[0] for name in names if name.count("/") == 1 and name.endswith("/__init__.py")}
    assert packages == expected, f"{target} image would hold {sorted(packages)}"
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode())
    module = entry_points["console_scripts"]["deeptrain"].partition(":")[0]
    assert module.replace(".", "/") + ".py" in names or module.replace(".", "/") + "/__init__.py" in names, \
        f"`deeptrain` runs {module}, which the {target} image does not hold"


@pytest.mark.parametrize("target", IMAGES)
def test_every_module_of_the_image_imports_without_the_other_side(target):
    """What the import contract cannot see (imports by name at run time) fails here."""
    packages = sorted(IMAGES[target][1])
    other_side = sorted({package for _, held in IMAGES.values() for package in held} - set(packages))
    result = import_every_module(packages, other_side)
    assert result.returncode == 0, result.stderr[-6000:]
