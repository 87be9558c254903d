"""The optimisation hyperparameters do what the catalog documents, and checkpoints survive crashes."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from deeptrain_api import catalog
from deeptrain_trainer.checkpoint import load_checkpoint, save_checkpoint
from deeptrain_trainer.engine import is_evaluation_epoch, steps_per_epoch
from deeptrain_trainer.errors import ConfigError
from deeptrain_trainer.optim import build_optimizer, per_rank_batch_size, set_epoch_learning_rate


class TwoPartModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), "head": list(self.head.parameters())}


def rates_by_role(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The rate of each role's groups (weights and biases of a role must share it)."""
    rates: dict[str, set[float]] = {}
    for group in optimizer.param_groups:
        rates.setdefault(group["role"], set()).add(group["lr"])
    assert all(len(values) == 1 for values in rates.values()), rates
    return {role: values.pop() for role, values in rates.items()}


def hyperparameters(**given: object) -> dict[str, object]:
    return catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER, given)


def test_step_schedule_seen_by_the_optimizer():
    hp = hyperparameters(batch_size=64, lrate=0.1, init_epochs=3, step_epochs=2)
    optimizer = build_optimizer(TwoPartModel(), hp, "sgd")
    seen = {}
    for epoch in (0, 2, 3, 4, 5):
        set_epoch_learning_rate(optimizer, hp, epoch)
        seen[epoch] = rates_by_role(optimizer)["head"]
    assert seen[0] == seen[2] == pytest.approx(0.1)  # constant for init_epochs
    assert seen[3] == seen[4] == pytest.approx(0.1 * catalog.LR_DECAY_FACTOR)  # first decay at init_epochs
    assert seen[5] == pytest.approx(0.1 * catalog.LR_DECAY_FACTOR**2)  # next one step_epochs later


def test_base_gradient_multiplier_scales_only_the_backbone():
    hp = hyperparameters(batch_size=32, lrate=0.2, base_gradient_multiplier=0.1)
    optimizer = build_optimizer(TwoPartModel(), hp, "sgd")
    assert rates_by_role(optimizer) == {"backbone": pytest.approx(0.02), "head": pytest.approx(0.2)}
    set_epoch_learning_rate(optimizer, {**hp, "init_epochs": 1, "step_epochs": 1}, 1)
    assert rates_by_role(optimizer) == {"backbone": pytest.approx(0.01), "head": pytest.approx(0.1)}


@pytest.mark.parametrize(("given", "expected"), [
    ({"batch_size": 64, "per_item_lrate": 0.001}, 0.064),
    ({"batch_size": 64, "per_128_lrate": 0.2}, 0.1),
    ({"batch_size": 64, "lrate": 0.03}, 0.03),
    ({"batch_size": 32}, 32 * catalog.DEFAULT_PER_ITEM_LRATE),
])
def test_learning_rate_keys_give_the_documented_rate(given, expected):
    optimizer = build_optimizer(TwoPartModel(), hyperparameters(**given), "sgd")
    assert rates_by_role(optimizer)["head"] == pytest.approx(expected)


def test_sgd_uses_nesterov_momentum_and_no_decay_on_biases():
    optimizer = build_optimizer(TwoPartModel(), hyperparameters(batch_size=8), "sgd")
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["nesterov"]
    decays = {(group["role"], group["params"][0].ndim): group["weight_decay"] for group in optimizer.param_groups}
    assert decays[("head", 2)] == 1e-4 and decays[("head", 1)] == 0.0


def test_global_batch_must_split_over_processes():
    assert per_rank_batch_size(64, 4) == 16
    with pytest.raises(ConfigError, match=r"spec\.hyperparameters\.batch_size"):
        per_rank_batch_size(10, 4)


def test_steps_per_epoch_follow_num_items_per_epoch():
    assert steps_per_epoch(items_per_epoch=1000, batch_size=100) == 10
    assert steps_per_epoch(items_per_epoch=250, batch_size=100) == 2  # the partial batch is not stepped
    assert steps_per_epoch(items_per_epoch=10, batch_size=100) == 1


def test_test_freq_picks_the_evaluation_epochs():
    evaluated = [epoch + 1 for epoch in range(7) if is_evaluation_epoch(epoch, test_freq=3, num_epochs=7)]
    assert evaluated == [3, 6, 7]


def test_crash_between_temporary_write_and_rename_keeps_a_loadable_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"epoch": 1})
    save_checkpoint(tmp_path, {"epoch": 2})
    real_replace = os.replace

    def crash_on_promoting_the_new_file(source, target):
        if str(source).endswith(".tmp"):
            raise OSError("simulated power loss")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash_on_promoting_the_new_file)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path, {"epoch": 3})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path)["epoch"] == 2


def test_torn_last_checkpoint_falls_back_to_the_previous_one(tmp_path):
    save_checkpoint(tmp_path, {"epoch": 1})
    save_checkpoint(tmp_path, {"epoch": 2})
    (tmp_path / "last.pt").write_bytes(b"\x80\x02 half a pickle")
    assert load_checkpoint(tmp_path)["epoch"] == 1


def test_full_disk_is_an_output_error(tmp_path, monkeypatch):
    import errno

    from deeptrain_trainer.errors import OutputError

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OutputError, match="No space left"):
        save_checkpoint(tmp_path / "checkpoints", {"epoch": 1})


def _average_buffers_on_rank(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    from deeptrain_trainer.distributed import DistributedContext, average_buffers

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        layer = torch.nn.BatchNorm1d(3)
        layer.running_mean.fill_(float(rank))
        layer.running_var.copy_(torch.tensor([1.0, 2.0, 3.0]) * (rank + 1))
        layer.num_batches_tracked.fill_(rank + 5)
        average_buffers(DistributedContext(rank=rank, local_rank=rank, world_size=2, device=torch.device("cpu")), layer)
        results[rank] = (layer.running_mean.tolist(), int(layer.num_batches_tracked), layer.running_var.tolist())
    finally:
        dist.destroy_process_group()


def test_batchnorm_statistics_are_averaged_over_ranks_at_epoch_end():
    """DDP no longer broadcasts buffers every step; the ranks' running statistics meet at each epoch end."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_average_buffers_on_rank, args=(port, results), nprocs=2)
    assert results[0][0] == results[1][0] == [0.5, 0.5, 0.5]
    assert results[0][2] == results[1][2] == [1.5, 3.0, 4.5]  # each buffer gets its own mean back
    assert (results[0][1], results[1][1]) == (5, 6)  # integer counters are left alone


def test_ranks_agree_on_a_stop_every_few_seconds_of_steps_not_every_step(monkeypatch):
    from deeptrain_trainer import stop_schedule
    from deeptrain_trainer.distributed import DistributedContext

    clock = [0.0]
    started: list[int] = []  # the steps after which a check started
    read: list[int] = []  # the steps after which its result was read
    other_rank_signal = [0]

    def start_max_of_each(ctx, values):
        started.append(step)
        signal_then = max(values[0], other_rank_signal[0])

        def result():
            read.append(step)
            return [signal_then, values[1]]

        return result

    monkeypatch.setattr(stop_schedule.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(stop_schedule, "start_max_of_each_across_ranks", start_max_of_each)
    ctx = DistributedContext(rank=0, local_rank=0, world_size=2, device=torch.device("cpu"))
    schedule = stop_schedule.StopSchedule(ctx, steps_per_epoch=1000, check_seconds=2.0)
    agreed = {}
    for step in range(1, 200):
        clock[0] += 0.125  # 125 ms steps
        if step == 150:
            other_rank_signal[0] = 15  # SIGTERM reached the other rank only
        agreed[step] = schedule.agreed_signal(step, 0)
        if agreed[step]:
            break
    assert started[:2] == [1, 2]  # no pace known yet: the second check follows at once
    assert all(later - earlier == 16 for earlier, later in zip(started[2:], started[3:], strict=False))  # 2 s / 0.125 s
    assert read == [at + 1 for at in started]  # no rank waits on a check at the step that started it
    stopped_at = max(agreed)
    assert agreed[stopped_at] == 15 and 150 < stopped_at <= 150 + 16 + 1  # within check_seconds + two steps


def test_a_world_of_one_stops_after_the_step_the_signal_arrived_in():
    from deeptrain_trainer.distributed import DistributedContext
    from deeptrain_trainer.stop_schedule import StopSchedule

    schedule = StopSchedule(DistributedContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu")), 100)
    assert [schedule.agreed_signal(step, signum) for step, signum in [(1, 0), (2, 0), (3, 15)]] == [0, 0, 15]


def test_short_epochs_are_still_checked_twice_each():
    from deeptrain_trainer.distributed import DistributedContext
    from deeptrain_trainer.stop_schedule import StopSchedule

    schedule = StopSchedule(DistributedContext(rank=0, local_rank=0, world_size=2, device=torch.device("cpu")), 8)
    assert schedule.interval(seconds_per_step=0.01) == 4  # 2 s would be 200 steps: 25 epochs of 8
    assert schedule.interval(seconds_per_step=1.0) == 2
