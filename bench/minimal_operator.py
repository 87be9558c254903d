"""The operator benchmark's baseline: the least a kopf operator can do for a DeepTrainingJob.

On create it makes one indexed batch/v1 Job (owned by the DeepTrainingJob, one pod per worker);
when that Job reports all its pods ready it sets the `Running` condition. No validation, no
ConfigMap, Service or RBAC children, no status beyond that one condition, no events, no metrics.
Whatever our operator costs beyond this is the price of what it does on top.

    KUBECONFIG=... python -m kopf run --standalone --namespace NS bench/minimal_operator.py
"""

from __future__ import annotations

import datetime
from typing import Any

import aiohttp
import kopf

GROUP, VERSION, PLURAL = "deeptrain.dev", "v1alpha1", "deeptrainingjobs"
OWNER_LABEL = "bench.deeptrain.dev/owner"

_session: dict[str, Any] = {}


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    info = kopf.login_with_kubeconfig(**kwargs)
    _session["info"] = info
    return info


async def _request(method: str, path: str, body: Any, content_type: str = "application/json") -> None:
    """One HTTP call with the credentials kopf logged in with (a plain aiohttp session, reused)."""
    info: kopf.ConnectionInfo = _session["info"]
    if "http" not in _session:
        headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}
        _session["http"] = aiohttp.ClientSession(base_url=info.server.rstrip("/") + "/", headers=headers)
    async with _session["http"].request(method, path.lstrip("/"), json=body,
                                        headers={"Content-Type": content_type}) as response:
        if response.status >= 400 and response.status != 409:
            raise kopf.TemporaryError(f"{method} {path}: {response.status} {await response.text()}", delay=1)


@kopf.on.create(GROUP, VERSION, PLURAL)
async def create_job(body: kopf.Body, name: str, namespace: str, **_: Any) -> None:
    workers = int(body["spec"].get("workers", 1))
    labels = {OWNER_LABEL: name}
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{name}-train", "namespace": namespace, "labels": labels,
                     "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "DeepTrainingJob", "name": name,
                                          "uid": body["metadata"]["uid"], "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"completions": workers, "parallelism": workers, "completionMode": "Indexed", "backoffLimit": 0,
                 "template": {"metadata": {"labels": labels},
                              "spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "trainer", "image": "deeptrain-trainer:0.1.0",
                                                       "command": ["torchrun"]}]}}},
    }
    await _request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job)


@kopf.on.event("batch", "v1", "jobs", labels={OWNER_LABEL: kopf.PRESENT})
async def job_changed(body: kopf.Body, namespace: str, **_: Any) -> None:
    status, spec = body.get("status") or {}, body.get("spec") or {}
    if int(status.get("ready") or 0) < int(spec.get("parallelism") or 1):
        return
    owner = body["metadata"]["labels"][OWNER_LABEL]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {"type": "Running", "status": "True", "reason": "AllWorkersReady", "message": "all workers ready",
                 "lastTransitionTime": now}
    await _request("PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{owner}/status",
                   {"status": {"conditions": [condition]}}, content_type="application/merge-patch+json")
