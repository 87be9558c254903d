"""One-stage detector in the style of RetinaNet (Lin et al., "Focal Loss for Dense Object Detection", 2017).

A feature pyramid over the backbone's stride 8/16/32 maps (plus a stride-64 level from 256 px up),
a class subnet and a box subnet shared by every level, anchors at every position of every level,
focal loss for classification and smooth-L1 on (dx, dy, dw, dh) box deltas for regression.

Departures from the paper, each for a reason:
- Anchor sizes are 3x the level's stride (the paper: 4x, on levels 3-7), so 128 px canvases with
  20-60 px objects overlap an anchor at IoU >= 0.5; very large objects still match their best anchor.
- Each ground-truth box also claims the anchor(s) overlapping it most, even below IoU 0.5, so small
  or oddly shaped objects are never left without a positive.
- Crowd boxes (COCO iscrowd) are not objects to find: anchors they cover are left out of the loss
  instead of being trained as positives or as background.
- The subnets' convs use GroupNorm: the backbones here start from scratch and small per-process
  batches are the norm, where normalisation makes the heads train reliably (He et al., "Rethinking
  ImageNet Pre-training", 2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributed import process_count, summed_over_processes

POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.4
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
SMOOTH_L1_BETA = 0.1
# Predicted log-size deltas are clamped so exp() cannot overflow on a wild early prediction.
MAX_LOG_SIZE_DELTA = math.log(1000.0 / 16)
PRE_NMS_CANDIDATES = 1000
# An anchor whose area lies this much inside a crowd region is ignored (neither positive nor background).
CROWD_COVER = 0.7


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU of every xyxy box in [N, 4] with every one in [M, 4]: [N, M]."""
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]).clamp(min=0) * (boxes_a[:, 3] - boxes_a[:, 1]).clamp(min=0)
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]).clamp(min=0) * (boxes_b[:, 3] - boxes_b[:, 1]).clamp(min=0)
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - intersection
    return intersection / union.clamp(min=1e-9)


def anchor_cover(anchors: Tensor, regions: Tensor) -> Tensor:
    """Share of each anchor's area inside each region: [N, 4] x [M, 4] xyxy -> [N, M]."""
    top_left = torch.max(anchors[:, None, :2], regions[None, :, :2])
    bottom_right = torch.min(anchors[:, None, 2:], regions[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area = (anchors[:, 2:] - anchors[:, :2]).clamp(min=0).prod(dim=1)
    return intersection / area.clamp(min=1e-6)[:, None]


def _centres_and_sizes(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights, widths, heights


def encode_boxes(anchors: Tensor, boxes: Tensor) -> Tensor:
    """Regression targets of xyxy `boxes` relative to their `anchors` (both [N, 4]): [N, 4] (dx, dy, dw, dh)."""
    anchor_x, anchor_y, anchor_w, anchor_h = _centres_and_sizes(anchors)
    box_x, box_y, box_w, box_h = _centres_and_sizes(boxes)
    return torch.stack([
        (box_x - anchor_x) / anchor_w,
        (box_y - anchor_y) / anchor_h,
        torch.log(box_w.clamp(min=1e-3) / anchor_w),
        torch.log(box_h.clamp(min=1e-3) / anchor_h),
    ], dim=-1)


def decode_boxes(anchors: Tensor, deltas: Tensor) -> Tensor:
    """Inverse of `encode_boxes`: anchors [N, 4] + deltas [N, 4] -> xyxy boxes [N, 4]."""
    anchor_x, anchor_y, anchor_w, anchor_h = _centres_and_sizes(anchors)
    centre_x = anchor_x + deltas[..., 0] * anchor_w
    centre_y = anchor_y + deltas[..., 1] * anchor_h
    half_w = 0.5 * anchor_w * torch.exp(deltas[..., 2].clamp(max=MAX_LOG_SIZE_DELTA))
    half_h = 0.5 * anchor_h * torch.exp(deltas[..., 3].clamp(max=MAX_LOG_SIZE_DELTA))
    return torch.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], dim=-1)


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, alpha: float | None = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA
) -> Tensor:
    """Element-wise focal loss: -alpha_t (1 - p_t)^gamma log(p_t), no reduction.

    With gamma = 0 and alpha = None it is exactly binary cross-entropy with logits.
    """
    probabilities = torch.sigmoid(logits)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probabilities * targets + (1 - probabilities) * (1 - targets)
    loss = cross_entropy * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with an already kept, higher-scoring box exceeds `iou_threshold`.
    """
    order = scores.argsort(descending=True, stable=True)
    # The greedy pass is sequential: run it on the CPU so an accelerator is not synchronised per box.
    overlapping = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu()  # [K, K]
    keep = torch.ones(len(order), dtype=torch.bool)
    for index in range(len(order)):
        if keep[index]:
            keep[index + 1:] &= ~overlapping[index, index + 1:]
    return order[keep.to(order.device)]


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes only suppress boxes of the same label. Indices kept, highest score first."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # Shifting each class to its own far-apart region makes cross-class IoU zero in a single pass.
    span = boxes.max() - boxes.min() + 1
    return nms(boxes + (labels.to(boxes.dtype) * span)[:, None], scores, iou_threshold)


class FeaturePyramid(nn.Module):
    """FPN (Lin et al. 2017): lateral 1x1s, top-down nearest upsampling with addition, 3x3 smoothing.

    forward([C3, C4, C5]) -> [P3, P4, P5] (+ P6 from a stride-2 3x3 on C5 when `extra_level`), all `out_channels` wide.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, extra_level: bool) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(channels, out_channels, 1) for channels in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.extra = nn.Conv2d(in_channels[-1], out_channels, 3, stride=2, padding=1) if extra_level else None

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        merged = [lateral(feature) for lateral, feature in zip(self.lateral, features, strict=True)]
        for level in range(len(merged) - 2, -1, -1):
            merged[level] = merged[level] + F.interpolate(merged[level + 1], size=merged[level].shape[-2:], mode="nearest")
        pyramid = [smooth(level) for smooth, level in zip(self.smooth, merged, strict=True)]
        if self.extra is not None:
            pyramid.append(self.extra(features[-1]))
        return pyramid


def _subnet(channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(math.gcd(32, channels), channels),
                   nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
    for module in layers:
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)
    return nn.Sequential(*layers)


class ImageDetector(nn.Module):
    """Boxes with concepts from an image.

    forward(x [B, C_in, S, S]) -> dict:
      "cls_logits" [B, N, num_classes]  (N anchors over all levels; sigmoid per class),
      "box_deltas" [B, N, 4], or [B, N, num_classes, 4] with use_perclass_regression,
      "anchors" [N, 4] xyxy pixels, "image_size" (H, W).
    loss(outputs, targets): targets = list (per image) of {"boxes": FloatTensor [M, 4] xyxy pixels,
      "labels": LongTensor [M] in [0, num_classes)}; focal loss + smooth-L1, both divided by the positives
      (the mean number per process over the whole global batch when several processes train).
    predict(outputs, score_threshold=None, max_detections=100, nms_iou=0.5) -> list (per image) of
      {"boxes" [K, 4] xyxy pixels, "scores" [K], "labels" [K]} sorted by score; threshold None = the
      constructor's `score_threshold` (the job's detection_score_threshold).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        image_size: int,
        use_perclass_regression: bool = False,
        anchor_sizes: Sequence[float] | None = None,
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        scales: int = 3,
        fpn_channels: int = 256,
        head_convs: int = 4,
        score_threshold: float = 0.3,
        prior_probability: float = 0.01,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.use_perclass_regression = use_perclass_regression
        self.score_threshold = score_threshold
        extra_level = image_size >= 256
        self.strides: tuple[int, ...] = (8, 16, 32, 64) if extra_level else (8, 16, 32)
        sizes = tuple(anchor_sizes) if anchor_sizes is not None else tuple(3.0 * stride for stride in self.strides)
        if len(sizes) != len(self.strides):
            raise ValueError(f"anchor_sizes needs one size per pyramid level (strides {self.strides}), got {len(sizes)}")
        self.cell_anchors = [self._cell_anchors(size, aspect_ratios, scales) for size in sizes]
        self.anchors_per_position = len(aspect_ratios) * scales

        self.fpn = FeaturePyramid(backbone.feature_channels[1:], fpn_channels, extra_level)
        a = self.anchors_per_position
        self.class_subnet = _subnet(fpn_channels, a * num_classes, head_convs)
        # Start every anchor at probability ~prior for every class, so the flood of easy negatives
        # does not swamp the first steps (the paper's Section 4.1 "Initialization").
        nn.init.constant_(self.class_subnet[-1].bias, -math.log((1 - prior_probability) / prior_probability))
        box_outputs = 4 * num_classes if use_perclass_regression else 4
        self.box_subnet = _subnet(fpn_channels, a * box_outputs, head_convs)

    @staticmethod
    def _cell_anchors(size: float, aspect_ratios: Sequence[float], scales: int) -> Tensor:
        """Anchors centred on (0, 0): scales x aspect ratios (height / width), same area per scale: [A, 4]."""
        anchors = []
        for octave in range(scales):
            scaled = size * 2 ** (octave / scales)
            for ratio in aspect_ratios:
                half_w, half_h = scaled / math.sqrt(ratio) / 2, scaled * math.sqrt(ratio) / 2
                anchors.append([-half_w, -half_h, half_w, half_h])
        return torch.tensor(anchors)

    def anchors(self, feature_sizes: Sequence[tuple[int, int]], device: torch.device) -> Tensor:
        """All anchors, ordered level -> row -> column -> cell anchor, matching the head outputs: [N, 4]."""
        all_anchors = []
        for (height, width), stride, cell in zip(feature_sizes, self.strides, self.cell_anchors, strict=True):
            ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
            xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)  # [H*W, 1, 4]
            all_anchors.append((centres + cell.to(device)[None]).reshape(-1, 4))  # [H*W*A, 4]
        return torch.cat(all_anchors)

    def forward(self, x: Tensor) -> dict:
        pyramid = self.fpn(self.backbone.forward_features(x)[1:])  # strides 8, 16, 32 (, 64)
        batch, a = x.shape[0], self.anchors_per_position
        cls_logits, box_deltas = [], []
        for level in pyramid:
            # [B, A*K, H, W] -> [B, H, W, A*K] -> [B, H*W*A, K]
            cls_logits.append(self.class_subnet(level).permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes))
            box_deltas.append(self.box_subnet(level).permute(0, 2, 3, 1).reshape(batch, level.shape[2] * level.shape[3] * a, -1))
        deltas = torch.cat(box_deltas, dim=1)
        if self.use_perclass_regression:
            deltas = deltas.reshape(batch, deltas.shape[1], self.num_classes, 4)
        return {
            "cls_logits": torch.cat(cls_logits, dim=1),
            "box_deltas": deltas,
            "anchors": self.anchors([tuple(level.shape[-2:]) for level in pyramid], x.device),
            "image_size": tuple(x.shape[-2:]),
        }

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        head = [*self.fpn.parameters(), *self.class_subnet.parameters(), *self.box_subnet.parameters()]
        return {"backbone": list(self.backbone.parameters()), "head": head}

    def match_anchors(self, anchors: Tensor, boxes: Tensor) -> Tensor:
        """Index of the box each anchor is assigned to, -1 = background, -2 = ignored: [N]."""
        assignment = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
        if len(boxes) == 0:
            return assignment
        iou = box_iou(anchors, boxes)  # [N, M]
        best_iou, best_box = iou.max(dim=1)
        assignment[best_iou >= NEGATIVE_IOU] = -2
        assignment[best_iou >= POSITIVE_IOU] = best_box[best_iou >= POSITIVE_IOU]
        # Every box keeps the anchor(s) it overlaps most, even when that overlap is below POSITIVE_IOU.
        best_for_box = iou.max(dim=0).values  # [M]
        anchor_index, box_index = torch.nonzero((iou == best_for_box[None]) & (best_for_box[None] > 0), as_tuple=True)
        assignment[anchor_index] = box_index
        return assignment

    def loss(self, outputs: dict, targets: Sequence[dict[str, Tensor]]) -> tuple[Tensor, dict[str, float]]:
        cls_logits, box_deltas, anchors = outputs["cls_logits"], outputs["box_deltas"], outputs["anchors"]
        class_losses, box_losses, num_positive = [], [], 0
        for image, target in enumerate(targets):
            boxes = target["boxes"].to(anchors.device, anchors.dtype).reshape(-1, 4)
            labels = target["labels"].to(anchors.device).long().reshape(-1)
            crowd = target.get("iscrowd", torch.zeros(len(labels), dtype=torch.bool)).to(anchors.device).reshape(-1)
            boxes, labels, crowd_boxes = boxes[~crowd], labels[~crowd], boxes[crowd]
            assignment = self.match_anchors(anchors, boxes)
            if len(crowd_boxes):
                in_crowd = anchor_cover(anchors, crowd_boxes).max(dim=1).values >= CROWD_COVER  # [N]
                assignment[(assignment == -1) & in_crowd] = -2
            positive = assignment >= 0
            counted = assignment != -2
            class_targets = torch.zeros_like(cls_logits[image])
            class_targets[positive, labels[assignment[positive]]] = 1.0
            class_losses.append(sigmoid_focal_loss(cls_logits[image][counted], class_targets[counted]).sum())
            deltas = box_deltas[image][positive]
            if self.use_perclass_regression:
                deltas = deltas[torch.arange(len(deltas), device=deltas.device), labels[assignment[positive]]]
            regression_targets = encode_boxes(anchors[positive], boxes[assignment[positive]])
            box_losses.append(F.smooth_l1_loss(deltas, regression_targets, beta=SMOOTH_L1_BETA, reduction="sum"))
            num_positive += int(positive.sum())
        # Global-batch semantics: divide by the positives of every process's images, so the gradient DDP
        # averages is that of one big batch (per-process counts would weigh images unevenly).
        positives = torch.tensor(float(num_positive), device=anchors.device)
        normaliser = (summed_over_processes(positives) / process_count()).clamp(min=1.0)
        class_loss = torch.stack(class_losses).sum() / normaliser
        box_loss = torch.stack(box_losses).sum() / normaliser
        loss = class_loss + box_loss
        return loss, {
            "loss": float(loss.detach()),
            "class_loss": float(class_loss.detach()),
            "box_loss": float(box_loss.detach()),
            "positive_anchors": float(num_positive),
        }

    @torch.no_grad()
    def predict(
        self,
        outputs: dict,
        score_threshold: float | None = None,
        max_detections: int = 100,
        nms_iou: float = 0.5,
    ) -> list[dict[str, Tensor]]:
        threshold = self.score_threshold if score_threshold is None else score_threshold
        anchors = outputs["anchors"]
        height, width = outputs["image_size"]
        results = []
        for cls_logits, box_deltas in zip(outputs["cls_logits"], outputs["box_deltas"], strict=True):
            scores = torch.sigmoid(cls_logits).flatten()  # [N * C], anchor-major
            candidates = torch.nonzero(scores > threshold).squeeze(1)
            if len(candidates) > PRE_NMS_CANDIDATES:
                candidates = candidates[scores[candidates].topk(PRE_NMS_CANDIDATES).indices]
            anchor_index = candidates // self.num_classes
            labels = candidates % self.num_classes
            deltas = box_deltas[anchor_index, labels] if self.use_perclass_regression else box_deltas[anchor_index]
            boxes = decode_boxes(anchors[anchor_index], deltas)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
            keep = batched_nms(boxes, scores[candidates], labels, nms_iou)[:max_detections]
            results.append({"boxes": boxes[keep], "scores": scores[candidates][keep], "labels": labels[keep]})
        return results
