"""JobPlayer: plays the batch/v1 Job controller and the kubelet for the operator's child Jobs.

The fake has neither, and a real test cluster may lack them too, so tests drive pods through their
lifecycle by hand: create them like the Job controller would, write pod status like the kubelet
would, and mirror the Job status the controller would compute.

On a real cluster the player first checks whether a Job controller reacts (creates pods within
`detect_seconds`). If it does, the player never creates pods or writes Job status; it only writes pod
status, and the controller derives the Job status from it. Pods there may also be run by a real
kubelet, which would then report its own status: use a cluster without schedulable nodes for these tests.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import random
import string
import time
from collections.abc import Mapping
from typing import Any

from .client import KubeClient, Object

JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


class JobPlayer:
    def __init__(self, kube: KubeClient, plays_controller: bool | None = None, detect_seconds: float = 5.0) -> None:
        """`plays_controller`: True on the fake; None to detect on the first Job (real clusters)."""
        self.kube = kube
        self.plays_controller = plays_controller
        self.detect_seconds = detect_seconds

    # ---- lookups -----------------------------------------------------------------------------------

    async def job(self, job: Object) -> Object:
        """The Job's current state (`job` may be a stale copy or just a reference with metadata)."""
        meta = job["metadata"]
        return await self.kube.get("batch/v1", "Job", meta["name"], meta["namespace"])

    async def pods(self, job: Object, include_terminated: bool = True) -> list[Object]:
        """The Job's pods, by completion index; the newest pod of an index last."""
        current = await self.job(job)
        pods = await self.kube.list("v1", "Pod", current["metadata"]["namespace"],
                                    label_selector=f"{CONTROLLER_UID}={current['metadata']['uid']}")
        if not include_terminated:
            pods = [pod for pod in pods if not _terminated(pod)]
        return sorted(pods, key=lambda pod: (_index(pod), pod["metadata"]["creationTimestamp"],
                                             int(pod["metadata"]["resourceVersion"])))

    async def pod(self, job: Object, index: int) -> Object:
        """The live (newest) pod of a completion index."""
        candidates = [pod for pod in await self.pods(job) if _index(pod) == index]
        if not candidates:
            raise LookupError(f"job {job['metadata']['name']} has no pod with completion index {index}")
        return candidates[-1]

    # ---- the Job controller's part -----------------------------------------------------------------

    async def _detect(self, job: Object) -> bool:
        if self.plays_controller is None:
            deadline = time.monotonic() + self.detect_seconds
            while time.monotonic() < deadline and not await self.pods(job):
                await asyncio.sleep(0.2)
            self.plays_controller = not await self.pods(job)
        return self.plays_controller

    async def start_pods(self, job: Object) -> list[Object]:
        """One Pending pod per completion index (none while the Job is suspended), and the Job's startTime."""
        current = await self.job(job)
        if not await self._detect(current):
            await self._wait_for_controller_pods(current)
            return await self.pods(current)
        if current["spec"].get("suspend"):
            await self.sync(current)
            return []
        existing = {_index(pod) for pod in await self.pods(current, include_terminated=False)}
        for index in range(int(current["spec"].get("completions") or 1)):
            if index not in existing:
                await self.kube.create(self._pod_manifest(current, index))
        await self.sync(current)
        return await self.pods(current)

    async def _wait_for_controller_pods(self, job: Object) -> None:
        wanted = int(job["spec"].get("parallelism") or 1)
        meta = job["metadata"]
        deadline = time.monotonic() + 30
        while len(await self.pods(job, include_terminated=False)) < wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster's Job controller created no pods for {meta['name']}")
            await asyncio.sleep(0.2)

    def _pod_manifest(self, job: Object, index: int) -> Object:
        meta, template = job["metadata"], job["spec"]["template"]
        labels = {**template.get("metadata", {}).get("labels", {}), JOB_NAME: meta["name"],
                  CONTROLLER_UID: meta["uid"], "job-name": meta["name"], "controller-uid": meta["uid"]}
        annotations = dict(template.get("metadata", {}).get("annotations", {}))
        spec = _copy(template.get("spec", {}))
        indexed = job["spec"].get("completionMode") == "Indexed"
        if indexed:
            labels[COMPLETION_INDEX] = str(index)
            annotations[COMPLETION_INDEX] = str(index)
            spec.setdefault("hostname", f"{meta['name']}-{index}")
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                container.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {
                    "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}})
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        name = f"{meta['name']}-{index}-{suffix}" if indexed else f"{meta['name']}-{suffix}"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name, "namespace": meta["namespace"], "labels": labels, "annotations": annotations,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": spec,
        }

    async def sync(self, job: Object) -> Object:
        """Write the Job status the controller would derive from its pods (a no-op when a real one does)."""
        current = await self.job(job)
        if not self.plays_controller:
            return current
        if current["spec"].get("suspend"):
            return await self._suspend(current)
        pods = await self.pods(current)
        status = _copy(current.get("status") or {})
        if _has_true(status, "Failed") or _has_true(status, "Complete"):
            return current
        counted = [pod for pod in pods if not _ignored_by_policy(current, pod)]
        status["active"] = sum(1 for pod in pods if not _terminated(pod))
        status["ready"] = sum(1 for pod in pods if _pod_ready(pod))
        status["succeeded"] = sum(1 for pod in pods if pod["status"].get("phase") == "Succeeded")
        status["failed"] = sum(1 for pod in counted if pod["status"].get("phase") == "Failed")
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        status.setdefault("startTime", now())
        if current["spec"].get("completionMode") == "Indexed":
            done = sorted({_index(pod) for pod in pods if pod["status"].get("phase") == "Succeeded"})
            if done:
                status["completedIndexes"] = _ranges(done)
        if _has_true(status, "Suspended"):
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Suspended"] + [
                _condition("Suspended", "False", "JobResumed", "Job resumed")]
        failing_rule = _fail_job_rule(current, counted)
        if failing_rule:
            return await self._finish_failed(current, status, "PodFailurePolicy", failing_rule)
        if status["failed"] > int(current["spec"].get("backoffLimit", 6)):
            return await self._finish_failed(current, status, "BackoffLimitExceeded",
                                             "Job has reached the specified backoff limit")
        if status["succeeded"] >= int(current["spec"].get("completions") or 1):
            status["conditions"] = status.get("conditions", []) + [
                _condition("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                _condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
            ]
            status["completionTime"] = now()
            status["active"] = status["ready"] = 0
        return await self._write_status(current, status)

    async def _suspend(self, job: Object) -> Object:
        for pod in await self.pods(job, include_terminated=False):
            await self.kube.delete("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"], missing_ok=True)
        status = _copy(job.get("status") or {})
        status.update(active=0, ready=0, terminating=0)
        status.pop("startTime", None)
        if not _has_true(status, "Suspended"):
            status["conditions"] = [c for c in status.get("conditions", []) if c["type"] != "Suspended"] + [
                _condition("Suspended", "True", "JobSuspended", "Job suspended")]
        return await self._write_status(job, status)

    async def _finish_failed(self, job: Object, status: dict[str, Any], reason: str, message: str) -> Object:
        for pod in await self.pods(job, include_terminated=False):
            await self.kube.delete("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"], missing_ok=True)
        status["conditions"] = status.get("conditions", []) + [
            _condition("FailureTarget", "True", reason, message), _condition("Failed", "True", reason, message)]
        status["active"] = status["ready"] = 0
        return await self._write_status(job, status)

    async def exceed_deadline(self, job: Object) -> Object:
        """The Job ran past spec.activeDeadlineSeconds: it fails with DeadlineExceeded and its pods go."""
        current = await self.job(job)
        if not self.plays_controller:
            raise AssertionError("a real Job controller enforces activeDeadlineSeconds itself")
        return await self._finish_failed(current, _copy(current.get("status") or {}), "DeadlineExceeded",
                                         "Job was active longer than specified deadline")

    async def _write_status(self, job: Object, status: dict[str, Any]) -> Object:
        return await self.kube.patch(job, {"status": status}, subresource="status")

    # ---- the kubelet's part ------------------------------------------------------------------------

    async def set_running(self, job: Object, ready: bool = True, indexes: list[int] | None = None) -> None:
        """Pods (all, or those at `indexes`) are scheduled and running; Ready as asked."""
        for pod in await self._live_pods(job, indexes):
            started = now()
            await self._pod_status(pod, {
                "phase": "Running",
                "conditions": _pod_conditions(ready=ready),
                "hostIP": "10.0.0.1",
                "podIP": f"10.244.0.{10 + _index(pod)}",
                "startTime": started,
                "containerStatuses": [
                    {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": ready,
                     "started": True, "restartCount": 0, "state": {"running": {"startedAt": started}}}
                    for c in pod["spec"].get("containers", [])],
            })
        await self.sync(job)

    async def succeed(self, job: Object, termination_message: str | Mapping[int, str] = "",
                      indexes: list[int] | None = None) -> None:
        """Pods exit 0; `termination_message` is one for all, or per completion index."""
        for pod in await self._live_pods(job, indexes):
            message = termination_message if isinstance(termination_message, str) else \
                termination_message.get(_index(pod), "")
            await self._terminate(pod, "Succeeded", exit_code=0, reason="Completed", message=message)
        await self.sync(job)

    async def fail_pod(self, job: Object, index: int, exit_code: int = 1, reason: str = "Error",
                       message: str = "") -> None:
        """The pod at `index` fails; the Job controller replaces it while the backoff limit allows."""
        pod = await self.pod(job, index)
        await self._terminate(pod, "Failed", exit_code=exit_code, reason=reason, message=message)
        await self._replace_failed(job, index)

    async def evict(self, job: Object, index: int) -> None:
        """The pod at `index` is evicted (preemption, node drain): DisruptionTarget, then killed."""
        pod = await self.pod(job, index)
        disruption = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                      "message": "Eviction API: evicting", "lastTransitionTime": now()}
        await self._terminate(pod, "Failed", exit_code=137, reason="Error", message="",
                              extra_conditions=[disruption])
        await self._replace_failed(job, index)

    async def _replace_failed(self, job: Object, index: int) -> None:
        current = await self.sync(job)
        if not self.plays_controller:
            return
        status = current.get("status") or {}
        if not (_has_true(status, "Failed") or _has_true(status, "Complete") or current["spec"].get("suspend")):
            await self.kube.create(self._pod_manifest(current, index))
            await self.sync(current)

    async def _live_pods(self, job: Object, indexes: list[int] | None) -> list[Object]:
        pods = await self.pods(job, include_terminated=False)
        return [pod for pod in pods if indexes is None or _index(pod) in indexes]

    async def _terminate(self, pod: Object, phase: str, exit_code: int, reason: str, message: str,
                         extra_conditions: list[dict[str, Any]] | None = None) -> None:
        finished = now()
        started = (pod.get("status") or {}).get("startTime", finished)
        await self._pod_status(pod, {
            "phase": phase,
            "conditions": _pod_conditions(ready=False) + (extra_conditions or []),
            "startTime": started,
            "containerStatuses": [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "started": False,
                 "restartCount": 0, "state": {"terminated": {
                     "exitCode": exit_code, "reason": reason, "message": message,
                     "startedAt": started, "finishedAt": finished}}}
                for c in pod["spec"].get("containers", [])],
        })

    async def _pod_status(self, pod: Object, status: dict[str, Any]) -> None:
        await self.kube.patch(pod, {"status": status}, subresource="status")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy(value: Any) -> Any:
    return copy.deepcopy(value)


def _index(pod: Object) -> int:
    return int((pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX, 0))


def _terminated(pod: Object) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or \
        bool(pod["metadata"].get("deletionTimestamp"))


def _pod_ready(pod: Object) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def _pod_conditions(ready: bool) -> list[dict[str, Any]]:
    stamp = now()
    flag = "True" if ready else "False"
    return [{"type": kind, "status": status, "lastTransitionTime": stamp} for kind, status in (
        ("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", flag), ("Ready", flag))]


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    stamp = now()
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastProbeTime": stamp, "lastTransitionTime": stamp}


def _has_true(status: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions", []))


def _ranges(indexes: list[int]) -> str:
    """Completed indexes the way the Job controller writes them: "0-2,5"."""
    spans: list[list[int]] = []
    for index in indexes:
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _matching_rule(job: Object, pod: Object) -> tuple[int, dict[str, Any]] | None:
    """The first podFailurePolicy rule that matches a failed pod, with its position."""
    if (pod.get("status") or {}).get("phase") != "Failed":
        return None
    rules = (job["spec"].get("podFailurePolicy") or {}).get("rules", [])
    for position, rule in enumerate(rules):
        if "onExitCodes" in rule:
            codes = rule["onExitCodes"]
            for container in pod["status"].get("containerStatuses", []):
                if codes.get("containerName") not in (None, container["name"]):
                    continue
                code = container.get("state", {}).get("terminated", {}).get("exitCode")
                if code is not None and code != 0 and (code in codes["values"]) == (codes["operator"] == "In"):
                    return position, {**rule, "_container": container["name"], "_exit_code": code}
        for wanted in rule.get("onPodConditions", []):
            if any(c["type"] == wanted["type"] and c["status"] == wanted.get("status", "True")
                   for c in pod["status"].get("conditions", [])):
                return position, rule
    return None


def _ignored_by_policy(job: Object, pod: Object) -> bool:
    match = _matching_rule(job, pod)
    return match is not None and match[1]["action"] == "Ignore"


def _fail_job_rule(job: Object, pods: list[Object]) -> str | None:
    """The message the controller writes when a FailJob rule matched one of the failed pods."""
    for pod in pods:
        match = _matching_rule(job, pod)
        if match is None or match[1]["action"] != "FailJob":
            continue
        position, rule = match
        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        if "_exit_code" in rule:
            return (f"Container {rule['_container']} for pod {where} failed with exit code {rule['_exit_code']} "
                    f"matching FailJob rule at index {position}")
        return f"Pod {where} has condition DisruptionTarget matching FailJob rule at index {position}"
    return None
