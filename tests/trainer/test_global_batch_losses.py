"""Detector and segmenter losses over the global batch: two gloo processes, each with half of the batch
and DDP's gradient averaging, get exactly the gradient one process gets from the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deeptrain_trainer.models.detector import ImageDetector
from deeptrain_trainer.models.resnext import ResNext
from deeptrain_trainer.models.segmenter import ImageSegmenter

WORLD = 2
BATCH = 4  # 2 images per process
NUM_CLASSES = 3


def detector_case() -> tuple[ImageDetector, dict, list[dict]]:
    torch.manual_seed(0)
    detector = ImageDetector(ResNext(width_mult=0.25, depth_mult=0.34), NUM_CLASSES, image_size=64, fpn_channels=16,
                             head_convs=1)
    anchors = detector.anchors([(8, 8), (4, 4), (2, 2)], torch.device("cpu"))
    outputs = {"cls_logits": torch.randn(BATCH, len(anchors), NUM_CLASSES),
               "box_deltas": torch.randn(BATCH, len(anchors), 4) * 0.1, "anchors": anchors}
    # Process 0 gets 1 object, process 1 gets 5 (one of them a crowd): per-process normalisers would differ.
    boxes = [[[4, 4, 30, 30]], [], [[2, 2, 20, 40], [30, 30, 60, 60], [10, 40, 30, 62]], [[5, 5, 50, 25], [0, 0, 64, 64]]]
    targets = [{"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.arange(len(b)) % NUM_CLASSES,
                "iscrowd": torch.tensor([i == 1 for i in range(len(b))]) if index == 3 else torch.zeros(len(b), dtype=torch.bool)}
               for index, b in enumerate(boxes)]
    return detector, outputs, targets


def segmenter_case() -> tuple[ImageSegmenter, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    segmenter = ImageSegmenter(ResNext(width_mult=0.25, depth_mult=0.34), NUM_CLASSES, decoder_channels=8)
    logits = torch.randn(BATCH, NUM_CLASSES + 1, 16, 16)
    masks = torch.zeros(BATCH, 16, 16, dtype=torch.long)
    masks[0, :4, :4] = 1  # process 0: small objects; process 1: large ones, so per-process Dice would differ
    masks[2, :, :10] = 2
    masks[3, 4:, 4:] = 3
    return segmenter, logits, masks


def gradients(images: slice) -> dict[str, torch.Tensor]:
    """Gradients of each loss with respect to the model outputs of `images`."""
    detector, outputs, targets = detector_case()
    cls, deltas = outputs["cls_logits"][images].clone().requires_grad_(), outputs["box_deltas"][images].clone().requires_grad_()
    loss, _ = detector.loss({"cls_logits": cls, "box_deltas": deltas, "anchors": outputs["anchors"]}, targets[images])
    loss.backward()
    segmenter, logits, masks = segmenter_case()
    mine = logits[images].clone().requires_grad_()
    segmenter_loss, _ = segmenter.loss(mine, masks[images])
    segmenter_loss.backward()
    return {"cls": cls.grad, "deltas": deltas.grad, "segmenter": mine.grad,
            "detector_loss": loss.detach(), "segmenter_loss": segmenter_loss.detach()}


def _process(rank: int, init_file: str) -> None:
    whole = gradients(slice(0, BATCH))  # before joining: one process, the whole batch
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        half = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        mine = gradients(half)
        for name in ("cls", "deltas", "segmenter"):
            # DDP averages over processes: a parameter's gradient is the mean of the processes' contributions.
            torch.testing.assert_close(mine[name] / WORLD, whole[name][half], rtol=1e-5, atol=1e-9, msg=name)
        for name in ("detector_loss", "segmenter_loss"):
            mean = mine[name].clone()
            dist.all_reduce(mean)
            torch.testing.assert_close(mean / WORLD, whole[name], msg=name)
    finally:
        dist.destroy_process_group()


@pytest.mark.torchrun
def test_two_processes_get_the_gradient_of_the_whole_batch(tmp_path: Path):
    mp.spawn(_process, args=(str(tmp_path / "rendezvous"),), nprocs=WORLD)
