"""The whole path on a real cluster: images, chart, a training job to Succeeded, then the
operator-integration suite (hack/kind-e2e.sh). Opt-in: it takes tens of minutes and needs Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(3600)
def test_kind_end_to_end():
    if os.environ.get("DEEPTRAIN_E2E") != "1":
        pytest.skip("opt-in: DEEPTRAIN_E2E=1 pytest -m e2e (builds images and a kind cluster)")
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine is reachable")
    subprocess.run(["bash", "hack/kind-e2e.sh"], cwd=ROOT, check=True)
