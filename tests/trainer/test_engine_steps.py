"""The training step in one process: non-finite gradients are skipped and counted, and a run of them
fails the job with NonFiniteLoss (the trainer's own loop, on the tiny colour-squares dataset)."""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Iterator

import pytest
import torch
from safetensors.torch import load_file

from deeptrain_api import catalog
from deeptrain_trainer.distributed import DistributedContext, wants_sync_batch_norm
from deeptrain_trainer.engine import Trainer
from deeptrain_trainer.errors import NonFiniteLoss, termination_for


@pytest.fixture(autouse=True)
def _quiet_and_signals_restored(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("DEEPTRAIN_REPORT", "none")
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in handlers.items():  # the trainer installs its own
        signal.signal(signum, handler)


def trainer_with_nan_losses(config, nan_steps) -> Trainer:
    """A Trainer whose loss is NaN at the given 1-based global steps."""
    trainer = Trainer(config, DistributedContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu")))
    original = trainer.task.training_loss
    steps = iter(range(1, 10_000))

    def training_loss(model, loss_owner, batch):
        loss, metrics = original(model, loss_owner, batch)
        return (loss * math.nan if next(steps) in nan_steps else loss), metrics

    trainer.task.training_loss = training_loss
    return trainer


def test_non_finite_steps_are_skipped_counted_and_training_goes_on(colour_squares, trainer_config, tmp_path):
    config = trainer_config(tmp_path / "model", colour_squares, batch_size=8, image_size=32, num_epochs=1, lrate=0.02,
                            num_items_per_epoch=48)
    trainer_with_nan_losses(config, nan_steps={2, 3}).run()
    records = [json.loads(line) for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    assert [record["skippedSteps"] for record in records] == [2]
    assert all(math.isfinite(record["loss"]) for record in records)  # the epoch mean leaves skipped steps out
    weights = load_file(tmp_path / "model" / "model.safetensors")
    assert all(bool(tensor.isfinite().all()) for tensor in weights.values() if tensor.is_floating_point())


def test_a_run_of_non_finite_steps_fails_the_job_with_its_reason(colour_squares, trainer_config, tmp_path):
    # One long epoch: the job fails before any evaluation or checkpoint.
    config = trainer_config(tmp_path / "model", colour_squares, batch_size=8, image_size=32, num_epochs=1, lrate=0.02,
                            num_items_per_epoch=8 * (4 + catalog.NON_FINITE_STEPS_LIMIT))
    with pytest.raises(NonFiniteLoss) as failed:
        trainer_with_nan_losses(config, nan_steps=set(range(3, 10_000))).run()
    last = 2 + catalog.NON_FINITE_STEPS_LIMIT
    assert f"up to step {last}" in str(failed.value) and "gradient_clip_norm" in str(failed.value)
    message = termination_for(failed.value)
    assert message.reason == "NonFiniteLoss" and message.permanent
    assert not (tmp_path / "model" / "model.safetensors").exists()


def test_sync_batch_norm_rule():
    assert wants_sync_batch_norm(per_rank_batch=2, world_size=8, below=16)
    assert not wants_sync_batch_norm(per_rank_batch=16, world_size=8, below=16)  # enough items per process
    assert not wants_sync_batch_norm(per_rank_batch=2, world_size=1, below=16)  # one process: nothing to sync
    assert not wants_sync_batch_norm(per_rank_batch=2, world_size=8, below=0)  # switched off


@pytest.mark.parametrize("gradient_scale", [1e-3, 1.0, 1e3])
def test_gradient_clipping_matches_torch_bit_for_bit_above_and_below_the_limit(gradient_scale):
    from deeptrain_trainer.optim import clip_gradient_norm

    generator = torch.Generator().manual_seed(3)
    ours = [torch.nn.Parameter(torch.randn(size, generator=generator)) for size in (4, 300, 17)]
    for parameter in ours:
        parameter.grad = torch.randn(parameter.shape, generator=generator) * gradient_scale
    reference = [torch.nn.Parameter(parameter.detach().clone()) for parameter in ours]
    for copy, parameter in zip(reference, ours, strict=True):
        copy.grad = parameter.grad.clone()
    before = [parameter.grad.clone() for parameter in ours]

    norm = clip_gradient_norm(ours, 2.0)

    assert norm == float(torch.nn.utils.clip_grad_norm_(reference, 2.0))
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, reference, strict=True))
    clipped = norm > 2.0
    assert clipped == (gradient_scale > 1e-3)
    assert all(torch.equal(a.grad, b) for a, b in zip(ours, before, strict=True)) != clipped
