"""The model zoo: shapes for every (modelType, template), published sizes, losses, NMS, learning."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from deeptrain_api import catalog  # noqa: E402
from deeptrain_api.trainer_contract import TemplateScale  # noqa: E402
from deeptrain_trainer.models import (  # noqa: E402
    BACKBONES,
    ImageClassifier,
    ImageDetector,
    ImageEmbedder,
    ResNext,
    TextCNN,
    TextTransformer,
    batched_nms,
    build_model,
    load_backbone_weights,
    nms,
    sigmoid_focal_loss,
)
from deeptrain_trainer.models.detector import box_iou, decode_boxes, encode_boxes  # noqa: E402

SMALL = TemplateScale(width=0.25, depth=0.34)
NUM_CLASSES = 3
VOCAB = 50


@pytest.fixture(autouse=True)
def _single_thread_and_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _cases():
    for model_type, spec in catalog.MODEL_TYPES.items():
        for template in spec.templates:
            if spec.input == "text":
                yield model_type, template, None
                continue
            sizes = (32, 64, 128) if model_type == catalog.VISUAL_DETECTOR else (32, 64)
            for size in sizes:
                yield model_type, template, size


def _targets(model_type: str, batch: int, size: int | None):
    if model_type == catalog.VISUAL_DETECTOR:
        return [{"boxes": torch.tensor([[2.0, 3.0, size * 0.6, size * 0.7]]), "labels": torch.tensor([i % NUM_CLASSES])}
                for i in range(batch)]
    if model_type == catalog.VISUAL_SEGMENTER:
        return torch.randint(0, NUM_CLASSES + 1, (batch, size, size))
    return torch.arange(batch) % NUM_CLASSES


@pytest.mark.parametrize(("model_type", "template", "size"), list(_cases()))
def test_every_template_builds_trains_and_predicts_at_small_scale(model_type, template, size):
    model = build_model(model_type, template, num_classes=NUM_CLASSES, image_size=size, scale=SMALL,
                        hyperparameters={}, vocab_size=VOCAB)
    batch = 2
    if size is None:
        x = torch.randint(0, VOCAB, (batch, 7))
    else:
        x = torch.randn(batch, 3, size, size)
    targets = _targets(model_type, batch, size)
    if template == "PatchCore":
        model.fit_memory_bank([x])

    outputs = model(x)
    loss, metrics = model.loss(outputs, targets)
    assert torch.isfinite(loss) and metrics["loss"] == pytest.approx(float(loss.detach()))
    if getattr(model, "needs_gradient_training", True):
        loss.backward()
        grads = [p.grad for p in model.parameter_groups()["backbone"]]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), "the backbone gets no gradient"
    groups = model.parameter_groups()
    assert set(groups) == {"backbone", "head"}
    grouped = {id(p) for group in groups.values() for p in group}
    assert grouped == {id(p) for p in model.parameters()}, "every parameter is in exactly one group"

    model.eval()
    with torch.no_grad():
        predictions = model.predict(model(x))
    if model_type in (catalog.VISUAL_CLASSIFIER, catalog.TEXT_CLASSIFIER):
        assert outputs.shape == (batch, NUM_CLASSES)
        assert torch.allclose(predictions.sum(dim=1), torch.ones(batch), atol=1e-5)
    elif model_type == catalog.VISUAL_EMBEDDER:
        assert predictions.shape == (batch, model.embedding.out_features)
    elif model_type == catalog.VISUAL_SEGMENTER:
        assert outputs.shape == (batch, NUM_CLASSES + 1, size, size)
        assert predictions["masks"].shape == (batch, size, size)
        assert predictions["probabilities"].shape == (batch, NUM_CLASSES + 1, size, size)
    elif model_type == catalog.VISUAL_ANOMALY_HEATMAP:
        assert predictions["anomaly_maps"].shape == (batch, 1, size, size)
        assert predictions["scores"].shape == (batch,)
    elif model_type == catalog.VISUAL_DETECTOR:
        expected_anchors = sum(math.ceil(size / stride) ** 2 * 9 for stride in model.strides)
        assert outputs["cls_logits"].shape == (batch, expected_anchors, NUM_CLASSES)
        assert outputs["box_deltas"].shape == (batch, expected_anchors, 4)
        assert len(predictions) == batch and set(predictions[0]) == {"boxes", "scores", "labels"}


# Published parameter counts with a 1000-class head. The papers give 3 significant digits (so up to
# 0.2% rounding); 0.5% still catches a missing block in every network (the smallest, an Inception-v4
# Inception-A module, is 0.7% of its total). Inception-v2: the authors' released Inception-v3 without
# its auxiliary head has 23.83M; Figure 5 of the paper factorizes its three 48->64 5x5 convolutions
# into 3x3 ones, 3 * 48 * 64 * (25 - 9) = 0.147M fewer.
PUBLISHED_PARAMETERS = {
    "ResNext": 25.0e6,
    "InceptionBatchNorm": 11.3e6,
    "InceptionV4": 42.7e6,
    "InceptionResnetV2": 55.8e6,
    "InceptionV2": 23.83e6 - 3 * 48 * 64 * 16,
}
PUBLISHED_CHANNELS = {
    "ResNext": (256, 512, 1024, 2048),
    "InceptionBatchNorm": (192, 320, 608, 1024),
    "InceptionV4": (192, 384, 1024, 1536),
    "InceptionResnetV2": (192, 320, 1088, 1536),
    "InceptionV2": (192, 288, 768, 2048),
}


@pytest.mark.parametrize("template", sorted(BACKBONES))
def test_full_scale_backbones_match_published_sizes(template):
    model = ImageClassifier(BACKBONES[template](), num_classes=1000)
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(PUBLISHED_PARAMETERS[template], rel=0.005)
    assert model.backbone.feature_channels == PUBLISHED_CHANNELS[template]


_STRIDE_CASES = [(template, size) for template in sorted(BACKBONES) for size in (32, 96)] + [("ResNext", 1024)]


@pytest.mark.parametrize(("template", "size"), _STRIDE_CASES)
def test_backbones_give_strides_4_to_32_from_32_to_1024_px(template, size):
    backbone = BACKBONES[template](width_mult=0.25, depth_mult=0.34).eval()
    with torch.no_grad():
        features = backbone.forward_features(torch.randn(1, 3, size, size))
    assert [f.shape[1] for f in features] == list(backbone.feature_channels)
    assert [f.shape[-1] for f in features] == [math.ceil(size / s) for s in (4, 8, 16, 32)]


def test_width_and_depth_multipliers_scale_resnext():
    narrow = ResNext(width_mult=0.5)
    assert narrow.feature_channels == (128, 256, 512, 1024)
    # Grouped convs keep whole groups: every group width is a multiple of the cardinality.
    assert all(block.grouped[0].in_channels % 32 == 0 for stage in narrow.stages for block in stage)
    shallow = ResNext(width_mult=0.25, depth_mult=0.5)
    assert [len(stage) for stage in shallow.stages] == [2, 2, 3, 2]
    deep = ResNext(width_mult=0.25, depth_mult=2.0)
    assert [len(stage) for stage in deep.stages] == [6, 8, 12, 6]


def _brute_force_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union

    remaining = list(range(len(boxes)))
    kept = []
    while remaining:
        best = max(remaining, key=lambda i: scores[i])
        kept.append(best)
        remaining = [i for i in remaining if i != best and iou(boxes[i], boxes[best]) <= threshold]
    return kept


def _random_boxes(count: int, generator: torch.Generator) -> torch.Tensor:
    corners = torch.rand(count, 2, generator=generator) * 100
    sizes = torch.rand(count, 2, generator=generator) * 40 + 5
    return torch.cat([corners, corners + sizes], dim=1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force_reference(seed, threshold):
    generator = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(60, generator)
    scores = torch.rand(60, generator=generator)
    kept = nms(boxes, scores, threshold).tolist()
    assert kept == _brute_force_nms(boxes.tolist(), scores.tolist(), threshold)


def test_batched_nms_only_suppresses_within_a_class():
    generator = torch.Generator().manual_seed(7)
    boxes = _random_boxes(80, generator)
    scores = torch.rand(80, generator=generator)
    labels = torch.randint(0, 3, (80,), generator=generator)
    kept = set(batched_nms(boxes, scores, labels, 0.5).tolist())
    expected = set()
    for label in range(3):
        members = torch.nonzero(labels == label).squeeze(1).tolist()
        local = _brute_force_nms([boxes[i].tolist() for i in members], [float(scores[i]) for i in members], 0.5)
        expected |= {members[i] for i in local}
    assert kept == expected
    # The very same box under two labels survives twice.
    twin = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 2)
    assert len(batched_nms(twin, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5)) == 2


def test_focal_loss_reduces_to_cross_entropy_and_down_weights_easy_examples():
    logits = torch.tensor([3.0, -3.0, 0.5, -0.2, 2.0])
    targets = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert torch.allclose(sigmoid_focal_loss(logits, targets, alpha=None, gamma=0.0), bce)
    # alpha weights positives by 0.25 and negatives by 0.75.
    weights = torch.where(targets > 0, 0.25, 0.75)
    assert torch.allclose(sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=0.0), weights * bce)
    # gamma = 2 multiplies by (1 - p_t)^2: a confident correct example (p_t ~ 0.95) is cut ~400x,
    # a confident wrong one (the last, p_t ~ 0.12) keeps most of its loss.
    p = torch.sigmoid(logits)
    p_t = torch.where(targets > 0, p, 1 - p)
    focal = sigmoid_focal_loss(logits, targets, alpha=None, gamma=2.0)
    assert torch.allclose(focal, bce * (1 - p_t) ** 2)
    assert focal[0] < bce[0] / 300 and focal[4] > 0.7 * bce[4]


def test_box_encoding_round_trips():
    generator = torch.Generator().manual_seed(1)
    anchors, boxes = _random_boxes(20, generator), _random_boxes(20, generator)
    assert torch.allclose(decode_boxes(anchors, encode_boxes(anchors, boxes)), boxes, atol=1e-4)


def test_default_anchors_cover_small_objects_on_small_canvases():
    detector = ImageDetector(ResNext(width_mult=0.25, depth_mult=0.34), NUM_CLASSES, image_size=128,
                             fpn_channels=32, head_convs=1)
    anchors = detector.anchors([(16, 16), (8, 8), (4, 4)], torch.device("cpu"))
    for side in (20, 40, 60):
        box = torch.tensor([[50.0, 40.0, 50.0 + side, 40.0 + side]])
        assert box_iou(anchors, box).max() >= 0.5, f"no anchor overlaps a {side} px object at IoU 0.5"


@pytest.mark.parametrize("perclass", [False, True])
def test_perclass_regression_switches_the_box_head(perclass):
    model = build_model(catalog.VISUAL_DETECTOR, "InceptionV2", num_classes=4, image_size=64, scale=SMALL,
                        hyperparameters={"use_perclass_regression": perclass})
    outputs = model(torch.randn(2, 3, 64, 64))
    anchors = len(outputs["anchors"])
    expected = (2, anchors, 4, 4) if perclass else (2, anchors, 4)
    assert outputs["box_deltas"].shape == expected
    assert model.box_subnet[-1].out_channels == 9 * (16 if perclass else 4)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 36.0]]), "labels": torch.tensor([2])}] * 2
    loss, _ = model.loss(outputs, targets)
    assert torch.isfinite(loss)
    # An image without objects only teaches "background everywhere".
    no_objects = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    loss, metrics = model.loss(outputs, no_objects)
    assert torch.isfinite(loss) and metrics["box_loss"] == 0.0 and metrics["positive_anchors"] == 0.0


def test_crowd_boxes_are_ignored_regions_not_objects():
    model = build_model(catalog.VISUAL_DETECTOR, "InceptionV2", num_classes=2, image_size=64, scale=SMALL,
                        hyperparameters={})
    outputs = model(torch.randn(1, 3, 64, 64))
    crowd = [{"boxes": torch.tensor([[0.0, 0.0, 64.0, 40.0]]), "labels": torch.tensor([1]),
              "iscrowd": torch.tensor([True])}]
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "iscrowd": torch.zeros(0, dtype=torch.bool)}]
    with_crowd, metrics = model.loss(outputs, crowd)
    background_only, _ = model.loss(outputs, empty)
    assert metrics["positive_anchors"] == 0.0  # never a positive
    assert with_crowd < background_only  # the anchors inside the crowd no longer count as background either


def test_detector_learns_one_image_and_finds_its_boxes():
    model = build_model(catalog.VISUAL_DETECTOR, "InceptionV2", num_classes=2, image_size=128, scale=SMALL,
                        hyperparameters={})
    image = torch.randn(1, 3, 128, 128) * 0.1
    boxes = torch.tensor([[10.0, 12.0, 40.0, 50.0], [70.0, 60.0, 120.0, 110.0]])
    image[..., 12:50, 10:40] += 1.0
    image[..., 60:110, 70:120] -= 1.0
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 1])}]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss, metrics = model.loss(model(image), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(metrics["loss"])
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    with torch.no_grad():
        found = model.predict(model(image), score_threshold=0.2)[0]
    for box, label in zip(boxes, (0, 1), strict=True):
        hits = found["labels"] == label
        assert hits.any() and box_iou(found["boxes"][hits], box[None]).max() > 0.5


def test_classifier_fits_sixteen_random_images():
    model = build_model(catalog.VISUAL_CLASSIFIER, "ResNext", num_classes=4, image_size=32, scale=SMALL,
                        hyperparameters={})
    images = torch.randn(16, 3, 32, 32)
    labels = torch.arange(16) % 4
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        loss, _ = model.loss(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model.predict(model(images)).argmax(dim=1)
    assert (predicted == labels).all()


def test_logreg_classifier_uses_independent_sigmoids():
    model = build_model(catalog.VISUAL_CLASSIFIER, "InceptionBatchNorm", num_classes=3, image_size=32, scale=SMALL,
                        hyperparameters={"logreg": True}).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    multi_hot = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    loss, _ = model.loss(logits, multi_hot)
    assert loss == pytest.approx(float(torch.nn.functional.binary_cross_entropy_with_logits(logits, multi_hot)))
    assert torch.allclose(model.predict(logits), torch.sigmoid(logits))


def test_embedder_outputs_unit_vectors_and_its_margin_makes_training_harder():
    model = ImageEmbedder(ResNext(width_mult=0.25, depth_mult=0.34), num_classes=5, embedding_dim=16).eval()
    with torch.no_grad():
        embeddings = model(torch.randn(4, 3, 32, 32))
    assert embeddings.shape == (4, 16)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(4), atol=1e-5)
    labels = torch.tensor([0, 1, 2, 3])
    with_margin, _ = model.loss(embeddings, labels)
    model.margin = 0.0
    without_margin, _ = model.loss(embeddings, labels)
    assert with_margin > without_margin


def test_segmenter_ignores_pixels_marked_255():
    model = build_model(catalog.VISUAL_SEGMENTER, "InceptionBatchNorm", num_classes=2, image_size=32, scale=SMALL,
                        hyperparameters={})
    logits = torch.randn(2, 3, 32, 32)
    targets = torch.randint(0, 3, (2, 32, 32))
    targets[:, :16] = 255
    loss, _ = model.loss(logits, targets)
    scrambled = logits.clone()
    scrambled[:, :, :16] = torch.randn(2, 3, 16, 32) * 10
    assert model.loss(scrambled, targets)[0] == pytest.approx(float(loss), rel=1e-5)
    masks = model.predict(logits)["masks"]
    assert torch.equal(masks, logits.argmax(dim=1))


def _textured(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Normal images: diagonal stripes at a random phase, plus mild noise."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    phases = torch.rand(count, 1, 1, 1, generator=generator) * 2 * math.pi
    stripes = torch.sin((xs + ys).float() * 0.8 + phases)
    return stripes.expand(count, 3, size, size) + 0.1 * torch.randn(count, 3, size, size, generator=generator)


def test_patchcore_scores_a_synthetic_defect_above_normal_images_and_survives_save_load():
    generator = torch.Generator().manual_seed(3)
    model = build_model(catalog.VISUAL_ANOMALY_HEATMAP, "PatchCore", num_classes=1, image_size=64, scale=SMALL,
                        hyperparameters={})
    assert not model.needs_gradient_training
    train = _textured(24, 64, generator)
    bank_size = model.fit_memory_bank(train.split(8))
    assert 0 < bank_size < 24 * 8 * 8  # a coreset, not every patch

    normal = _textured(6, 64, generator)
    defective = _textured(6, 64, generator)
    defective[:, :, 36:48, 12:24] = 2.0  # a flat bright blob breaks the stripes
    model.eval()
    with torch.no_grad():
        normal_scores = model.score(normal)
        defect_scores = model.score(defective)
        heatmap = model.anomaly_map(defective)
    assert defect_scores.min() > normal_scores.max()
    assert heatmap.shape == (6, 1, 64, 64)
    hottest_row, hottest_col = divmod(int(heatmap[0, 0].argmax()), 64)
    assert 28 <= hottest_row <= 56 and 4 <= hottest_col <= 32

    restored = build_model(catalog.VISUAL_ANOMALY_HEATMAP, "PatchCore", num_classes=1, image_size=64, scale=SMALL,
                           hyperparameters={})
    restored.load_state_dict(model.state_dict())
    restored.eval()
    assert restored.memory_bank.shape == model.memory_bank.shape
    with torch.no_grad():
        assert torch.allclose(restored.score(defective), defect_scores)


def test_reconstruction_learns_normal_texture_and_flags_a_foreign_one():
    generator = torch.Generator().manual_seed(0)
    model = build_model(catalog.VISUAL_ANOMALY_HEATMAP, "Reconstruction", num_classes=1, image_size=32, scale=SMALL,
                        hyperparameters={})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, metrics = model.loss(model(_textured(8, 32, generator)), None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(metrics["loss"])
    assert losses[-1] < 0.5 * losses[0]

    # Same amplitude, other orientation: only a model that learnt the normal stripes can tell.
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    foreign = torch.sin((xs - ys).float() * 0.8)
    defective = _textured(8, 32, generator)
    defective[:, :, 12:24, 8:20] = foreign[12:24, 8:20]
    model.eval()
    with torch.no_grad():
        assert model.score(defective).min() > model.score(_textured(8, 32, generator)).max()


def test_text_models_handle_padding_and_short_texts():
    for model in (TextCNN(VOCAB, NUM_CLASSES), TextTransformer(VOCAB, NUM_CLASSES, max_len=16)):
        model.eval()
        tokens = torch.tensor([[5, 6, 0, 0], [0, 0, 0, 0]])  # shorter than the widest filter; one all padding
        with torch.no_grad():
            logits = model(tokens)
            longer = model(torch.randint(1, VOCAB, (2, 40)))  # longer than the Transformer's max_len
        assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()
        assert longer.shape == (2, NUM_CLASSES)
        # Padding does not change the prediction.
        with torch.no_grad():
            padded = model(torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0]]))
            unpadded = model(torch.tensor([[5, 6, 7, 0, 0]]))
        assert torch.allclose(padded, unpadded, atol=1e-5)


def test_registry_rejects_a_template_not_offered_for_the_type():
    with pytest.raises(ValueError, match=r"spec\.template.*'ResNext'.*InceptionV2, InceptionV4"):
        build_model(catalog.VISUAL_DETECTOR, "ResNext", num_classes=2, image_size=64, scale=SMALL, hyperparameters={})
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(catalog.TEXT_CLASSIFIER, "TextCNN", num_classes=2, image_size=None, scale=SMALL, hyperparameters={})


def test_registry_reads_hyperparameters_and_scale():
    model = build_model(catalog.VISUAL_DETECTOR, "InceptionV4", num_classes=2, image_size=None, scale=SMALL,
                        hyperparameters={"image_size": 256, "detection_score_threshold": 0.6})
    assert model.strides == (8, 16, 32, 64)  # 256 px adds the stride-64 level
    assert model.score_threshold == 0.6
    text = build_model(catalog.TEXT_CLASSIFIER, "TextCNN", num_classes=2, image_size=None, scale=TemplateScale(),
                       hyperparameters={"logreg": True}, vocab_size=VOCAB)
    assert [conv.out_channels for conv in text.backbone.convs] == [100, 100, 100] and text.logreg  # Kim 2014
    wide = build_model(catalog.VISUAL_CLASSIFIER, "ResNext", num_classes=2, image_size=32,
                       scale=TemplateScale(width=0.5, depth=0.34), hyperparameters={})
    assert wide.backbone.feature_channels == (128, 256, 512, 1024)


def test_backbone_weights_warm_start_another_model():
    source = build_model(catalog.VISUAL_EMBEDDER, "ResNext", num_classes=5, image_size=32, scale=SMALL,
                         hyperparameters={})
    for p in source.backbone.parameters():
        torch.nn.init.normal_(p)
    target = build_model(catalog.VISUAL_CLASSIFIER, "ResNext", num_classes=3, image_size=32, scale=SMALL,
                         hyperparameters={})
    head_before = target.fc.weight.clone()
    loaded, skipped = load_backbone_weights(target, source.state_dict())
    assert not skipped and len(loaded) == len(target.backbone.state_dict())
    for name, tensor in source.backbone.state_dict().items():
        assert torch.equal(target.backbone.state_dict()[name], tensor)
    assert torch.equal(target.fc.weight, head_before)

    other_width = build_model(catalog.VISUAL_CLASSIFIER, "ResNext", num_classes=3, image_size=32,
                              scale=TemplateScale(width=0.5, depth=0.34), hyperparameters={})
    loaded, skipped = load_backbone_weights(other_width, source.state_dict())
    assert skipped and all(name.endswith("num_batches_tracked") for name in loaded)  # shapes differ: nothing real
