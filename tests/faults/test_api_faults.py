"""Scenario 5: the API server misbehaves the ways real ones do, while a job runs to success.

Needs the fake (fault injection): 30% of the operator's creates and patches answered 409 Conflict,
watch streams cut every few seconds, the watch history expired (resuming gets 410 Gone), and 60 s in
which every request gets 503.
Bar: the job still goes Created -> Running -> Succeeded with every expected condition; a spec edit made
while history was expired is observed (observedGeneration converges); exactly one of each child, with
unchanged UIDs; no exception in the operator's log other than the injected API errors; the test
process (the operator runs in it) grows by less than 300 MiB of RSS (printed).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from fault_support import (
    MODEL,
    SHARED_CHILDREN,
    SUCCESS,
    children_by_kind,
    report,
    rss_mib,
    shared_child_uids,
)
from operator_faults import expect_injected_errors, unexpected_errors
from operator_integration import job_manifest

from harness import find_condition

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 60
WAIT_SECONDS = 120
RSS_GROWTH_BAR_MIB = 300
OPERATOR_KINDS = "configmaps|services|serviceaccounts|roles|rolebindings|jobs"
OPERATOR_PATCHED = "deeptrainingjobs|configmaps|services|roles|rolebindings"
WATCHED_KINDS = ("deeptrainingjobs", "jobs", "pods")


@contextlib.asynccontextmanager
async def watches_cut_every(fakekube, seconds: float):
    """Cut every open watch stream periodically, as a flaky load balancer would."""
    cuts = [0]

    async def cut_forever() -> None:
        while True:
            await asyncio.sleep(seconds)
            cuts[0] += await asyncio.to_thread(fakekube.faults.cut_watches)

    task = asyncio.get_running_loop().create_task(cut_forever())
    try:
        yield cuts
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_conflicts_cut_watches_gone_history_and_an_outage_lose_nothing(
        kube, namespace, operator, fakekube, job_player, wait_job, wait_trainer_job):
    expect_injected_errors(operator)
    rss_before = rss_mib()
    fakekube.reset_request_counts()
    conflicts = [
        fakekube.faults.add("POST", rf"/namespaces/{namespace}/({OPERATOR_KINDS})(\?|$)", status=409,
                            probability=0.3, seed=1),
        fakekube.faults.add("PATCH", rf"/namespaces/{namespace}/({OPERATOR_PATCHED})/", status=409,
                            probability=0.3, seed=2),
    ]
    async with watches_cut_every(fakekube, seconds=1) as cuts:
        created = await kube.create(job_manifest("shoes", namespace))
        trainer_job = await wait_trainer_job("shoes", timeout=WAIT_SECONDS)
        await job_player.start_pods(trainer_job)
        await job_player.set_running(trainer_job)
        await wait_job("shoes", type="Running", timeout=WAIT_SECONDS)
        uids = await shared_child_uids(kube, namespace, "shoes")

        # History gone while the operator's watches are cut: it must relist to see the edit.
        fakekube.faults.expire_history()
        fakekube.faults.cut_watches()
        edited = await kube.patch(created, {"spec": {"runPolicy": {"backoffLimit": 5}}})
        generation = edited["metadata"]["generation"]
        await wait_job("shoes", lambda obj: obj["status"].get("observedGeneration") == generation,
                       timeout=WAIT_SECONDS)

        fakekube.faults.outage(OUTAGE_SECONDS, status=503)
        await asyncio.sleep(OUTAGE_SECONDS + 1)
        # Back up: the gang finishes, which the operator learns only through its re-established watches.
        await job_player.succeed(trainer_job, SUCCESS)
        done = await wait_job("shoes", type="Succeeded", timeout=WAIT_SECONDS)
    injected = sum(rule.injected for rule in conflicts)
    fakekube.clear_faults()

    status = done["status"]
    assert (status["attempt"], status["restarts"], status["phase"]) == (1, 0, "Succeeded")
    assert status["observedGeneration"] == generation
    assert find_condition(done, "Created")["status"] == "True"
    assert find_condition(done, "Running")["status"] == "False"
    assert find_condition(done, "Failed") is None or find_condition(done, "Failed")["status"] == "False"
    assert status["model"]["version"] == MODEL.version

    assert await shared_child_uids(kube, namespace, "shoes") == uids
    counts = {kind: len(items) for kind, items in (await children_by_kind(kube, namespace, "shoes")).items()}
    assert {kind: counts.get(kind) for _, kind, _ in SHARED_CHILDREN} == {kind: 1 for _, kind, _ in SHARED_CHILDREN}
    assert [j["metadata"]["name"] for j in await kube.list("batch/v1", "Job", namespace)] == ["shoes-1"]
    assert unexpected_errors(operator, injected=[409, 503]) == []

    growth = rss_mib() - rss_before
    watches = sum(n for (verb, _), n in fakekube.request_counts().items() if verb == "watch")
    report(f"409s injected: {injected}; watch streams cut: {cuts[0]}; watch requests: {watches}; "
           f"RSS growth of the test process: {growth:.1f} MiB")
    assert injected > 0
    assert watches > len(WATCHED_KINDS)  # the operator's watches were re-opened after cuts and 410s
    assert growth < RSS_GROWTH_BAR_MIB
