"""Operator settings, read once from the environment (the Helm chart sets these variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_TRAINER_IMAGE = "deeptrain-trainer:0.1.0"

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class Settings:
    trainer_image: str = DEFAULT_TRAINER_IMAGE
    serve_image: str = DEFAULT_TRAINER_IMAGE
    watch_namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_port: int = 8080  # 0 disables the /metrics server
    reconcile_interval: float = 30.0  # seconds between level-based re-checks of every job
    trainer_uid: int = 1000
    rendezvous_port: int = 29500

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        namespaces = tuple(ns.strip() for ns in env.get("DEEPTRAIN_WATCH_NAMESPACES", "").split(",") if ns.strip())
        return cls(
            trainer_image=env.get("DEEPTRAIN_TRAINER_IMAGE") or cls.trainer_image,
            serve_image=env.get("DEEPTRAIN_SERVE_IMAGE") or cls.serve_image,
            watch_namespaces=namespaces,
            metrics_port=_number(env, "DEEPTRAIN_METRICS_PORT", cls.metrics_port, int, minimum=0),
            reconcile_interval=_number(env, "DEEPTRAIN_RECONCILE_INTERVAL", cls.reconcile_interval, float,
                                       minimum=0.1),
            trainer_uid=_number(env, "DEEPTRAIN_TRAINER_UID", cls.trainer_uid, int, minimum=1),
            rendezvous_port=_number(env, "DEEPTRAIN_RENDEZVOUS_PORT", cls.rendezvous_port, int, minimum=1),
        )


def _number(env: Mapping[str, str], name: str, default: Number, kind: type[Number], *, minimum: float) -> Number:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be >= {minimum:g}")
    return value
