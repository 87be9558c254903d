"""PNG plots under <output>/plots (matplotlib, Agg backend: no display in pods)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from .artifacts import writing  # noqa: E402

MAX_SAMPLES = 6


def _save(figure: plt.Figure, path: Path) -> None:
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Training loss per epoch and every evaluation metric over the epochs it was measured."""
    epochs = [record["epoch"] for record in history]
    evaluated = [record for record in history if record.get("eval")]
    metric_names = sorted({name for record in evaluated for name in record["eval"]})
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(epochs, [record.get("loss") for record in history], marker="o")
    axes[0].set(title="training loss", xlabel="epoch", ylabel="loss")
    for name in metric_names:
        points = [(record["epoch"], record["eval"][name]) for record in evaluated if name in record["eval"]]
        axes[1].plot(*zip(*points, strict=True), marker="o", label=name)
    axes[1].set(title="validation metrics", xlabel="epoch")
    if metric_names:
        axes[1].legend(fontsize="small")
    _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[float]], concepts: list[str], path: Path) -> None:
    values = np.asarray(matrix, dtype=float)
    size = max(4, 0.5 * len(concepts) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(values, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(concepts)), concepts, rotation=90)
    axis.set_yticks(range(len(concepts)), concepts)
    axis.set(xlabel="predicted (mean probability)", ylabel="labelled", title="confusion matrix")
    if len(concepts) <= 12:
        for (row, column), value in np.ndenumerate(values):
            axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axis)
    _save(figure, path)


def plot_pr_curves(curves: Mapping[str, Sequence[float]], recall_levels: Sequence[float], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 5))
    for concept, precision in curves.items():
        axis.plot(recall_levels, precision, label=concept)
    axis.set(xlabel="recall", ylabel="precision", title="precision-recall at IoU 0.5", xlim=(0, 1), ylim=(0, 1.05))
    if curves:
        axis.legend(fontsize="small")
    _save(figure, path)


def plot_masks(images: Sequence[np.ndarray], truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
               num_classes: int, path: Path) -> None:
    """Rows of image / labelled mask / predicted mask; masks hold class ids (0 = background)."""
    count = min(MAX_SAMPLES, len(images))
    figure, axes = plt.subplots(count, 3, figsize=(7, 2.3 * count), squeeze=False)
    for row in range(count):
        for column, (title, picture) in enumerate((("image", images[row]), ("labelled", truths[row]),
                                                   ("predicted", predictions[row]))):
            axis = axes[row][column]
            if column == 0:
                axis.imshow(picture)
            else:
                axis.imshow(picture, cmap="tab20", vmin=0, vmax=max(1, num_classes - 1), interpolation="nearest")
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    _save(figure, path)


def plot_heatmaps(images: Sequence[np.ndarray], maps: Sequence[np.ndarray], scores: Sequence[float],
                  labels: Sequence[int], path: Path) -> None:
    count = min(MAX_SAMPLES, len(images))
    figure, axes = plt.subplots(count, 2, figsize=(5, 2.3 * count), squeeze=False)
    for row in range(count):
        axes[row][0].imshow(images[row])
        axes[row][0].set_title("anomalous" if labels[row] else "normal", fontsize=8)
        axes[row][1].imshow(images[row])
        axes[row][1].imshow(maps[row], cmap="jet", alpha=0.5)
        axes[row][1].set_title(f"score {scores[row]:.3f}", fontsize=8)
        for axis in axes[row]:
            axis.axis("off")
    _save(figure, path)


def plot_embeddings(embeddings: np.ndarray, labels: np.ndarray, concepts: list[str], path: Path) -> None:
    """The embeddings projected on their first two principal components, coloured by concept."""
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:2].T
    figure, axis = plt.subplots(figsize=(6, 5))
    for index, concept in enumerate(concepts):
        chosen = labels == index
        if chosen.any():
            axis.scatter(projected[chosen, 0], projected[chosen, 1], s=8, label=concept)
    axis.set(title="validation embeddings (PCA)", xlabel="PC 1", ylabel="PC 2")
    if len(concepts) <= 20:
        axis.legend(fontsize="small", markerscale=2)
    _save(figure, path)


def draw_boxes(image: np.ndarray, boxes: Sequence[Sequence[float]], captions: Sequence[str], path: Path) -> None:
    """An image with xyxy pixel boxes and their captions (the detector's --save output)."""
    height, width = image.shape[:2]
    figure, axis = plt.subplots(figsize=(6, 6 * height / max(1, width)))
    axis.imshow(image)
    for (x1, y1, x2, y2), caption in zip(boxes, captions, strict=True):
        axis.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="lime", linewidth=2))
        axis.text(x1, y1, caption, color="black", fontsize=8, backgroundcolor="lime", va="bottom")
    axis.axis("off")
    _save(figure, path)
