"""How the operator is configured and launched: environment, kopf arguments, metrics, drift repair."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from deeptrain_operator import metrics
from deeptrain_operator.__main__ import kopf_arguments
from deeptrain_operator.reconcile import drift_patch
from deeptrain_operator.settings import Settings


def test_settings_come_from_the_environment_with_chart_defaults():
    assert Settings.from_env({}) == Settings(trainer_image="deeptrain-trainer:0.1.0", serve_image="deeptrain-trainer:0.1.0",
                                             watch_namespaces=(), metrics_port=8080, reconcile_interval=30.0,
                                             trainer_uid=1000, rendezvous_port=29500)
    settings = Settings.from_env({"DEEPTRAIN_TRAINER_IMAGE": "registry.local/trainer:1", "DEEPTRAIN_METRICS_PORT": "0",
                                  "DEEPTRAIN_WATCH_NAMESPACES": "team-a, team-b,", "DEEPTRAIN_RECONCILE_INTERVAL": "2.5",
                                  "DEEPTRAIN_TRAINER_UID": "2000", "DEEPTRAIN_RENDEZVOUS_PORT": "23456"})
    assert settings.trainer_image == "registry.local/trainer:1"
    assert settings.watch_namespaces == ("team-a", "team-b")
    assert (settings.metrics_port, settings.reconcile_interval) == (0, 2.5)
    assert (settings.trainer_uid, settings.rendezvous_port) == (2000, 23456)


@pytest.mark.parametrize("env", [{"DEEPTRAIN_METRICS_PORT": "eighty"}, {"DEEPTRAIN_TRAINER_UID": "0"}])
def test_bad_settings_name_the_variable(env):
    with pytest.raises(ValueError, match=next(iter(env))):
        Settings.from_env(env)


def test_the_operator_runs_standalone_cluster_wide_by_default():
    args = kopf_arguments(Settings(), ["--verbose"])
    assert args[:2] == ["run", "--standalone"]
    assert "--all-namespaces" in args
    assert args[args.index("--liveness") + 1] == "http://0.0.0.0:8081/healthz"
    assert args[args.index("-m") + 1] == "deeptrain_operator.handlers"
    assert args[-1] == "--verbose"


def test_watched_namespaces_limit_the_operator():
    args = kopf_arguments(Settings(watch_namespaces=("team-a", "team-b")), [])
    assert "--all-namespaces" not in args
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--namespace"] == ["team-a", "team-b"]


def test_jobs_gauge_counts_jobs_by_namespace_and_phase():
    metrics.record_phase("ns-metrics", "a", "Running")
    metrics.record_phase("ns-metrics", "b", "Running")
    metrics.record_phase("ns-metrics", "c", "Failed")
    metrics.record_phase("ns-metrics", "b", "Succeeded")
    metrics.record_phase("ns-metrics", "c", None)

    def value(phase: str) -> float | None:
        return REGISTRY.get_sample_value("deeptrain_jobs", {"namespace": "ns-metrics", "phase": phase})

    assert (value("Running"), value("Succeeded"), value("Failed")) == (1, 1, 0)
    for name in ("a", "b"):
        metrics.record_phase("ns-metrics", name, None)


def test_drift_patch_restores_only_what_the_operator_owns():
    desired = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "shoes", "labels": {"app.kubernetes.io/name": "deeptrain"}},
               "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"job": "shoes"},
                        "ports": [{"name": "rendezvous", "port": 29500}]}}
    untouched = {"metadata": {"name": "shoes", "labels": {"app.kubernetes.io/name": "deeptrain", "extra": "kept"}},
                 "spec": {"clusterIP": "None", "clusterIPs": ["None"], "publishNotReadyAddresses": True,
                          "selector": {"job": "shoes"}, "ports": [{"name": "rendezvous", "port": 29500,
                                                                   "protocol": "TCP", "targetPort": 29500}]}}
    assert drift_patch(desired, untouched) == {}
    edited = {**untouched, "spec": {**untouched["spec"], "selector": {"job": "other"}}}
    assert drift_patch(desired, edited) == {"spec": {"selector": {"job": "shoes"}, "publishNotReadyAddresses": True,
                                                     "ports": [{"name": "rendezvous", "port": 29500}]}}
