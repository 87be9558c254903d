"""The project's own CRDs, installed by `kube_env`, are served and enforced by the fake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import KubeApiError, KubeClient, KubeEnv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _crds(kube_env: KubeEnv) -> None:
    kube_env.require_crds()


async def test_example_job_is_admitted_with_defaults(kube: KubeClient, namespace: str) -> None:
    manifest = yaml.safe_load((REPO / "examples" / "visual-classifier.yaml").read_text())
    manifest["metadata"]["namespace"] = namespace
    created = await kube.create(manifest)
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["template"] == manifest["spec"]["template"]
    listed = await kube.list("deeptrain.dev/v1alpha1", "DeepTrainingJob", namespace)
    assert [item["metadata"]["name"] for item in listed] == [manifest["metadata"]["name"]]


async def test_invalid_job_is_refused_naming_the_field(kube: KubeClient, namespace: str) -> None:
    manifest = yaml.safe_load((REPO / "tests" / "manifests" / "invalid" / "bad-uri-scheme.yaml").read_text())
    manifest["metadata"]["namespace"] = namespace
    with pytest.raises(KubeApiError) as error:
        await kube.create(manifest)
    assert error.value.status == 422
    assert error.value.message.startswith('DeepTrainingJob.deeptrain.dev "shoes" is invalid: ')
    assert "spec.dataset.uri" in [cause["field"] for cause in error.value.body["details"]["causes"]]
