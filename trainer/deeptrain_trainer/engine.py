"""The training loop every torchrun process runs: data, model, optimisation, evaluation, checkpoints, artifacts.

One epoch = `steps_per_epoch` optimizer steps of `batch_size` items (the global batch; each rank
loads batch_size / world_size). `steps_per_epoch` is num_items_per_epoch (0 = the training set's
size) divided by batch_size, rounded down (at least one step): a partial last batch would step with
a smaller batch than asked and, with batch norm, can be a single item.

Checkpoints are written at the end of every epoch and when SIGTERM/SIGINT arrives: all ranks agree
on the signal every few seconds of training and twice per epoch (stop_schedule: within
CHECK_SECONDS or half an epoch, plus two steps) and stop after the same step. A restarted process
resumes from the latest one: same epoch, same position in the epoch's item order, same optimizer,
RNG state, BatchNorm statistics and running loss, so that on CPU the resumed run ends bit-identical
to an uninterrupted one. Nothing the loop does draws from torch's global generator except the
model itself (dropout): the item order and the flips are functions of (seed, epoch, index), and
every DataLoader has its own generator.

Each step clips the gradient norm (`gradient_clip_norm`) and skips the update when the norm is not
finite (the gradients are all-reduced, so every rank decides alike); NON_FINITE_STEPS_LIMIT skipped
steps in a row fail the job with NonFiniteLoss.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from deeptrain_api import catalog
from deeptrain_api.catalog import NON_FINITE_STEPS_LIMIT
from deeptrain_api.trainer_contract import (
    CHECKPOINT_DIR,
    METRICS_HISTORY,
    PLOTS_DIR,
    TENSORBOARD_DIR,
    ModelSummary,
    TerminationMessage,
    TrainerConfig,
    load_config,
)

from .artifacts import (
    MetricsHistory,
    OutputDir,
    build_model_card,
    local_path_of,
    read_model_card,
    weights_path,
    write_model,
)
from .checkpoint import (
    ResumeState,
    config_hash,
    dataset_fingerprint,
    load_checkpoint,
    run_hash,
    save_checkpoint,
    why_not_resume,
)
from .distributed import (
    DistributedContext,
    average_buffers,
    barrier,
    broadcast_from_main,
    gather_to_main,
    init_distributed,
    mean_across_ranks,
    seed_everything,
    shutdown_distributed,
    wants_sync_batch_norm,
)
from .errors import ConfigError, Interrupted, NonFiniteLoss, termination_for
from .memory import check_memory, estimate_training_memory
from .optim import (
    build_optimizer,
    clip_gradient_norm,
    learning_rates_by_role,
    per_rank_batch_size,
    set_epoch_learning_rate,
)
from .plots import plot_training_curves
from .reporting import Reporter, make_reporter, progress_payload, utc_now, write_termination_message
from .stop_schedule import StopSchedule
from .tasks import task_for
from .tasks.base import Evaluation, ModelSpec, Task, to_device

log = logging.getLogger("deeptrain_trainer")

LOSS_LOG_EVERY_STEPS = 10


class StopRequest:
    """Remembers the first SIGTERM/SIGINT; the loop acts on it between steps."""

    def __init__(self) -> None:
        self.signum = 0

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.signum:
            self.signum = signum
            log.warning("got %s: stopping after the current step", signal.Signals(signum).name)


def run_from_config_file(path: str) -> int:
    """Train as the config says; returns the process exit code (and writes the termination message)."""
    _configure_logging(rank=int(os.environ.get("RANK", "0")))
    ctx: DistributedContext | None = None
    try:
        config = _read_config(path)
        ctx = init_distributed()
        summary = Trainer(config, ctx).run()
        if ctx.local_rank == 0:
            write_termination_message(TerminationMessage(reason="Succeeded", model=summary), overwrite=True)
        return 0
    except (Exception, Interrupted) as error:
        message = termination_for(error)
        if isinstance(error, Interrupted):
            log.warning("%s", error)
        elif message.exitCode == 1:
            log.exception("training failed")
        elif int(os.environ.get("LOCAL_RANK", "0")) == 0:  # every rank fails alike: one line per machine
            log.error("%s: %s", message.reason, message.message)
        write_termination_message(message, overwrite=False)
        return message.exitCode
    finally:
        if ctx is not None:
            shutdown_distributed()


def _read_config(path: str) -> TrainerConfig:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read the trainer config {path}: {error}") from error
    try:
        return load_config(text)
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from error


def _configure_logging(rank: int) -> None:
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(message)s", datefmt="%H:%M:%S")


class Trainer:
    def __init__(self, config: TrainerConfig, ctx: DistributedContext):
        self.config = config
        self.ctx = ctx
        self.hp = dict(config.hyperparameters)
        self.task: Task = task_for(config.modelType)
        self.output = OutputDir(config.outputUri)
        self.stop = StopRequest()
        self.state = ResumeState()
        self.pending_process_state: ResumeState | None = None  # restored once the epoch's loader exists
        self.use_amp = ctx.is_cuda
        self.amp_dtype = torch.bfloat16 if ctx.is_cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.channels_last = ctx.is_cuda and self.task.input_kind == "image"
        self.clip_norm = float(self.hp.get("gradient_clip_norm", catalog.DEFAULT_GRADIENT_CLIP_NORM)) or math.inf

    # ----------------------------------------------------------------- setup

    def run(self) -> ModelSummary | None:
        self.stop.install()
        seed_everything(self.config.seed, self.ctx.rank)
        from .data import load_splits

        splits = load_splits(self.config)
        self.concepts = splits.concepts
        self.output.pull(CHECKPOINT_DIR)
        checkpoint = load_checkpoint(self.output.path(CHECKPOINT_DIR))
        self.run = run_hash(self.config.model_dump_json())
        # Every rank must take the same decision, so rank 0's listing is the one compared.
        self.data_fingerprint = broadcast_from_main(self.ctx, dataset_fingerprint(
            [uri for uri in (self.config.dataset.uri, self.config.dataset.validation_uri) if uri])
            if self.ctx.is_main else None)
        new_run_reason = why_not_resume(checkpoint, self.run, self.data_fingerprint) if checkpoint else None
        if new_run_reason:
            if self.ctx.is_main:
                log.warning("not resuming from %s: %s; starting a new run", self.output.path(CHECKPOINT_DIR),
                            new_run_reason)
            checkpoint = None
        self.identity = config_hash(self.config.modelType, self.config.template,
                                    self.config.templateScale.model_dump(), self.concepts)
        if checkpoint is not None and checkpoint["config_hash"] != self.identity:
            raise ConfigError(
                f"{self.output.path(CHECKPOINT_DIR)} holds a checkpoint of this run whose concepts differ from the "
                "dataset's now; restore the dataset, or use a new spec.output.uri to start over")

        self.tokenizer = self._tokenizer(splits.train, checkpoint)
        self.spec = ModelSpec.from_config(self.config, self.concepts,
                                          vocab_size=self.tokenizer.vocab_size if self.tokenizer else None)
        try:
            self.model = self.task.build_model(self.spec).to(self.ctx.device)
        except ValueError as error:
            raise ConfigError(str(error)) from error
        self.trains_by_gradient = self.task.trains_by_gradient(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if checkpoint is None and self.config.baseModelUri:
            self._load_base_model(self.config.baseModelUri)

        self.per_rank_batch = per_rank_batch_size(int(self.hp["batch_size"]), self.ctx.world_size)
        if self.trains_by_gradient and self.task.input_kind == "image":
            estimate = estimate_training_memory(self.model, image_size=int(self.spec.image_size or 0),
                                                per_rank_batch=self.per_rank_batch, optimizer=self.task.optimizer,
                                                device=self.ctx.device)
            check_memory(estimate, processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1")), device=self.ctx.device,
                         announce=self.ctx.local_rank == 0)
        self.model = self._synchronise_batch_norm(self.model)
        self.train_set = self._dataset(splits.train, train=True)
        self.validation_set = self._dataset(splits.validation, train=False)
        self._preload(self.train_set, self.validation_set)
        items_per_epoch = int(self.hp.get("num_items_per_epoch", 0)) or len(splits.train)
        self.steps_per_epoch = steps_per_epoch(items_per_epoch, int(self.hp["batch_size"]))
        self.num_epochs = int(self.hp["num_epochs"]) if self.trains_by_gradient else 1
        self.train_sampler, self.train_loader = self._training_loader()
        self.stop_schedule = StopSchedule(self.ctx, self.steps_per_epoch)
        self.lineage = {"uri": self.config.dataset.uri, "format": self.config.dataset.format,
                        "train": len(splits.train), "validation": len(splits.validation),
                        "skipped": splits.image_stats.skipped, "fingerprint": self.data_fingerprint}
        if new_run_reason:
            self.lineage["newRunReason"] = new_run_reason

        self.optimizer = build_optimizer(self.model, self.hp, self.task.optimizer) if self.trains_by_gradient else None
        self.trained_parameters = [p for group in self.optimizer.param_groups for p in group["params"]] if self.optimizer else []
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        if checkpoint is not None:
            self._restore(checkpoint)
        self.ddp_model = self._wrap(self.model)

        self.history = MetricsHistory(self.output.path(METRICS_HISTORY))
        self.reporter: Reporter | None = None
        self.writer = None
        if self.ctx.is_main:
            if checkpoint is not None:
                self.history.truncate_after(self.state.global_step)
            elif self.history.path.exists():
                self.history.path.unlink()  # a fresh start: the old history describes another run
            self.reporter = make_reporter(self.config.job.namespace, self.config.job.name)
            self.writer = self._tensorboard(purge_step=self.state.global_step if checkpoint else None)
        try:
            return self._train_and_publish()
        finally:
            if self.reporter is not None:
                self.reporter.close()
            if self.writer is not None:
                self.writer.close()

    def _tokenizer(self, train_records: list[Any], checkpoint: dict[str, Any] | None) -> Any:
        if self.task.input_kind != "text":
            return None
        from .data import Tokenizer

        if checkpoint is not None and checkpoint.get("tokenizer"):
            return Tokenizer.from_dict(checkpoint["tokenizer"])
        return Tokenizer.fit([record.text for record in train_records])

    def _dataset(self, records: list[Any], *, train: bool) -> Any:
        from .data import build_dataset

        return build_dataset(self.config.modelType, records, self.concepts,
                             image_size=self.spec.image_size or 0, train=train,
                             flips=bool(self.hp.get("average_horizontal_flips", False)),
                             logreg=bool(self.hp.get("logreg", False)), tokenizer=self.tokenizer,
                             seed=self.config.seed)

    def _preload(self, *datasets: Any) -> None:
        """Decode every split that fits the in-memory cache now, so that no epoch decodes an image."""
        from .data.loading import cores_per_process

        started = time.monotonic()
        for dataset in datasets:
            dataset.preload(threads=cores_per_process())
        if all(dataset.in_memory for dataset in datasets):
            log.info("dataset decoded into memory in %.1f s", time.monotonic() - started)

    def _load_base_model(self, uri: str) -> None:
        from safetensors.torch import load_file

        from .models.registry import load_backbone_weights

        model_dir = local_path_of(uri)
        if model_dir is None:
            raise ConfigError(f"spec.baseModel: {uri} must be a local or mounted model directory")
        try:
            card = read_model_card(model_dir)
            state = load_file(str(weights_path(model_dir)))
        except (OSError, ValueError) as error:
            raise ConfigError(f"spec.baseModel: cannot read the model at {uri}: {error}") from error
        loaded, skipped = load_backbone_weights(self.model, state)
        log.info("base model %s (%s/%s): copied %d backbone tensors, skipped %d that do not fit this model",
                 uri, card.get("modelType"), card.get("template"), len(loaded), len(skipped))
        if not loaded:
            log.warning("base model %s shares no backbone tensor with %s/%s: training starts from scratch",
                        uri, self.config.modelType, self.config.template)

    def _synchronise_batch_norm(self, model: nn.Module) -> nn.Module:
        below = int(self.hp.get("sync_batch_norm_below", 0))
        if not wants_sync_batch_norm(self.per_rank_batch, self.ctx.world_size, below) or not self.trains_by_gradient:
            return model
        if not self.ctx.is_cuda:
            log.info("%d items per process: SyncBatchNorm would apply, but torch runs it on GPUs only; each process "
                     "normalises over its own items", self.per_rank_batch)
            return model
        log.info("%d items per process (< sync_batch_norm_below %d): BatchNorm statistics over all %d processes",
                 self.per_rank_batch, below, self.ctx.world_size)
        # Same parameter and buffer tensors, so the optimizer and the saved weights are unaffected.
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.ctx.is_distributed or not self.trains_by_gradient:
            return model
        device_ids = [self.ctx.device.index] if self.ctx.is_cuda else None
        # Broadcasting BatchNorm buffers from rank 0 before every forward costs a collective per
        # buffer per step (12% of a small InceptionBatchNorm step in bench/); ranks keep their own
        # running statistics instead, averaged at the end of each epoch (average_buffers).
        return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)

    def _tensorboard(self, purge_step: int | None) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.output.path(TENSORBOARD_DIR)), purge_step=purge_step)

    # ----------------------------------------------------------------- training

    def _train_and_publish(self) -> ModelSummary | None:
        if not self.trains_by_gradient:
            self._fit_without_gradients()
        self.final_evaluation: Evaluation | None = None
        trained_this_run = self.state.epoch < self.num_epochs
        while self.state.epoch < self.num_epochs:
            if self.trains_by_gradient:
                self._train_epoch()
            epoch = self.state.epoch
            evaluation = self._evaluate() if is_evaluation_epoch(epoch, int(self.hp.get("test_freq", 1)), self.num_epochs) else None
            self._end_epoch(epoch, evaluation)
            self.final_evaluation = evaluation
        if not trained_this_run:  # resumed after the last checkpoint of a finished run: measure again
            self.final_evaluation = self._evaluate()
        return self._publish(self.final_evaluation)

    def _train_epoch(self) -> None:
        epoch, start_step = self.state.epoch, self.state.step_in_epoch
        rate = set_epoch_learning_rate(self.optimizer, self.hp, epoch)
        if start_step:
            log.info("resuming epoch %d/%d at step %d", epoch + 1, self.num_epochs, start_step)
        else:
            self.state.start_epoch()
        log.info("epoch %d/%d: %d steps of %d items, learning rate %.6g (%s)", epoch + 1, self.num_epochs,
                 self.steps_per_epoch, self.hp["batch_size"], rate,
                 ", ".join(f"{role} {lr:.3g}" for role, lr in learning_rates_by_role(self.optimizer).items()))
        self.ddp_model.train()
        started, steps_done = time.monotonic(), 0
        for batch in self._train_batches(epoch, start_step):
            steps_done += 1
            signum = self._train_step(batch, started, steps_done)
            if signum:
                self._checkpoint()  # ranks' own BatchNorm statistics go in as they are: averaging would change the run
                raise Interrupted(signum)
        # Training steps only: the epoch-end collectives below, like evaluation and checkpoints, are not.
        self.epoch_items_per_second = steps_done * int(self.hp["batch_size"]) / max(1e-9, time.monotonic() - started)
        average_buffers(self.ctx, self.model)  # evaluation and the checkpoint see the same statistics
        self.epoch_mean_loss = mean_across_ranks(self.ctx, self.state.loss_sum / max(1, self.state.loss_count))

    def _train_step(self, batch: Any, started: float, steps_done: int) -> int:
        """One step and the loop's bookkeeping after it; the stop signal the ranks agreed on (0: none)."""
        loss_value, finite = self._step(batch)
        self.state.step_in_epoch += 1
        self.state.global_step += 1
        if finite:
            self.state.loss_sum += loss_value
            self.state.loss_count += 1
            self.state.non_finite_in_a_row = 0
        else:
            self._skip_non_finite_step(loss_value)
        self._report_step(loss_value, started, steps_done)
        return self.stop_schedule.agreed_signal(self.state.global_step, self.stop.signum)

    def _train_batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        self.train_sampler.set_epoch(epoch)
        self.train_sampler.set_start(start_step * self.per_rank_batch)
        self.train_set.set_epoch(epoch)  # flips depend on (seed, epoch, index)
        # The seed main's resume relies on: each epoch's iterator draws its base seed from its own generator.
        self.train_loader.generator.manual_seed(self.config.seed * 1_000_003 + epoch)
        batches = enumerate(iter(self.train_loader), start=start_step)
        if self.pending_process_state is not None:  # after the loader started, before the first step
            self.pending_process_state.restore_process_state(self.model)
            self.pending_process_state = None
        for index, batch in batches:
            if index >= self.steps_per_epoch:
                break
            yield to_device(batch, self.ctx.device, self.channels_last)

    def _training_loader(self) -> tuple[Any, DataLoader]:
        """One sampler and DataLoader for the whole run, so that loader workers (where used) persist."""
        from .data import EpochSampler, collate_fn

        sampler = EpochSampler(len(self.train_set), num_items_per_epoch=self.steps_per_epoch * int(self.hp["batch_size"]),
                               rank=self.ctx.rank, world_size=self.ctx.world_size, seed=self.config.seed)
        loader = DataLoader(self.train_set, batch_size=self.per_rank_batch, sampler=sampler, drop_last=True,
                            collate_fn=collate_fn(self.config.modelType),
                            **self._loader_options(self.train_set, persistent=True))
        return sampler, loader

    def _loader_options(self, dataset: Any, *, epoch: int = 0, persistent: bool = False) -> dict[str, Any]:
        from .data.loading import loader_options

        # Its own generator: a DataLoader iterator draws its base seed from the generator it is given,
        # from torch's global one otherwise, which would shift every dropout mask after a resume.
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return {"generator": generator,
                **loader_options(in_memory=dataset.in_memory, on_cuda=self.ctx.is_cuda, persistent=persistent)}

    def _step(self, batch: Any) -> tuple[float, bool]:
        """One optimizer step; (loss, whether the gradient was finite and the update made)."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss, _ = self.task.training_loss(self.ddp_model, self.model, batch)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        # DDP has averaged the gradients, so every rank computes the same norm and takes the same decision.
        finite = math.isfinite(clip_gradient_norm(self.trained_parameters, self.clip_norm))
        if finite or self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # float16 loss scaling skips an overflowed step itself
        self.scaler.update()
        return float(loss.detach()), finite

    def _skip_non_finite_step(self, loss_value: float) -> None:
        if self.scaler.is_enabled() and self.scaler.get_scale() >= 1.0:
            return  # float16 loss scaling backing off after an overflow, not a broken run
        self.state.non_finite_steps += 1
        self.state.non_finite_in_a_row += 1
        log.warning("step %d: the gradient is not finite (loss %s); update skipped (%d in a row, the job fails at %d)",
                    self.state.global_step, loss_value, self.state.non_finite_in_a_row, NON_FINITE_STEPS_LIMIT)
        if self.state.non_finite_in_a_row >= NON_FINITE_STEPS_LIMIT:
            raise NonFiniteLoss(
                f"{NON_FINITE_STEPS_LIMIT} steps in a row up to step {self.state.global_step} had a non-finite loss or "
                "gradient; lower the learning rate (spec.hyperparameters.lrate / per_item_lrate) or "
                "spec.hyperparameters.gradient_clip_norm")

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _report_step(self, loss: float, started: float, steps_done: int) -> None:
        if not self.ctx.is_main:
            return
        if self.state.global_step % LOSS_LOG_EVERY_STEPS == 0:
            self.writer.add_scalar("train/loss", loss, self.state.global_step)
        end_of_epoch = self.state.step_in_epoch == self.steps_per_epoch
        if not (end_of_epoch or self.reporter.due()):
            return
        elapsed = time.monotonic() - started
        seconds_per_step = elapsed / steps_done
        remaining = (self.num_epochs - self.state.epoch) * self.steps_per_epoch - self.state.step_in_epoch
        self.reporter.progress(progress_payload(
            epoch=self.state.epoch + 1, epochs=self.num_epochs, step=self.state.step_in_epoch, steps=self.steps_per_epoch,
            loss=self.state.loss_sum / self.state.loss_count if self.state.loss_count else None,
            items_per_second=steps_done * int(self.hp["batch_size"]) / max(1e-9, elapsed),
            eta_seconds=remaining * seconds_per_step, last_eval=self.state.last_eval), force=end_of_epoch)

    def _fit_without_gradients(self) -> None:
        """Rank 0 fits the model on the whole training set; the others receive the fitted state."""
        if self.state.epoch >= self.num_epochs:
            return
        from .data import collate_fn

        started = time.monotonic()
        if self.ctx.is_main:
            loader = DataLoader(self.train_set, batch_size=self.per_rank_batch, collate_fn=collate_fn(self.config.modelType),
                                **self._loader_options(self.train_set, epoch=self.state.epoch))
            self.model.eval()
            batches = (to_device(batch, self.ctx.device, self.channels_last) for batch in loader)
            with torch.no_grad(), self._autocast():
                self.task.fit_without_gradients(self.model, batches, self.ctx)
        fitted = broadcast_from_main(self.ctx, self.model.state_dict() if self.ctx.is_main else None)
        if not self.ctx.is_main:
            self.model.load_state_dict(fitted)
        self.state.global_step = self.steps_per_epoch
        self.state.step_in_epoch = self.steps_per_epoch
        self.epoch_mean_loss = 0.0
        self.epoch_items_per_second = len(self.train_set) / max(1e-9, time.monotonic() - started)
        log.info("fitted %s on %d training items in %.1f s", type(self.model).__name__, len(self.train_set),
                 time.monotonic() - started)

    # ----------------------------------------------------------------- evaluation, epoch end

    def _evaluate(self) -> Evaluation | None:
        """Each rank evaluates its share of the validation set; rank 0 computes the metrics.

        In float32 without autocast, as `deeptrain predict` runs: the reported metrics describe the
        predictions users get."""
        from .data import collate_fn

        shard = Subset(self.validation_set, range(self.ctx.rank, len(self.validation_set), self.ctx.world_size))
        loader = DataLoader(shard, batch_size=self.per_rank_batch, collate_fn=collate_fn(self.config.modelType),
                            **self._loader_options(self.validation_set, epoch=self.state.epoch))
        self.model.eval()
        collected = []
        with torch.no_grad():
            for batch in loader:
                collected.append(self.task.collect(self.model, to_device(batch, self.ctx.device, self.channels_last), self.spec))
        self.model.train()
        gathered = gather_to_main(self.ctx, collected)
        if gathered is None:
            return None
        evaluation = self.task.evaluate([batch for rank_batches in gathered for batch in rank_batches], self.spec)
        self.state.last_eval = evaluation.summary
        return evaluation

    def _end_epoch(self, epoch: int, evaluation: Evaluation | None) -> None:
        self.state.epoch = epoch + 1
        self.state.step_in_epoch = 0
        if self.ctx.is_main:
            record: dict[str, Any] = {"epoch": epoch + 1, "step": self.state.global_step,
                                      "loss": round(self.epoch_mean_loss, 6),
                                      "lr": catalog.learning_rate_at_epoch(self.hp, epoch),
                                      "skippedSteps": self.state.non_finite_steps,
                                      "itemsPerSecond": round(self.epoch_items_per_second, 2)}
            if evaluation is not None:
                record["eval"] = evaluation.summary
                self.reporter.evaluation(epoch + 1, evaluation.summary)
                for name, value in evaluation.summary.items():
                    self.writer.add_scalar(f"eval/{name}", value, self.state.global_step)
            self.writer.add_scalar("train/epoch_loss", self.epoch_mean_loss, self.state.global_step)
            self.writer.add_scalar("train/learning_rate", record["lr"], self.state.global_step)
            self.writer.flush()
            self.history.append(record)
        self._checkpoint()

    def _checkpoint(self) -> None:
        resume = gather_to_main(self.ctx, self.state.capture(self.model))
        if self.ctx.is_main:
            state = {
                "config_hash": self.identity,
                "run_hash": self.run,
                "dataset_fingerprint": self.data_fingerprint,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "scaler": self.scaler.state_dict(),
                "world_size": self.ctx.world_size,
                "resume": resume,  # one ResumeState per rank, in rank order
                "concepts": self.concepts,
                "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
            }
            path = save_checkpoint(self.output.path(CHECKPOINT_DIR), state)
            self.output.push(CHECKPOINT_DIR, METRICS_HISTORY, TENSORBOARD_DIR)
            log.info("checkpoint %s: epoch %d, step %d in epoch, global step %d", path, self.state.epoch,
                     self.state.step_in_epoch, self.state.global_step)
        barrier(self.ctx)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        if self.optimizer is not None and checkpoint.get("optimizer") is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        saved = [ResumeState.from_dict(state) for state in checkpoint["resume"]]
        if checkpoint["world_size"] == self.ctx.world_size:
            self.state = saved[self.ctx.rank]
        else:  # another gang size: same position and epoch loss, fresh per-rank streams (still reproducible)
            first = saved[0]
            self.state = ResumeState(epoch=first.epoch, step_in_epoch=first.step_in_epoch, global_step=first.global_step,
                                     last_eval=first.last_eval, loss_sum=sum(s.loss_sum for s in saved) / len(saved),
                                     loss_count=first.loss_count, non_finite_steps=first.non_finite_steps,
                                     non_finite_in_a_row=first.non_finite_in_a_row)
            seed_everything(self.config.seed + first.global_step, self.ctx.rank)
        self.pending_process_state = self.state
        log.info("resumed from checkpoint: epoch %d, step %d in epoch, global step %d",
                 self.state.epoch, self.state.step_in_epoch, self.state.global_step)

    # ----------------------------------------------------------------- artifacts

    def _publish(self, evaluation: Evaluation | None) -> ModelSummary | None:
        """Rank 0 writes the model, its card and the plots (the others wait, then exit)."""
        if not self.ctx.is_main:
            barrier(self.ctx)
            return None
        card = build_model_card(config=self.config, concepts=self.concepts, input_spec=self.task.input_spec(self.spec, self.tokenizer),
                                metrics=evaluation.summary, evaluation=evaluation.details,
                                inference=evaluation.inference, lineage=self.lineage, created=utc_now())
        summary = write_model(self.output, self.model.state_dict(), card)
        plots_dir = self.output.path(PLOTS_DIR)
        plot_training_curves(self.history.records(), plots_dir / "training_curves.png")
        if evaluation.plot is not None:
            evaluation.plot(plots_dir)
        self.output.push()
        log.info("model %s version %s: %s", summary.uri, summary.version,
                 json.dumps({name: round(value, 4) for name, value in summary.metrics.items()}))
        barrier(self.ctx)
        return summary


def steps_per_epoch(items_per_epoch: int, batch_size: int) -> int:
    return max(1, items_per_epoch // batch_size)


def is_evaluation_epoch(epoch: int, test_freq: int, num_epochs: int) -> bool:
    """Every `test_freq` epochs (counting from 1) and always after the last."""
    return (epoch + 1) % test_freq == 0 or epoch + 1 == num_epochs
