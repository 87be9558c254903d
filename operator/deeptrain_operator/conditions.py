"""metav1.Condition bookkeeping shared by every kind's status function."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

Manifest = dict[str, Any]


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conditions:
    """Conditions keyed by type; lastTransitionTime moves only when status does; listed in `order`."""

    def __init__(self, existing: Iterable[Manifest], now: datetime, generation: int | None,
                 order: Sequence[str]) -> None:
        self._by_type = {cond["type"]: dict(cond) for cond in existing if cond.get("type")}
        self._now = format_time(now)
        self._generation = generation
        self._order = {type_: i for i, type_ in enumerate(order)}

    def get(self, type_: str) -> Manifest | None:
        return self._by_type.get(type_)

    def is_true(self, type_: str) -> bool:
        return self._by_type.get(type_, {}).get("status") == "True"

    def reason(self, type_: str) -> str | None:
        return self._by_type.get(type_, {}).get("reason")

    def message(self, type_: str) -> str:
        return self._by_type.get(type_, {}).get("message", "")

    def set(self, type_: str, status: bool, reason: str, message: str = "") -> None:
        value = "True" if status else "False"
        old = self._by_type.get(type_)
        since = old["lastTransitionTime"] if old and old.get("status") == value else self._now
        cond = {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": since}
        if self._generation is not None:
            cond["observedGeneration"] = self._generation
        self._by_type[type_] = cond

    def clear(self, type_: str, reason: str, message: str = "") -> None:
        """False, but only for a condition that is already shown: no noise for what never happened."""
        if type_ in self._by_type:
            self.set(type_, False, reason, message)

    def drop(self, type_: str) -> None:
        self._by_type.pop(type_, None)

    def as_list(self) -> list[Manifest]:
        return sorted(self._by_type.values(), key=lambda cond: self._order.get(cond["type"], len(self._order)))
