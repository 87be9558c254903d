"""Kubernetes Events for what a user should notice: one per status transition, plus child repairs.

`transition_events` is pure (old status, new status -> events); `post` hands them to kopf's poster,
which writes core/v1 Events for the job in the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import kopf

from . import constants as c

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _by_type(status: Manifest) -> dict[str, Manifest]:
    return {cond["type"]: cond for cond in status.get("conditions") or [] if "type" in cond}


def _changed(old: Manifest | None, new: Manifest) -> bool:
    return old is None or (old.get("status"), old.get("reason")) != (new.get("status"), new.get("reason"))


def transition_events(old: Manifest, new: Manifest) -> list[Event]:
    before, after = _by_type(old), _by_type(new)
    events: list[Event] = []
    if new.get("restarts") == 0 and (old.get("attempt") or 0) and (new.get("attempt") or 0) > old["attempt"]:
        events.append(Event("Normal", c.EVENT_RETRAINING, f"the spec changed: attempt {new['attempt']} "
                                                           "starts a new training run"))
    for type_, cond in after.items():
        was = before.get(type_)
        if not _changed(was, cond):
            continue
        text = f"{cond['reason']}: {cond.get('message', '')}".rstrip(": ")
        if cond["status"] == "True":
            warning = type_ in (c.FAILED, c.RESTARTING)
            events.append(Event("Warning" if warning else "Normal", type_, text))
        elif type_ == c.SUSPENDED and was is not None and was.get("status") == "True":
            events.append(Event("Normal", c.EVENT_RESUMED, text))
        elif type_ == c.CREATED and cond["reason"] == c.REASON_TTL_EXPIRED:
            events.append(Event("Normal", c.EVENT_CHILDREN_DELETED, cond.get("message", "")))
        elif type_ == c.RUNNING and cond["reason"] not in (c.REASON_WAITING_FOR_WORKERS, c.REASON_JOB_SUCCEEDED,
                                                          c.REASON_JOB_FAILED, c.REASON_JOB_SUSPENDED,
                                                          c.REASON_WAITING_FOR_ADMISSION, c.REASON_SPEC_CHANGED) \
                and cond["reason"] != (after.get(c.RESTARTING) or {}).get("reason"):
            # A reason Kubernetes gave for pods not running: Unschedulable, ImagePullBackOff, ...
            events.append(Event("Warning", cond["reason"], cond.get("message", "")))
    return events


def post(job_body: Manifest, events: list[Event]) -> None:
    for event in events:
        kopf.event(job_body, type=event.type, reason=event.reason, message=event.message)
