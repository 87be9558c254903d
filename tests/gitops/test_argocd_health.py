"""Argo CD health checks for DeepTrainingJob and Workflow: every fixture of health_test.yaml gives
the expected status and message when its health.lua runs as Argo CD runs it (Lua 5.1, only the
base and table libraries, `obj` set to the live object)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51", reason="no Lua 5.1 runtime: install the dev extra (lupa)")

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "gitops" / "argocd"
HEALTH = ARGOCD / "health" / "deeptrain.dev"
KINDS = ("DeepTrainingJob", "Workflow")
ARGO_HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# Argo CD opens package, base, table and a reduced os for argocd-cm scripts (no string, math, io,
# debug); strings then have no methods either.
SANDBOX = """
debug.setmetatable("", nil)
string, math, io, os, debug, coroutine = nil, nil, nil, nil, nil, nil
"""


def cases(kind: str) -> list[tuple[str, str, dict, dict]]:
    """(kind, inputPath, expected healthStatus, object) for each test of the kind's health_test.yaml."""
    spec = yaml.safe_load((HEALTH / kind / "health_test.yaml").read_text())
    return [(kind, test["inputPath"], test["healthStatus"], yaml.safe_load((HEALTH / kind / test["inputPath"]).read_text()))
            for test in spec["tests"]]


def run_health(script: str, obj: dict) -> dict:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.execute(SANDBOX)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    assert lua51.lua_type(result) == "table", f"health.lua returned {result!r}, Argo CD wants a table"
    return dict(result)


ALL_CASES = [case for kind in KINDS for case in cases(kind)]


@pytest.mark.parametrize("case", ALL_CASES, ids=[f"{kind}/{Path(path).stem}" for kind, path, _, _ in ALL_CASES])
def test_fixture_health(case):
    kind, _, expected, obj = case
    assert obj["kind"] == kind
    assert expected["status"] in ARGO_HEALTH_STATUSES
    actual = run_health((HEALTH / kind / "health.lua").read_text(), obj)
    assert actual == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_fixture_is_listed(kind):
    listed = {test["inputPath"] for test in yaml.safe_load((HEALTH / kind / "health_test.yaml").read_text())["tests"]}
    on_disk = {f"testdata/{p.name}" for p in (HEALTH / kind / "testdata").glob("*.yaml")}
    assert listed == on_disk


def test_sandbox_is_as_strict_as_argo_cd():
    with pytest.raises(lua51.LuaError):
        run_health('return {status = string.upper("healthy")}', {"metadata": {}})
    with pytest.raises(lua51.LuaError):
        run_health('return {status = ("healthy"):upper()}', {"metadata": {}})


def test_every_job_condition_and_phase_has_a_fixture():
    from deeptrain_operator import constants
    fixtures = [obj for kind, _, _, obj in ALL_CASES if kind == "DeepTrainingJob"]
    true_conditions = {c["type"] for obj in fixtures for c in obj.get("status", {}).get("conditions", []) if c["status"] == "True"}
    phases = {obj["status"]["phase"] for obj in fixtures if "phase" in obj.get("status", {})}
    assert set(constants.CONDITION_TYPES) <= true_conditions, "a condition the operator sets has no health fixture"
    assert set(constants.PHASES) <= phases


def test_fixtures_are_objects_the_api_admits():
    # Fixtures shaped like nothing the operator writes would test nothing.
    from deeptrain_api import manifests
    for _, _, _, obj in ALL_CASES:
        manifests.admit(copy.deepcopy(obj))


def test_argocd_cm_patch_installs_both_scripts():
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    expected = {f"resource.customizations.health.deeptrain.dev_{kind}": (HEALTH / kind / "health.lua").read_text()
                for kind in KINDS}
    assert patch["data"] == expected, "argocd-cm-patch.yaml is out of date with health/*/health.lua"
