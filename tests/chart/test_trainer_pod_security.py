"""The trainer pods the operator creates are admitted in a namespace that enforces the restricted
Pod Security profile, and run as the user the trainer image and the chart agree on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "image"))

from chartlib import CHART  # noqa: E402
from operator_objects import JOBS, trainer_job  # noqa: E402
from pss import pod_template, restricted_violations  # noqa: E402


@pytest.mark.parametrize("document", JOBS.values(), ids=JOBS.keys())
def test_trainer_pod_meets_the_restricted_profile(document):
    job = trainer_job(document)
    assert job["kind"] == "Job"
    assert restricted_violations(pod_template(job)) == []


@pytest.mark.parametrize("document", JOBS.values(), ids=JOBS.keys())
def test_trainer_pod_runs_as_the_image_user(document):
    from test_image_dockerfile import DOCKERFILE, parse_dockerfile

    trainer_stage = next(s for s in parse_dockerfile(DOCKERFILE.read_text()) if s.name == "trainer")
    (user,) = [args for instr, args in trainer_stage.instructions if instr == "USER"]
    image_uid = int(user.partition(":")[0])
    chart_uid = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]["trainerUid"]
    pod = pod_template(trainer_job(document))["spec"]
    assert pod["securityContext"]["runAsUser"] == image_uid == chart_uid


def test_trainer_pod_never_mounts_the_dataset_secret():
    # The secret reaches the container as env through envFrom; the kubelet reads it, not the operator.
    pod = pod_template(trainer_job(JOBS["cpu-s3-secret"]))["spec"]
    assert not any("secret" in volume for volume in pod.get("volumes", []))
    (container,) = pod["containers"]
    assert {"secretRef": {"name": "s3-credentials"}} in container.get("envFrom", [])
