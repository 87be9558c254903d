"""The README's reference and examples stay true to the code."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from deeptrain_api.common import GROUP
from deeptrain_cli.reference import BEGIN_MARKER, END_MARKER, catalog_markdown

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


def test_readme_catalog_is_generated_from_the_catalog():
    readme = (ROOT / "README.md").read_text()
    embedded = readme[readme.index(BEGIN_MARKER) + len(BEGIN_MARKER):readme.index(END_MARKER)]
    assert embedded.strip() == catalog_markdown().strip(), (
        "README.md's catalog block is stale: replace it with the output of `deeptrain catalog`")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_kubernetes_objects_examples_bring_along_are_valid(path: Path):
    """PVCs and data Jobs; the deeptrain objects are checked by `deeptrain validate` (tests/cli)."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and not doc["apiVersion"].startswith(f"{GROUP}/"):
            kubernetes_validate.validate(doc, "1.30", strict=True)


def test_every_example_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [str(path.relative_to(ROOT)) for path in EXAMPLES if str(path.relative_to(ROOT)) not in readme]
    assert not missing, f"README.md does not mention {missing}"
