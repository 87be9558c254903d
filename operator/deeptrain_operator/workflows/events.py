"""Events a user should notice about a Workflow: each condition change, failures as warnings."""

from __future__ import annotations

from typing import Any

from .. import constants as c
from ..events import Event

Manifest = dict[str, Any]

_WARNING_REASONS = {c.REASON_MODEL_FAILED, c.REASON_MODEL_NOT_FOUND, c.REASON_INVALID_SPEC,
                    c.REASON_INDEXING_FAILED, c.REASON_SUPERSEDED_BY}


def transition_events(previous: Manifest, status: Manifest) -> list[Event]:
    before = {cond["type"]: cond for cond in previous.get("conditions") or []}
    found = []
    for cond in status.get("conditions") or []:
        old = before.get(cond["type"])
        if old is not None and (old.get("status"), old.get("reason")) == (cond["status"], cond["reason"]):
            continue
        warning = cond["reason"] in _WARNING_REASONS
        if cond["status"] == "True" or warning:
            found.append(Event("Warning" if warning else "Normal", cond["reason"] if warning else cond["type"],
                               cond.get("message", "")))
    return found
