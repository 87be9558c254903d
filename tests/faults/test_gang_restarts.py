"""Scenario 3 (operator side): a worker fails mid-training.

Runs on the fake and on a real cluster (JobPlayer plays the Job controller and kubelet).
Bar: the whole gang restarts as attempt N+1 in a new trainer Job; the old Job and all its pods are
gone before the new pods exist, so no two pods of one completion index ever coexist across attempts
(every pod list the test saw, polled every ~20 ms and right before each new gang starts, holds pods of
one attempt only); restarts are counted; after backoffLimit restarts the job is Failed with
BackoffLimitExceeded and no Job or pod of it is left.
"""

from __future__ import annotations

import pytest
from fault_support import JOB_NAME_LABEL, PodLedger, eventually, report
from operator_integration import job_manifest, racing_the_operator

pytestmark = pytest.mark.faults

BACKOFF_LIMIT = 2
WAIT_SECONDS = 60


async def test_worker_failure_restarts_the_whole_gang_and_never_runs_two_copies_of_a_rank(
        kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    ledger = PodLedger(kube, namespace, "shoes").start()
    await kube.create(job_manifest("shoes", namespace, runPolicy={"backoffLimit": BACKOFF_LIMIT}))
    job_uids = []
    for attempt in range(1, BACKOFF_LIMIT + 2):
        trainer_job = await wait_trainer_job("shoes", attempt=attempt, timeout=WAIT_SECONDS)
        job_uids.append(trainer_job["metadata"]["uid"])
        # The new gang's Job exists: the old one and every pod of it must already be gone.
        assert await kube.get_or_none("batch/v1", "Job", f"shoes-{attempt - 1}", namespace) is None
        assert await kube.list("v1", "Pod", namespace, label_selector=f"{JOB_NAME_LABEL}=shoes") == []
        await job_player.start_pods(trainer_job)
        await job_player.set_running(trainer_job)
        running = await wait_job("shoes", lambda obj, a=attempt: obj["status"]["attempt"] == a, type="Running",
                                 timeout=WAIT_SECONDS)
        assert running["status"]["restarts"] == attempt - 1
        # Rank 1 dies mid-training (a plain retryable crash).
        await racing_the_operator(job_player.fail_pod(trainer_job, 1, exit_code=1))
        if attempt <= BACKOFF_LIMIT:
            restarting = await wait_job("shoes", lambda obj, a=attempt: obj["status"]["attempt"] == a + 1,
                                        type="Restarting", reason="WorkerFailed", timeout=WAIT_SECONDS)
            assert restarting["status"]["restarts"] == attempt

    failed = await wait_job("shoes", type="Failed", reason="BackoffLimitExceeded", timeout=WAIT_SECONDS)
    assert (failed["status"]["attempt"], failed["status"]["restarts"]) == (BACKOFF_LIMIT + 1, BACKOFF_LIMIT)
    assert failed["status"]["phase"] == "Failed"
    assert len(set(job_uids)) == BACKOFF_LIMIT + 1

    async def nothing_left() -> bool:
        selector = f"{JOB_NAME_LABEL}=shoes"
        return not await kube.list("batch/v1", "Job", namespace, label_selector=selector) and \
            not await kube.list("v1", "Pod", namespace, label_selector=selector)

    await eventually(nothing_left, timeout=WAIT_SECONDS, what="no Job or pod left after the final failure")
    await ledger.stop()
    report(f"pod lists recorded: {len(ledger.snapshots)}")
    assert ledger.attempts_seen() == [str(a) for a in range(1, BACKOFF_LIMIT + 2)]
    assert ledger.violations() == []
