"""text-classifier: concepts per text. Same metrics and outputs as the image classifier.

Optimizer: AdamW for both text templates (the rates still come from the hyperparameters).
Token embeddings receive sparse, very uneven gradients; plain SGD at the catalog's default rate
barely moves the rare tokens' vectors, where AdamW's per-parameter scaling does.
"""

from __future__ import annotations

from deeptrain_api import catalog

from .classifier import ClassifierTask


class TextClassifierTask(ClassifierTask):
    model_type = catalog.TEXT_CLASSIFIER
    input_kind = "text"
    optimizer = "adamw"
