"""Decoding, transforms and the batches each model type gets; flips keep pixels and targets together."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from deeptrain_api import catalog
from deeptrain_trainer.data import (
    ImageRecord,
    Mask,
    TextRecord,
    Tokenizer,
    build_dataset,
    collate_fn,
    decode_image,
)
from deeptrain_trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD

SIZE = 32
BOX = (0.1, 0.25, 0.4, 0.75)  # the red rectangle in the 40x20 test image, normalised x1, y1, x2, y2


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def red_box_image(tmp_path: Path) -> Path:
    pixels = np.full((20, 40, 3), 40, dtype=np.uint8)
    pixels[5:15, 4:16] = (230, 20, 20)  # exactly BOX
    path = tmp_path / "scene.png"
    Image.fromarray(pixels).save(path)
    return path


def red_pixels(image: torch.Tensor) -> np.ndarray:
    pixels = image.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return (pixels[..., 0] > 0.5) & (pixels[..., 1] < 0.5)


def bounding_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(mask)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_decode_image_converts_grayscale_alpha_and_16_bit_to_rgb() -> None:
    gray = decode_image(encode(Image.new("L", (3, 2), 77)), "gray.png")
    assert gray.mode == "RGB" and np.asarray(gray)[0, 0].tolist() == [77, 77, 77]
    rgba = decode_image(encode(Image.new("RGBA", (3, 2), (10, 20, 30, 0))), "alpha.png")
    assert rgba.mode == "RGB" and np.asarray(rgba)[0, 0].tolist() == [10, 20, 30]
    deep = Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16))
    decoded = np.asarray(decode_image(encode(deep), "deep.png"))
    assert decoded[1, 1].tolist() == [255, 255, 255] and decoded[0, 1, 0] == 63


def test_flips_move_boxes_with_pixels(red_box_image: Path) -> None:
    records = [ImageRecord(uri=str(red_box_image), boxes=[BOX], box_concepts=["thing"]) for _ in range(12)]
    dataset = build_dataset(catalog.VISUAL_DETECTOR, records, ["thing"], image_size=SIZE, train=True, flips=True, seed=3)
    images, targets = next(iter(DataLoader(dataset, batch_size=12, collate_fn=collate_fn(catalog.VISUAL_DETECTOR))))
    assert images.shape == (12, 3, SIZE, SIZE)
    lefts = set()
    for image, target in zip(images, targets, strict=True):
        assert target["labels"].tolist() == [0]
        expected = torch.tensor(bounding_box(red_pixels(image)), dtype=torch.float32)
        assert torch.allclose(target["boxes"][0], expected, atol=1.5)
        lefts.add(round(float(target["boxes"][0, 0])))
    assert lefts == {3, 19}  # both flipped (x1 = (1 - 0.4) * 32) and unflipped (x1 = 0.1 * 32) items occurred


def test_flips_move_polygon_and_image_masks_with_pixels(red_box_image: Path) -> None:
    x1, y1, x2, y2 = BOX
    polygon = Mask(polygon=((x1, y1), (x2, y1), (x2, y2), (x1, y2)))
    raster = np.zeros((20, 40), dtype=np.uint8)
    raster[5:15, 4:16] = 255
    image_mask = Mask(image_bytes=encode(Image.fromarray(raster)))
    records = [ImageRecord(uri=str(red_box_image), masks=[mask], mask_concepts=["thing"])
               for mask in [polygon, image_mask] * 5]
    dataset = build_dataset(catalog.VISUAL_SEGMENTER, records, ["other", "thing"], image_size=SIZE, train=True, flips=True, seed=1)
    images, masks = next(iter(DataLoader(dataset, batch_size=10, collate_fn=collate_fn(catalog.VISUAL_SEGMENTER))))
    assert masks.dtype == torch.long and masks.shape == (10, SIZE, SIZE)
    assert set(masks.unique().tolist()) == {0, 2}  # background and concept index 1 + 1
    for image, mask in zip(images, masks, strict=True):
        assert iou(mask.numpy() == 2, red_pixels(image)) > 0.8
    assert len({bounding_box(mask.numpy() == 2)[0] for mask in masks}) == 2  # flipped and unflipped both occurred


def test_no_flips_for_validation(red_box_image: Path) -> None:
    records = [ImageRecord(uri=str(red_box_image), boxes=[BOX], box_concepts=["thing"]) for _ in range(8)]
    dataset = build_dataset(catalog.VISUAL_DETECTOR, records, ["thing"], image_size=SIZE, train=False, flips=True)
    assert [float(dataset[i][1]["boxes"][0, 0]) for i in range(8)] == [pytest.approx(3.2)] * 8


def test_anomaly_batch_labels_and_flipped_ground_truth(tmp_path: Path, red_box_image: Path) -> None:
    raster = np.zeros((20, 40), dtype=np.uint8)
    raster[5:15, 4:16] = 255
    Image.fromarray(raster).save(tmp_path / "mask.png")
    records = [ImageRecord(uri=str(red_box_image), concepts=["good"]),
               *[ImageRecord(uri=str(red_box_image), concepts=["crack"], anomaly_mask_uri=str(tmp_path / "mask.png"))] * 7]
    dataset = build_dataset(catalog.VISUAL_ANOMALY_HEATMAP, records, ["crack", "good"], image_size=SIZE, train=True,
                            flips=True, seed=2)
    images, labels, masks = next(iter(DataLoader(dataset, batch_size=8, collate_fn=collate_fn(catalog.VISUAL_ANOMALY_HEATMAP))))
    assert labels.tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    assert masks.dtype == torch.float32 and masks[0].sum() == 0
    for image, mask in zip(images[1:], masks[1:], strict=True):
        assert iou(mask.numpy() > 0, red_pixels(image)) > 0.8


def test_classifier_targets_softmax_and_logreg(red_box_image: Path) -> None:
    records = [ImageRecord(uri=str(red_box_image), concepts=["b"]), ImageRecord(uri=str(red_box_image), concepts=["a", "c"])]
    concepts = ["a", "b", "c"]
    softmax = build_dataset(catalog.VISUAL_CLASSIFIER, records, concepts, image_size=SIZE, train=False, flips=False)
    images, targets = collate_fn(catalog.VISUAL_CLASSIFIER)([softmax[0], softmax[1]])
    assert images.shape == (2, 3, SIZE, SIZE) and targets.dtype == torch.long and targets.tolist() == [1, 0]
    logreg = build_dataset(catalog.VISUAL_CLASSIFIER, records, concepts, image_size=SIZE, train=False, flips=False, logreg=True)
    _, multi_hot = collate_fn(catalog.VISUAL_CLASSIFIER)([logreg[0], logreg[1]])
    assert multi_hot.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


def test_truncated_image_is_replaced_and_counted(tmp_path: Path, red_box_image: Path) -> None:
    whole = red_box_image.read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    records = [ImageRecord(uri=str(tmp_path / "cut.png"), concepts=["a"]), ImageRecord(uri=str(red_box_image), concepts=["b"])]
    dataset = build_dataset(catalog.VISUAL_CLASSIFIER, records, ["a", "b"], image_size=SIZE, train=False, flips=False)
    _, target = dataset[0]
    assert int(target) == 1  # the next record stood in
    assert (dataset.stats.skipped, dataset.stats.total) == (1, 2)


def test_tokenizer_is_deterministic_and_round_trips() -> None:
    texts = ["The film is great", "the plot is thin, isn't it?", "GREAT cast"]
    tokenizer = Tokenizer.fit(texts, max_vocab=4)
    assert tokenizer.words == ["great", "is", "the", "cast"]  # by frequency, ties alphabetical
    assert tokenizer.encode("The great unknown") == [4, 2, 1]
    assert tokenizer.encode("great " * 10, max_len=3) == [2, 2, 2]
    assert Tokenizer.fit(texts, min_freq=2).words == ["great", "is", "the"]
    restored = Tokenizer.from_dict(tokenizer.to_dict())
    assert restored.encode("isn't the cast great") == tokenizer.encode("isn't the cast great")
    assert restored.vocab_size == 6


def test_text_batches_are_zero_padded() -> None:
    records = [TextRecord(text="great great film", concepts=["pos"]), TextRecord(text="dull", concepts=["neg"])]
    tokenizer = Tokenizer.fit(r.text for r in records)
    dataset = build_dataset(catalog.TEXT_CLASSIFIER, records, ["neg", "pos"], image_size=None, train=True, flips=False,
                            tokenizer=tokenizer)
    ids, targets = collate_fn(catalog.TEXT_CLASSIFIER)([dataset[0], dataset[1]])
    assert ids.shape[0] == 2 and ids.shape[1] >= 3
    assert ids[0, :3].tolist() == [2, 2, tokenizer.encode("film")[0]] and ids[1, 1:].eq(0).all()
    assert targets.tolist() == [1, 0]


def test_batches_are_normalised_once_per_batch_like_per_pixel_arithmetic(red_box_image: Path) -> None:
    records = [ImageRecord(uri=str(red_box_image), concepts=["a"]) for _ in range(3)]
    dataset = build_dataset(catalog.VISUAL_CLASSIFIER, records, ["a"], image_size=SIZE, train=False, flips=False)
    assert dataset[0][0].dtype == torch.uint8  # items stay pixels; the model input is made per batch
    images, _ = collate_fn(catalog.VISUAL_CLASSIFIER)([dataset[i] for i in range(3)])
    expected = (np.asarray(Image.open(red_box_image).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR),
                           dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    assert images.dtype == torch.float32
    np.testing.assert_allclose(images[2].numpy().transpose(1, 2, 0), expected, atol=1e-5)


def test_preloaded_split_is_served_from_memory_without_reading_files(tmp_path: Path, red_box_image: Path) -> None:
    paths = []
    for index in range(4):
        paths.append(tmp_path / f"{index}.png")
        paths[-1].write_bytes(red_box_image.read_bytes())
    (tmp_path / "cut.png").write_bytes(red_box_image.read_bytes()[:60])
    records = [ImageRecord(uri=str(path), concepts=["a"]) for path in [*paths[:2], tmp_path / "cut.png", *paths[2:]]]
    dataset = build_dataset(catalog.VISUAL_CLASSIFIER, records, ["a"], image_size=SIZE, train=True, flips=True, seed=5)
    assert not dataset.in_memory
    dataset.preload(threads=2)
    assert dataset.in_memory and (dataset.stats.skipped, dataset.stats.total) == (1, 5)
    for path in [*paths, tmp_path / "cut.png"]:
        path.unlink()  # nothing is read again: every epoch comes from memory
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        images, _ = next(iter(DataLoader(dataset, batch_size=5, collate_fn=collate_fn(catalog.VISUAL_CLASSIFIER))))
        flipped = dataset._flipped(range(5), dataset.epoch).tolist()
        boxes = [bounding_box(red_pixels(image)) for image in images]
        assert [box[0] > SIZE / 2 for box in boxes] == flipped  # item 2: the next record's image stands in
    assert dataset.stats.total == 5  # still counted once each


def test_split_over_the_cache_budget_is_decoded_every_time(monkeypatch: pytest.MonkeyPatch, red_box_image: Path) -> None:
    from deeptrain_trainer.data import torch_datasets

    monkeypatch.setattr(torch_datasets, "DECODED_CACHE_BYTES", SIZE * SIZE * 3)  # one image fits, two do not
    records = [ImageRecord(uri=str(red_box_image), concepts=["a"]) for _ in range(2)]
    dataset = build_dataset(catalog.VISUAL_CLASSIFIER, records, ["a"], image_size=SIZE, train=False, flips=False)
    dataset.preload()
    assert not dataset.in_memory
    dataset[0], dataset[0]
    assert dataset.stats.total == 2


def test_a_persistent_worker_flips_as_the_training_process_does(red_box_image: Path) -> None:
    records = [ImageRecord(uri=str(red_box_image), concepts=["a"]) for _ in range(12)]
    dataset = build_dataset(catalog.VISUAL_CLASSIFIER, records, ["a"], image_size=SIZE, train=True, flips=True, seed=9)
    options = {"batch_size": 12, "collate_fn": collate_fn(catalog.VISUAL_CLASSIFIER)}
    in_process = DataLoader(dataset, **options)
    worker = DataLoader(dataset, num_workers=1, persistent_workers=True, **options)
    for epoch in (0, 1, 2):
        dataset.set_epoch(epoch)  # the worker holds its own copy of the dataset, made in epoch 0
        assert torch.equal(next(iter(worker))[0], next(iter(in_process))[0]), epoch


@pytest.mark.parametrize(("in_memory", "on_cuda", "cores", "expected"), [
    (True, True, 16, {"num_workers": 0, "pin_memory": True}),
    (False, False, 16, {"num_workers": 0, "pin_memory": False}),
    (False, True, 2, {"num_workers": 1, "pin_memory": True, "persistent_workers": True, "prefetch_factor": 4}),
    (False, True, 16, {"num_workers": 4, "pin_memory": True, "persistent_workers": True, "prefetch_factor": 4}),
    (False, True, 1, {"num_workers": 0, "pin_memory": True}),
])
def test_loader_workers_only_where_they_pay_off(monkeypatch: pytest.MonkeyPatch, in_memory, on_cuda, cores, expected) -> None:
    from deeptrain_trainer.data import loading

    monkeypatch.setattr(loading, "cores_per_process", lambda: cores)
    assert loading.loader_options(in_memory=in_memory, on_cuda=on_cuda, persistent=True) == expected
