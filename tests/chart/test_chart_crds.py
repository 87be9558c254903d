"""The chart installs the very CRDs the operator is built against."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from chartlib import CHART, ROOT  # noqa: E402

REPOSITORY_CRDS = ROOT / "crds"
CHART_CRDS = CHART / "crds"


def test_chart_crds_equal_the_repository_crds():
    repository = {p.name: p.read_bytes() for p in REPOSITORY_CRDS.glob("*.yaml")}
    if not repository:
        pytest.skip("crds/ holds no generated CRDs yet (`make crds` writes them)")
    chart = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    assert sorted(chart) == sorted(repository), "copy them: cp crds/*.yaml charts/deeptrain-operator/crds/"
    stale = [name for name in repository if chart[name] != repository[name]]
    assert not stale, f"stale chart CRDs {stale}: cp crds/*.yaml charts/deeptrain-operator/crds/"


def test_chart_crds_define_both_kinds():
    kinds = set()
    for path in CHART_CRDS.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] == "CustomResourceDefinition", path.name
                kinds.add((doc["spec"]["group"], doc["spec"]["names"]["kind"]))
    assert kinds == {("deeptrain.dev", "DeepTrainingJob"), ("deeptrain.dev", "Workflow")}


def test_chart_templates_hold_no_crd():
    # Helm would then upgrade or delete CRDs with the release, deleting every job with them.
    for path in (CHART / "templates").iterdir():
        assert "kind: CustomResourceDefinition" not in path.read_text(), path.name
