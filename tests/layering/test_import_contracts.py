"""The import contract (.importlinter): it holds for the tree, and it breaks when a forbidden import is added.

Each case copies the four source roots and the contract into a scratch directory, adds one import to a
package's __init__, and runs lint-imports there with only the copy importable.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = {"deeptrain_api": "api", "deeptrain_operator": "operator", "deeptrain_trainer": "trainer",
                "deeptrain_cli": "cli"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contract_name(contract: str) -> str:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    return config[f"importlinter:contract:{contract}"]["name"]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    for package, root in SOURCE_ROOTS.items():
        shutil.copytree(ROOT / root / package, tmp_path / root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the project's own (editable) install.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(tree / root) for root in SOURCE_ROOTS.values()),
           "COLUMNS": "250"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=180)


def test_the_tree_keeps_every_contract(scratch: Path):
    result = lint_imports(scratch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("package", "line", "contract"), [
    ("deeptrain_trainer", "import deeptrain_operator.constants", "sides"),
    ("deeptrain_operator", "from deeptrain_trainer import launcher", "sides"),
    ("deeptrain_api", "import deeptrain_operator", "layers"),
    ("deeptrain_operator", "import deeptrain_cli", "layers"),
    ("deeptrain_api", "import torch", "api-runtime-free"),
    ("deeptrain_api", "import kopf", "api-runtime-free"),
    ("deeptrain_operator", "import torch", "operator-torch-free"),
], ids=lambda value: value.replace(" ", "-") if isinstance(value, str) else value)
def test_a_forbidden_import_breaks_its_contract(scratch: Path, package: str, line: str, contract: str):
    init = scratch / SOURCE_ROOTS[package] / package / "__init__.py"
    init.write_text(init.read_text() + f"\n{line}  # forbidden on purpose\n")
    result = lint_imports(scratch)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"{contract_name(contract)} BROKEN" in output, output
