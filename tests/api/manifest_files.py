"""Where the test manifests live, and how to read them."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
INVALID = REPO / "tests" / "manifests" / "invalid"
VALID_FILES = sorted(p for p in FIXTURES.glob("*.yaml") if p.name != "immutable-edit-while-running.yaml")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def expected_field(path: Path) -> str:
    """Each broken manifest names, in an `# expect: FIELD` comment, the field it must be rejected at."""
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{path.name} has no '# expect: FIELD' comment")


def expected_apiserver_fields(path: Path) -> list[str]:
    """The fields the apiserver's errors name: `# apiserver field: F` where it differs from `# expect:`
    (`<nil>` is a root rule's error, the empty path; `none`: the apiserver admits it)."""
    for line in path.read_text().splitlines():
        if line.startswith("# apiserver field:"):
            field = line.split(":", 1)[1].split()[0]
            return [] if field == "none" else ["" if field == "<nil>" else field]
    return [expected_field(path)]


def minimal_job() -> dict:
    """The smallest valid DeepTrainingJob, with identity fields as the apiserver would set them."""
    return {
        "apiVersion": "deeptrain.dev/v1alpha1",
        "kind": "DeepTrainingJob",
        "metadata": {"name": "shoes", "namespace": "team-a", "uid": "u-1", "generation": 2},
        "spec": {
            "modelType": "visual-classifier",
            "template": "ResNext",
            "dataset": {"uri": "pvc://datasets/shoes", "format": "imagefolder"},
            "output": {"uri": "pvc://models/shoes"},
        },
    }
