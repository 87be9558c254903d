"""Trained models as predictors: `deeptrain predict`, and the batch API inference graphs build on.

A model directory holds model.safetensors and model.json; the card says how to rebuild the
architecture (type, template, scale, concepts, hyperparameters) and how to prepare inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file

from .artifacts import read_model_card, sha256_file, weights_path
from .data.video import DEFAULT_FRAME_RATE
from .tasks import task_for
from .tasks.base import ModelSpec, Task

BATCH_SIZE = 32


class Predictor:
    def __init__(self, model_dir: Path, device: torch.device | str = "cpu"):
        self.model_dir = Path(model_dir)
        self.card = read_model_card(self.model_dir)
        weights = weights_path(self.model_dir)
        checksum = "sha256:" + sha256_file(weights)
        if self.card.get("checksum") and checksum != self.card["checksum"]:
            raise ValueError(f"{weights} does not match model.json (checksum {checksum}, "
                             f"card says {self.card['checksum']}); the directory mixes two models")
        self.device = torch.device(device)
        self.task: Task = task_for(self.card["modelType"])
        self.input = self.card["input"]
        self.tokenizer = None
        if self.input["kind"] == "text":
            from .data import Tokenizer

            self.tokenizer = Tokenizer.from_dict(self.input["tokenizer"])
        self.spec = ModelSpec(model_type=self.card["modelType"], template=self.card["template"],
                              concepts=list(self.card["concepts"]), image_size=self.input.get("image_size"),
                              template_scale=dict(self.card["templateScale"]),
                              hyperparameters=dict(self.card["hyperparameters"]),
                              vocab_size=self.tokenizer.vocab_size if self.tokenizer is not None else None)
        self.inference = dict(self.card.get("inference", {}))
        self.model = self.task.build_model(self.spec)
        self.model.load_state_dict(load_file(str(weights)))
        self.model.to(self.device).eval()

    @property
    def concepts(self) -> list[str]:
        return self.spec.concepts

    def predict(self, inputs: Sequence[str], save_dir: Path | None = None,
                video_frame_rate: float = DEFAULT_FRAME_RATE) -> list[dict[str, Any]]:
        """Predictions for image or video paths/URIs (or texts, for a text classifier), each with its "input".

        A video's entry holds one prediction per frame sampled at `video_frame_rate` (see video_inference).
        """
        if self.tokenizer is not None:
            raw = self._predict_texts(list(inputs))
            return [{"input": text, **public(result)} for text, result in zip(inputs, raw, strict=True)]
        from .data.images import load_image
        from .data.uris import resolve_uri
        from .data.video import VideoSource, is_video
        from .video_inference import predict_video

        results: dict[int, dict[str, Any]] = {}
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
        positions = [position for position, name in enumerate(inputs) if not is_video(name)]
        for start in range(0, len(positions), BATCH_SIZE):
            chunk = positions[start:start + BATCH_SIZE]
            images = [load_image(resolve_uri(inputs[position])) for position in chunk]
            batch = self._image_batch(images)
            raw = self._run(batch)
            for position, image, result in zip(chunk, images, raw, strict=True):
                name = inputs[position]
                shown = {"input": name, **public(result)}
                if save_dir is not None:
                    stem = save_dir / f"{position:04d}-{Path(name).stem}"
                    saved = self.task.save_visualisation(image, result, self.model, batch, self.spec, stem)
                    if saved is not None:
                        shown["saved"] = str(saved)
                results[position] = shown
        for position, name in enumerate(inputs):
            if is_video(name):
                saved_video = save_dir / f"{position:04d}-{Path(name).stem}.annotated.mp4" if save_dir else None
                results[position] = predict_video(self, VideoSource.from_uri(name), rate=video_frame_rate,
                                                  save_path=saved_video)
        return [results[position] for position in range(len(inputs))]

    def predict_images(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """Predictions for decoded images (any mode; converted to RGB), in order."""
        return [public(result) for result in self.predict_raw(images)]

    def predict_raw(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """As predict_images, with the arrays kept for drawing (keys starting with "_")."""
        results = []
        for start in range(0, len(images), BATCH_SIZE):
            results.extend(self._run(self._image_batch(images[start:start + BATCH_SIZE])))
        return results

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Unit-norm embeddings [N, D] (visual-embedder models only)."""
        if self.spec.model_type != "visual-embedder":
            raise TypeError(f"{self.spec.model_type} models do not embed; use a visual-embedder")
        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), BATCH_SIZE):
                chunks.append(self.model(self._image_batch(images[start:start + BATCH_SIZE])).float().cpu())
        return torch.cat(chunks) if chunks else torch.zeros(0, 0)

    def _image_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        from .data.images import to_rgb
        from .data.transforms import image_to_tensor, resize_image

        size = int(self.input["image_size"])
        return torch.stack([image_to_tensor(resize_image(to_rgb(image), size)) for image in images]).to(self.device)

    def _predict_texts(self, texts: list[str]) -> list[dict[str, Any]]:
        from .data import collate_fn
        from .data.torch_datasets import TEXT_MAX_LENGTH

        collate = collate_fn(self.spec.model_type)
        results = []
        for start in range(0, len(texts), BATCH_SIZE):
            items = [(torch.tensor(self.tokenizer.encode(text, max_len=TEXT_MAX_LENGTH), dtype=torch.long),
                      torch.tensor(0)) for text in texts[start:start + BATCH_SIZE]]
            tokens, _ = collate(items)
            results.extend(self._run(tokens.to(self.device)))
        return results

    def _run(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        with torch.no_grad():
            return self.task.predictions(self.model, batch, self.spec, self.inference)


def public(result: dict[str, Any]) -> dict[str, Any]:
    """A prediction without the arrays kept only for drawing."""
    return {key: value for key, value in result.items() if not key.startswith("_")}


def load_model(model_dir: Path | str, device: torch.device | str = "cpu") -> Predictor:
    return Predictor(Path(model_dir), device=device)
