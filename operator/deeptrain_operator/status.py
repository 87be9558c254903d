"""The one pure function that decides a DeepTrainingJob's status from its spec and what is observed.

`compute_status(job, observed, now)` returns every status field the operator owns (never `progress`:
the trainer's rank 0 writes it). The reconciler acts on the result: a new attempt number means "stop
the old gang, then start the next", a terminal condition means "nothing may run", Created=False with
reason TTLExpired means "delete the children".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from deeptrain_api import DeepTrainingJob, catalog
from deeptrain_api import trainer_contract as contract

from . import constants as c
from .builders import spec_hash
from .conditions import Conditions, format_time

Manifest = dict[str, Any]
Problem = tuple[str, str]

# Container waiting reasons worth a user's attention, mapped to the condition reason shown.
_WAITING_REASONS = {
    "ErrImagePull": c.REASON_IMAGE_PULL_BACKOFF,
    "ImagePullBackOff": c.REASON_IMAGE_PULL_BACKOFF,
    "InvalidImageName": "InvalidImageName",
    "CreateContainerConfigError": "CreateContainerConfigError",
    "CreateContainerError": "CreateContainerError",
}
# DisruptionTarget condition reasons: the pod is being removed by the cluster, not failing by itself.
_DISRUPTION_REASONS = {
    "DeletionByTaintManager": c.REASON_NODE_LOST,
    "DeletionByPodGC": c.REASON_NODE_LOST,
    "PreemptionByScheduler": c.REASON_PREEMPTED,
    "PreemptionByKubeScheduler": c.REASON_PREEMPTED,
}


@dataclass(frozen=True)
class BaseModelState:
    """What the job named by spec.baseModel.deepTrainingJob offers; None fields when it does not exist."""

    exists: bool
    succeeded: bool = False
    failed: bool = False
    model_uri: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Observed:
    """The job's children as listed from the API (all attempts), and facts looked up for it."""

    trainer_jobs: Sequence[Manifest] = ()
    pods: Sequence[Manifest] = ()
    # Only looked up when a run's config still has to be rendered; None: nothing to wait for.
    base_model: BaseModelState | None = None
    problems: Sequence[Problem] = ()


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str
    permanent: bool


# --- small readers --------------------------------------------------------------------------------

def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def attempt_of(obj: Manifest) -> int | None:
    value = (obj.get("metadata", {}).get("labels") or {}).get(c.LABEL_ATTEMPT, "")
    return int(value) if value.isdigit() else None


def is_deleting(obj: Manifest) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def completion_index(pod: Manifest) -> int:
    meta = pod.get("metadata", {})
    value = (meta.get("annotations") or {}).get(c.ANNOTATION_COMPLETION_INDEX) \
        or (meta.get("labels") or {}).get(c.ANNOTATION_COMPLETION_INDEX, "")
    return int(value) if str(value).isdigit() else 0


def _conditions_of(obj: Manifest) -> list[Manifest]:
    return obj.get("status", {}).get("conditions") or []


def _condition(obj: Manifest, type_: str) -> Manifest | None:
    return next((cond for cond in _conditions_of(obj) if cond.get("type") == type_), None)


def _is_true(obj: Manifest, type_: str) -> bool:
    cond = _condition(obj, type_)
    return cond is not None and cond.get("status") == "True"


def _trainer_state(pod: Manifest) -> Manifest:
    """The trainer container's status (state + lastState), or {} before it was created."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == c.TRAINER_CONTAINER:
            return status
    return {}


def _terminated(pod: Manifest) -> Manifest | None:
    return (_trainer_state(pod).get("state") or {}).get("terminated")


def termination_message(pod: Manifest) -> contract.TerminationMessage | None:
    terminated = _terminated(pod)
    return contract.parse_termination_message(terminated.get("message")) if terminated else None


def stale_children(observed: Observed, attempt: int) -> list[Manifest]:
    """Jobs and pods that must be gone before attempt `attempt` may start: two copies of a rank never run."""
    current_job = current_trainer_job(observed, attempt)
    stale = [j for j in observed.trainer_jobs if j is not current_job]
    if current_job is None:
        stale += list(observed.pods)  # a current attempt's pods without their Job are leftovers too
    else:
        stale += [p for p in observed.pods if attempt_of(p) != attempt]
    return stale


def current_trainer_job(observed: Observed, attempt: int) -> Manifest | None:
    return next((j for j in observed.trainer_jobs if attempt_of(j) == attempt and not is_deleting(j)), None)


def current_pods(observed: Observed, attempt: int) -> list[Manifest]:
    return sorted((p for p in observed.pods if attempt_of(p) == attempt), key=completion_index)


# --- conditions ------------------------------------------------------------------------------------

class _Conditions(Conditions):
    """A job's conditions, which also decide its phase."""

    def __init__(self, existing: Iterable[Manifest], now: datetime, generation: int | None) -> None:
        super().__init__(existing, now, generation, c.CONDITION_TYPES)

    def phase(self) -> str:
        for type_, phase in ((c.FAILED, c.PHASE_FAILED), (c.SUCCEEDED, c.PHASE_SUCCEEDED),
                             (c.SUSPENDED, c.PHASE_SUSPENDED), (c.RESTARTING, c.PHASE_RESTARTING),
                             (c.RUNNING, c.PHASE_RUNNING), (c.QUEUED, c.PHASE_QUEUED)):
            if self.is_true(type_):
                return phase
        return c.PHASE_CREATED


def is_terminal(status: Manifest) -> bool:
    return any(cond.get("type") in (c.SUCCEEDED, c.FAILED) and cond.get("status") == "True"
               for cond in status.get("conditions") or [])


def condition_reason(status: Manifest, type_: str) -> str | None:
    cond = next((x for x in status.get("conditions") or [] if x.get("type") == type_), None)
    return cond.get("reason") if cond else None


def condition_status(status: Manifest, type_: str) -> str | None:
    cond = next((x for x in status.get("conditions") or [] if x.get("type") == type_), None)
    return cond.get("status") if cond else None


def job_created_message(trainer_job: Manifest) -> str:
    return f"Job {trainer_job['metadata']['name']} created"


def children_expired(status: Manifest) -> bool:
    """The job finished and its TTL passed: its children are to be deleted and never recreated."""
    return condition_reason(status, c.CREATED) == c.REASON_TTL_EXPIRED and is_terminal(status)


# --- failure classification ---------------------------------------------------------------------

def classify_pod_failure(pod: Manifest) -> Failure | None:
    """Why a worker pod failed, or None while it has not. Permanent: the trainer said so."""
    status = pod.get("status", {})
    disruption = _condition(pod, "DisruptionTarget")
    being_disrupted = disruption is not None and disruption.get("status") == "True"
    if status.get("phase") != "Failed" and not (being_disrupted and is_deleting(pod)):
        terminated = _terminated(pod)
        if terminated is None or terminated.get("exitCode", 0) == 0:
            return None
    index = completion_index(pod)
    where = f"worker {index} ({pod.get('metadata', {}).get('name', '?')})"
    terminated = _terminated(pod) or {}
    exit_code = terminated.get("exitCode")
    message = termination_message(pod)
    if message is not None and (message.permanent or message.exitCode in contract.PERMANENT_FAILURE_REASONS):
        reason = contract.PERMANENT_FAILURE_REASONS.get(message.exitCode) or message.reason
        return Failure(reason, message.message or f"{where} failed", permanent=True)
    if exit_code in contract.PERMANENT_FAILURE_REASONS:
        return Failure(contract.PERMANENT_FAILURE_REASONS[exit_code], f"{where} exited with code {exit_code}",
                       permanent=True)
    if status.get("reason") == "Evicted":
        return Failure(c.REASON_EVICTED, f"{where} was evicted: {status.get('message', '')}".rstrip(": "), False)
    if status.get("reason") == "NodeLost":
        return Failure(c.REASON_NODE_LOST, f"{where} lost its node", False)
    if being_disrupted:
        reason = _DISRUPTION_REASONS.get(disruption.get("reason", ""), c.REASON_EVICTED)
        detail = disruption.get("message") or disruption.get("reason") or "disrupted"
        return Failure(reason, f"{where}: {detail}", False)
    if terminated.get("reason") == "OOMKilled":
        return Failure(c.REASON_OOM_KILLED, f"{where} ran out of memory (OOMKilled); raise its memory limit "
                                            "or lower batch_size", False)
    detail = f"exit code {exit_code}" if exit_code is not None else (status.get("message") or "pod failed")
    if exit_code is not None and exit_code >= 128:
        detail += f" (signal {exit_code - 128})"
    if message is not None and message.message:
        detail += f": {message.message}"
    return Failure(c.REASON_WORKER_FAILED, f"{where} failed with {detail}", False)


def classify_failure(trainer_job: Manifest, pods: Sequence[Manifest]) -> Failure | None:
    """The attempt's failure: a permanent one wins, then the lowest worker index, then the Job's own."""
    failures = [f for f in (classify_pod_failure(pod) for pod in pods) if f is not None]
    permanent = [f for f in failures if f.permanent]
    if permanent or failures:
        return (permanent or failures)[0]
    failed = _condition(trainer_job, "Failed")
    if failed is not None and failed.get("status") == "True" and failed.get("reason") != c.REASON_DEADLINE_EXCEEDED:
        return Failure(c.REASON_WORKER_FAILED,
                       f"Job {trainer_job['metadata']['name']} failed: {failed.get('message') or failed.get('reason')}",
                       False)
    return None


def waiting_reason(pods: Sequence[Manifest]) -> tuple[str, str] | None:
    """Why workers are not running yet, when Kubernetes says (unschedulable, image pull, ...)."""
    for pod in pods:
        name = pod.get("metadata", {}).get("name", "?")
        waiting = (_trainer_state(pod).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _WAITING_REASONS:
            return _WAITING_REASONS[waiting["reason"]], f"{name}: {waiting.get('message') or waiting['reason']}"
        scheduled = _condition(pod, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            return c.REASON_UNSCHEDULABLE, f"{name}: {scheduled.get('message') or 'no node fits'}"
    return None


def worker_counts(pods: Sequence[Manifest]) -> dict[str, int]:
    counts = {"active": 0, "ready": 0, "succeeded": 0, "failed": 0}
    for pod in pods:
        phase = pod.get("status", {}).get("phase")
        if phase == "Succeeded":
            counts["succeeded"] += 1
        elif phase == "Failed":
            counts["failed"] += 1
        elif not is_deleting(pod):
            counts["active"] += 1
            if _is_true(pod, "Ready"):
                counts["ready"] += 1
    return counts


def _succeeded(trainer_job: Manifest, pods: Sequence[Manifest], workers: int) -> bool:
    if _is_true(trainer_job, "Complete"):
        return True
    done = {completion_index(p) for p in pods if p.get("status", {}).get("phase") == "Succeeded"}
    return len(done) >= workers


def primary_metric(model_type: str, metrics: dict[str, float]) -> str | None:
    """The model type's primary metric as a short string, e.g. "accuracy=0.962"."""
    if not metrics:
        return None
    name = catalog.model_type(model_type).primary_metric
    if name not in metrics:
        name = next(iter(metrics))
    return f"{name}={metrics[name]:.4g}"


def _rank_zero_model(pods: Sequence[Manifest]) -> contract.ModelSummary | None:
    for pod in pods:
        if completion_index(pod) == 0 and (message := termination_message(pod)) is not None:
            return message.model
    return None


# --- the status ----------------------------------------------------------------------------------

def previous_status(job: DeepTrainingJob) -> Manifest:
    return job.status.to_dict() if job.status is not None else {}


def invalid_spec_status(previous: Manifest, problems: Sequence[Problem], now: datetime,
                        generation: int | None) -> Manifest:
    """Failed/InvalidSpec, for a spec the operator cannot run (the first problem names the field)."""
    conditions = _Conditions(previous.get("conditions") or [], now, generation)
    message = "; ".join(f"{path}: {text}" for path, text in problems)
    _finish_failed(conditions, c.REASON_INVALID_SPEC, message)
    return {
        **_carried(previous),
        "observedGeneration": generation,
        "conditions": conditions.as_list(),
        "phase": conditions.phase(),
        "completionTime": previous.get("completionTime") or format_time(now),
        "message": message,
    }


def _carried(previous: Manifest) -> Manifest:
    """Fields kept from the previous status unless the computation below changes them."""
    keep = ("attempt", "restarts", "startTime", "completionTime", "workers", "model", "metric", "hyperparameters",
            c.STATUS_SPEC_HASH, "message")
    return {key: previous.get(key) for key in keep}


def _finish_failed(conditions: _Conditions, reason: str, message: str) -> None:
    conditions.set(c.FAILED, True, reason, message)
    conditions.clear(c.RUNNING, c.REASON_JOB_FAILED, message)
    conditions.clear(c.RESTARTING, c.REASON_JOB_FAILED, message)
    conditions.clear(c.QUEUED, c.REASON_JOB_FAILED)


def compute_status(job: DeepTrainingJob, observed: Observed, now: datetime) -> Manifest:
    """Every status field the operator owns, from the job (spec + previous status) and the observed children."""
    previous = previous_status(job)
    generation = job.metadata.generation
    conditions = _Conditions(previous.get("conditions") or [], now, generation)
    status = _carried(previous)
    status["observedGeneration"] = generation
    status["attempt"] = status["attempt"] or 1
    status["restarts"] = status["restarts"] or 0

    def done() -> Manifest:
        status["conditions"] = conditions.as_list()
        status["phase"] = conditions.phase()
        return status

    run_hash = spec_hash(job)
    if _starts_new_run(job, previous, run_hash, observed):
        _start_new_run(status, conditions)
    status[c.STATUS_SPEC_HASH] = run_hash

    if observed.problems:
        return invalid_spec_status(status | {"conditions": conditions.as_list()}, observed.problems, now, generation)
    status["hyperparameters"] = catalog.resolve_hyperparameters(job.spec.modelType,
                                                                job.spec.hyperparameters.to_dict())

    attempt = status["attempt"]
    trainer_job = current_trainer_job(observed, attempt)
    pods = current_pods(observed, attempt)
    status["workers"] = worker_counts(pods)

    if conditions.is_true(c.SUCCEEDED) or conditions.is_true(c.FAILED):
        _expire(job, status, conditions, now)
        return done()

    if observed.base_model is not None and not _base_model_ready(observed.base_model, status, conditions, now,
                                                                 job):
        return done()

    if trainer_job is not None:
        conditions.set(c.CREATED, True, c.REASON_JOB_CREATED, job_created_message(trainer_job))
    elif not conditions.is_true(c.CREATED):
        conditions.set(c.CREATED, False, c.REASON_CREATING, "creating the config, rendezvous service and Job")

    if job.spec.runPolicy.suspend:
        conditions.set(c.SUSPENDED, True, c.REASON_JOB_SUSPENDED, "spec.runPolicy.suspend is true: no pods run")
        conditions.clear(c.RUNNING, c.REASON_JOB_SUSPENDED)
        # Like a Kubernetes Job, a suspended job's deadline clock restarts when it resumes.
        status["startTime"] = None
        return done()
    if conditions.is_true(c.SUSPENDED):
        conditions.set(c.SUSPENDED, False, c.REASON_JOB_RESUMED, "spec.runPolicy.suspend is false")

    if _deadline_passed(job, status, trainer_job, now):
        deadline = job.spec.runPolicy.activeDeadlineSeconds
        _finish_failed(conditions, c.REASON_DEADLINE_EXCEEDED,
                       f"the job ran longer than spec.runPolicy.activeDeadlineSeconds ({deadline}s)")
        status["completionTime"] = format_time(now)
        status["message"] = conditions.message(c.FAILED)
        return done()

    if trainer_job is None:
        return done()

    if job.spec.scheduling.queueName:
        if trainer_job.get("spec", {}).get("suspend"):
            conditions.set(c.QUEUED, True, c.REASON_WAITING_FOR_ADMISSION,
                           f"Job {trainer_job['metadata']['name']} waits for Kueue to admit it from queue "
                           f"{job.spec.scheduling.queueName}")
            conditions.clear(c.RUNNING, c.REASON_WAITING_FOR_ADMISSION)
            return done()
        conditions.set(c.QUEUED, False, c.REASON_ADMITTED, f"admitted from queue {job.spec.scheduling.queueName}")

    if status["startTime"] is None:
        status["startTime"] = trainer_job.get("status", {}).get("startTime") or format_time(now)

    if _succeeded(trainer_job, pods, job.spec.workers):
        _finish_succeeded(job, status, conditions, trainer_job, pods, now)
        return done()

    failure = classify_failure(trainer_job, pods)
    if failure is not None:
        _on_failure(job, status, conditions, failure, now)
        return done()

    _running_or_waiting(job, status, conditions, pods)
    return done()


def _starts_new_run(job: DeepTrainingJob, previous: Manifest, run_hash: str, observed: Observed) -> bool:
    """A spec edit (outside runPolicy) after the run began means a new training run."""
    old_hash = previous.get(c.STATUS_SPEC_HASH)
    if old_hash:
        return old_hash != run_hash
    if is_terminal(previous):
        # A job that failed validation never ran; once its spec is valid it starts.
        if condition_reason(previous, c.FAILED) == c.REASON_INVALID_SPEC and not observed.problems:
            return True
        # Where the stored status cannot keep the hash, any edit of a finished job retrains.
        recorded = previous.get("observedGeneration")
        return recorded is not None and (job.metadata.generation or 0) > recorded
    return False


def _start_new_run(status: Manifest, conditions: _Conditions) -> None:
    # Always a fresh attempt number: the previous run's Job may still exist, finished, until its TTL.
    status["attempt"] += 1
    status.update(restarts=0, startTime=None, completionTime=None, workers=None, message=None)
    message = "the spec changed: a new training run starts"
    for type_ in (c.SUCCEEDED, c.FAILED, c.RUNNING, c.RESTARTING, c.QUEUED, c.CREATED):
        conditions.clear(type_, c.REASON_SPEC_CHANGED, message)


def _expire(job: DeepTrainingJob, status: Manifest, conditions: _Conditions, now: datetime) -> None:
    ttl = job.spec.runPolicy.ttlSecondsAfterFinished
    finished = parse_time(status.get("completionTime"))
    if ttl is None or finished is None or conditions.reason(c.CREATED) == c.REASON_TTL_EXPIRED:
        return
    if now >= finished + timedelta(seconds=ttl):
        conditions.set(c.CREATED, False, c.REASON_TTL_EXPIRED,
                       f"children deleted {ttl}s after the job finished (spec.runPolicy.ttlSecondsAfterFinished); "
                       "status and model are kept")


def seconds_until_expiry(job: DeepTrainingJob, status: Manifest, now: datetime) -> float | None:
    ttl = job.spec.runPolicy.ttlSecondsAfterFinished
    finished = parse_time(status.get("completionTime"))
    if ttl is None or finished is None or not is_terminal(status) or children_expired(status):
        return None
    return max(0.0, (finished + timedelta(seconds=ttl) - now).total_seconds())


def _base_model_ready(base: BaseModelState, status: Manifest, conditions: _Conditions, now: datetime,
                      job: DeepTrainingJob) -> bool:
    name = job.spec.baseModel.deepTrainingJob if job.spec.baseModel else ""
    if not base.exists:
        _finish_failed(conditions, c.REASON_BASE_MODEL_NOT_FOUND,
                       f"spec.baseModel.deepTrainingJob: DeepTrainingJob {name!r} does not exist in this namespace")
    elif base.failed:
        _finish_failed(conditions, c.REASON_BASE_MODEL_FAILED,
                       f"spec.baseModel.deepTrainingJob: {name!r} failed: {base.message}".rstrip(": "))
    elif not base.succeeded or not base.model_uri:
        conditions.set(c.CREATED, False, c.REASON_WAITING_FOR_BASE_MODEL,
                       f"waiting for DeepTrainingJob {name!r} to succeed and record its model")
        return False
    else:
        return True
    status["completionTime"] = format_time(now)
    status["message"] = conditions.message(c.FAILED)
    return False


def remaining_deadline(job: DeepTrainingJob, start_time: str | None, now: datetime) -> int | None:
    """Seconds left of spec.runPolicy.activeDeadlineSeconds, counted from status.startTime across attempts."""
    deadline = job.spec.runPolicy.activeDeadlineSeconds
    if deadline is None:
        return None
    started = parse_time(start_time)
    if started is None:
        return deadline
    return max(1, int(deadline - (now - started).total_seconds()))


def _deadline_passed(job: DeepTrainingJob, status: Manifest, trainer_job: Manifest | None, now: datetime) -> bool:
    if trainer_job is not None:
        failed = _condition(trainer_job, "Failed")
        if failed is not None and failed.get("status") == "True" and failed.get("reason") == c.REASON_DEADLINE_EXCEEDED:
            return True
    deadline = job.spec.runPolicy.activeDeadlineSeconds
    started = parse_time(status.get("startTime"))
    return deadline is not None and started is not None and now >= started + timedelta(seconds=deadline)


def _finish_succeeded(job: DeepTrainingJob, status: Manifest, conditions: _Conditions, trainer_job: Manifest,
                      pods: Sequence[Manifest], now: datetime) -> None:
    model = _rank_zero_model(pods)
    if model is not None:
        # Where the user finds the model is the URI they gave; the trainer reports the path in its pods.
        status["model"] = {**model.model_dump(mode="json"), "uri": job.spec.output.uri}
        status["metric"] = primary_metric(job.spec.modelType, model.metrics)
        message = f"trained model {job.spec.output.uri} (version {model.version})"
        if status["metric"]:
            message += f", {status['metric']}"
    else:
        message = "all workers succeeded, but rank 0 left no model summary in its termination message"
    conditions.set(c.SUCCEEDED, True, c.REASON_JOB_SUCCEEDED, message)
    conditions.clear(c.RUNNING, c.REASON_JOB_SUCCEEDED)
    conditions.clear(c.RESTARTING, c.REASON_JOB_SUCCEEDED)
    status["completionTime"] = trainer_job.get("status", {}).get("completionTime") or format_time(now)
    status["message"] = message


def _on_failure(job: DeepTrainingJob, status: Manifest, conditions: _Conditions, failure: Failure,
                now: datetime) -> None:
    limit = job.spec.runPolicy.backoffLimit
    if failure.permanent:
        _finish_failed(conditions, failure.reason, failure.message)
    elif status["restarts"] >= limit:
        _finish_failed(conditions, c.REASON_BACKOFF_LIMIT_EXCEEDED,
                       f"{status['restarts']} restarts used of spec.runPolicy.backoffLimit={limit}; "
                       f"last failure: {failure.reason}: {failure.message}")
    else:
        status["attempt"] += 1
        status["restarts"] += 1
        conditions.set(c.RESTARTING, True, failure.reason,
                       f"attempt {status['attempt']} (restart {status['restarts']} of {limit}) after "
                       f"{failure.message}")
        conditions.clear(c.RUNNING, failure.reason, failure.message)
        status["message"] = failure.message
        return
    status["completionTime"] = format_time(now)
    status["message"] = conditions.message(c.FAILED)


def _running_or_waiting(job: DeepTrainingJob, status: Manifest, conditions: _Conditions,
                        pods: Sequence[Manifest]) -> None:
    workers = job.spec.workers
    running = sum(1 for p in pods if p.get("status", {}).get("phase") == "Running" and not is_deleting(p))
    if running >= workers:
        conditions.set(c.RUNNING, True, c.REASON_WORKERS_RUNNING, f"{running}/{workers} workers running")
        if conditions.is_true(c.RESTARTING):
            conditions.set(c.RESTARTING, False, c.REASON_RESTARTED, f"attempt {status['attempt']} is running")
        status["message"] = None
        return
    waiting = waiting_reason(pods)
    if waiting is not None:
        reason, message = waiting
        conditions.set(c.RUNNING, False, reason, message)
        status["message"] = message
    else:
        conditions.set(c.RUNNING, False, c.REASON_WAITING_FOR_WORKERS, f"{running}/{workers} workers running")
