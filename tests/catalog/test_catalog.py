"""The catalog is what the CRD, the operator and the trainer agree on; these pin its documented rules."""

import pytest

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import (
    TERMINATION_MESSAGE_LIMIT,
    ModelSummary,
    TerminationMessage,
    parse_termination_message,
)


def test_every_documented_hyperparameter_is_typed_with_a_range_or_choice():
    documented = {
        "average_horizontal_flips", "base_gradient_multiplier", "batch_size", "detection_score_threshold",
        "image_size", "init_epochs", "logreg", "lrate", "num_epochs", "num_items_per_epoch", "per_128_lrate",
        "per_item_lrate", "step_epochs", "test_freq", "use_perclass_regression",
    }
    # deeptrain's own, for multi-process training: gradient clipping and the SyncBatchNorm rule.
    own = {"gradient_clip_norm", "sync_batch_norm_below"}
    assert set(catalog.HYPERPARAMETERS) == documented | own
    for hp in catalog.HYPERPARAMETERS.values():
        assert hp.description
        if hp.type != "boolean":
            assert hp.minimum is not None and hp.maximum is not None, hp.name


@pytest.mark.parametrize("given, expected", [
    ({"batch_size": 64, "per_item_lrate": 1e-4}, 64 * 1e-4),
    ({"batch_size": 64, "per_128_lrate": 0.1}, 0.1 * 64 / 128),
    ({"batch_size": 64, "lrate": 0.02}, 0.02),
    ({"batch_size": 32}, 32 * catalog.DEFAULT_PER_ITEM_LRATE),
])
def test_learning_rate_follows_the_documented_formulas(given, expected):
    resolved = catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER, given)
    assert resolved["lrate"] == pytest.approx(expected)


def test_step_decay_after_init_epochs_then_every_step_epochs():
    hp = catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER, {"lrate": 0.1, "init_epochs": 3, "step_epochs": 2})
    rates = [catalog.learning_rate_at_epoch(hp, epoch) for epoch in range(8)]
    f = catalog.LR_DECAY_FACTOR
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.1 * f, 0.1 * f, 0.1 * f**2, 0.1 * f**2, 0.1 * f**3])


def test_per_type_defaults_and_applicability():
    detector = catalog.resolve_hyperparameters(catalog.VISUAL_DETECTOR, {})
    assert detector["batch_size"] == 16 and detector["use_perclass_regression"] is False
    assert "logreg" not in detector
    text = catalog.resolve_hyperparameters(catalog.TEXT_CLASSIFIER, {})
    assert "image_size" not in text and "average_horizontal_flips" not in text


def test_problems_name_the_field_and_the_fix():
    problems = dict(catalog.check_hyperparameters(
        catalog.VISUAL_CLASSIFIER, "InceptionV4",
        {"use_perclass_regression": True, "image_size": 100, "lrate": 0.1, "per_item_lrate": 0.001},
    ))
    assert "visual-classifier" in problems["spec.template"] and "ResNext" in problems["spec.template"]
    assert "does not apply to visual-classifier" in problems["spec.hyperparameters.use_perclass_regression"]
    assert "multiple of 16" in problems["spec.hyperparameters.image_size"]
    assert "at most one of" in problems["spec.hyperparameters"]
    assert catalog.check_hyperparameters(catalog.VISUAL_DETECTOR, "InceptionV2", {"batch_size": 8}) == []


def test_termination_message_stays_within_the_kubelet_limit_and_parses_back():
    metrics = {f"concept_{i}_f1": 0.5 for i in range(400)}
    message = TerminationMessage(reason="Succeeded", model=ModelSummary(
        uri="file:///out", version="abc", concepts=["a"], metrics=metrics, checksum="sha256:00"))
    text = message.to_json()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = parse_termination_message(text)
    assert parsed is not None and parsed.model is not None and parsed.model.version == "abc"
    assert parse_termination_message("Traceback (most recent call last): ...") is None
