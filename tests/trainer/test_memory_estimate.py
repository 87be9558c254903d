"""The memory estimate checked before training: a warning locally, InsufficientMemory (exit 13) in a cluster pod."""

from __future__ import annotations

import logging

import pytest
import torch

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import ExitCode
from deeptrain_trainer.errors import InsufficientMemory, termination_for
from deeptrain_trainer.memory import GIB, MemoryEstimate, check_memory, estimate_training_memory
from deeptrain_trainer.tasks import task_for
from deeptrain_trainer.tasks.base import ModelSpec

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, trainer_config):
    """The local example's classifier (ResNext at a quarter width, a third depth), ten concepts."""
    config = trainer_config(tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("data"), image_size=1024,
                         batch_size=64)
    return task_for(catalog.VISUAL_CLASSIFIER).build_model(ModelSpec.from_config(config, [str(i) for i in range(10)]))


def test_activations_grow_with_pixels_and_batch(classifier):
    small = estimate_training_memory(classifier, image_size=128, per_rank_batch=8, optimizer="sgd", device=CPU)
    wider = estimate_training_memory(classifier, image_size=256, per_rank_batch=8, optimizer="sgd", device=CPU)
    bigger = estimate_training_memory(classifier, image_size=128, per_rank_batch=32, optimizer="sgd", device=CPU)
    assert wider.activations == pytest.approx(4 * small.activations, rel=0.01)
    assert bigger.activations == pytest.approx(4 * small.activations, rel=0.01)
    assert small.optimizer == small.gradients > 0  # SGD momentum: one copy of the trainable parameters


def test_the_probe_leaves_batch_norm_statistics_alone(classifier):
    before = [buffer.clone() for buffer in classifier.buffers()]
    estimate_training_memory(classifier, image_size=64, per_rank_batch=2, optimizer="sgd", device=CPU)
    assert all(torch.equal(a, b) for a, b in zip(before, classifier.buffers(), strict=True))


def test_image_size_1024_with_batch_64_warns_before_training(classifier, caplog, monkeypatch):
    """The issue's case: 2 local processes of 32 items at 1024 px; this machine has far less than the estimate."""
    estimate = estimate_training_memory(classifier, image_size=1024, per_rank_batch=32, optimizer="sgd", device=CPU)
    assert estimate.total > 9 * GIB
    monkeypatch.setattr("deeptrain_trainer.memory.container_memory_limit", lambda: None)
    monkeypatch.setattr("deeptrain_trainer.memory.machine_memory", lambda: 24 * GIB)
    with caplog.at_level(logging.WARNING, logger="deeptrain_trainer.memory"):
        check_memory(estimate, processes=2, device=CPU, in_cluster=False)
    assert "more than this machine's 24.0 GiB" in caplog.text and "lower batch_size or image_size" in caplog.text


def test_over_the_container_limit_in_a_cluster_fails_permanently_with_a_reason(monkeypatch):
    monkeypatch.setattr("deeptrain_trainer.memory.container_memory_limit", lambda: 2 * GIB)
    estimate = MemoryEstimate(parameters=GIB // 4, gradients=GIB // 4, optimizer=GIB // 4, activations=2 * GIB)
    with pytest.raises(InsufficientMemory, match=r"about 2\.8 GiB .* more than the container's memory limit of 2\.0 GiB; "
                                                 r"lower batch_size or image_size, or raise spec.resources.limits.memory"):
        check_memory(estimate, processes=1, device=CPU, in_cluster=True)
    message = termination_for(InsufficientMemory("x"))
    assert (message.reason, message.exitCode, message.permanent) == ("InsufficientMemory",
                                                                     ExitCode.INSUFFICIENT_MEMORY, True)
    check_memory(MemoryEstimate(1, 1, 1, GIB), processes=1, device=CPU, in_cluster=True)  # fits: no error


def test_the_operator_fails_the_job_with_reason_insufficient_memory():
    from deeptrain_operator import constants
    from deeptrain_operator.status import classify_pod_failure

    message = termination_for(InsufficientMemory("training needs about 40.0 GiB ..., more than the container's "
                                                 "memory limit of 8.0 GiB; lower batch_size or image_size"))
    pod = {"metadata": {"name": "big-1-0"},
           "status": {"phase": "Failed", "containerStatuses": [{
               "name": constants.TRAINER_CONTAINER,
               "state": {"terminated": {"exitCode": 13, "message": message.to_json()}}}]}}
    failure = classify_pod_failure(pod)
    assert failure is not None and failure.permanent
    assert failure.reason == "InsufficientMemory" and "memory limit of 8.0 GiB" in failure.message
