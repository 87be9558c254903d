"""`deeptrain validate`: one line naming the field for each broken manifest, exit 0 for each example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deeptrain_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
BROKEN = sorted((ROOT / "tests" / "manifests" / "invalid").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


def expected_field(path: Path) -> str:
    match = re.search(r"^# expect: (\S+)", path.read_text(), re.MULTILINE)
    assert match, f"{path.name} has no '# expect: <field>' line"
    return match.group(1)


@pytest.mark.parametrize("path", BROKEN, ids=lambda path: path.stem)
def test_a_broken_manifest_gets_one_line_naming_its_field(path: Path):
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f": {expected_field(path)}" in lines[0], lines[0]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_example_validates(path: Path):
    if "deeptrain.dev/" not in path.read_text():
        pytest.skip("plain Kubernetes objects (kubernetes-validate checks them in tests/docs)")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
