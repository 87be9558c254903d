"""Scenario 9: 200 jobs submitted at once.

Needs the fake (request counts; a real cluster's kubelet would have to run 200 pods): 200 jobs are
created as fast as the client can (concurrently; the time taken is printed, well under 10 s here),
JobPlayer starts and runs the pods of every trainer Job the operator makes.
Bar: every job reports Running=True within 180 s, each with exactly one trainer Job; no exception in the
operator's log (the fixture checks); the test process, which hosts the operator, grows by less than
500 MiB of RSS. Printed: creation time, time to all Running, RSS, API requests per second by verb.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fault_support import JOB_NAME_LABEL, report, rss_mib
from operator_integration import API_VERSION, KIND, job_manifest

from harness import has_condition

pytestmark = pytest.mark.faults

JOBS = 200
ALL_RUNNING_SECONDS = 180
RSS_GROWTH_BAR_MIB = 500
CONCURRENCY = 16


def name_of(index: int) -> str:
    return f"job-{index:03d}"


async def test_two_hundred_jobs_submitted_at_once_all_reach_running(kube, namespace, operator, fakekube, job_player):
    rss_before = rss_mib()
    fakekube.reset_request_counts()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def submit(index: int) -> None:
        async with limit:
            await kube.create(job_manifest(name_of(index), namespace, workers=1))

    started = time.monotonic()
    await asyncio.gather(*(submit(i) for i in range(JOBS)))
    created_in = time.monotonic() - started

    playing: set[str] = set()

    async def play(trainer_job: dict) -> None:
        async with limit:
            await job_player.start_pods(trainer_job)
            await job_player.set_running(trainer_job)

    deadline = started + ALL_RUNNING_SECONDS
    while True:
        jobs = await kube.list(API_VERSION, KIND, namespace)
        running = sum(1 for job in jobs if has_condition(job, "Running"))
        if running == JOBS:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"{running} of {JOBS} jobs Running after {ALL_RUNNING_SECONDS}s", pytrace=False)
        fresh = [j for j in await kube.list("batch/v1", "Job", namespace) if j["metadata"]["name"] not in playing]
        playing.update(j["metadata"]["name"] for j in fresh)
        await asyncio.gather(*(play(j) for j in fresh))
        await asyncio.sleep(0.5)
    all_running_in = time.monotonic() - started

    trainer_jobs = await kube.list("batch/v1", "Job", namespace)
    per_job = {}
    for trainer_job in trainer_jobs:
        owner = trainer_job["metadata"]["labels"][JOB_NAME_LABEL]
        per_job[owner] = per_job.get(owner, 0) + 1
    assert per_job == {name_of(i): 1 for i in range(JOBS)}

    counts = fakekube.request_counts()
    total = sum(counts.values())
    by_verb: dict[str, int] = {}
    for (verb, _), n in counts.items():
        by_verb[verb] = by_verb.get(verb, 0) + n
    growth = rss_mib() - rss_before
    report(f"{JOBS} jobs created in {created_in:.1f}s; all Running after {all_running_in:.1f}s; "
           f"RSS {rss_mib():.0f} MiB (+{growth:.0f}); {total} API requests, {total / all_running_in:.0f}/s "
           f"({', '.join(f'{verb} {n / all_running_in:.0f}/s' for verb, n in sorted(by_verb.items()))})")
    assert growth < RSS_GROWTH_BAR_MIB
