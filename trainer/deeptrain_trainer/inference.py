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

from deeptrain_api.trainer_contract import MODEL_CARD, MODEL_WEIGHTS

from .artifacts import read_model_card, sha256_file, weights_path
from .data.video import DEFAULT_FRAME_RATE, is_video
from .tasks import task_for
from .tasks.base import ModelSpec, Task

BATCH_SIZE = 32


class ModelLoadError(ValueError):
    """A model directory that cannot be loaded; str() names the directory and the fix."""


def _read_card(model_dir: Path) -> dict[str, Any]:
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} not found; give the output directory of a finished "
                             "`deeptrain run` (it holds model.json and model.safetensors)")
    for name in (MODEL_CARD, MODEL_WEIGHTS):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"{model_dir} holds no {name}: it is not a trained model (is training "
                                 "still running, or did it fail?); give the directory of a finished run")
    try:
        card = read_model_card(model_dir)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{model_dir / MODEL_CARD} cannot be read ({error}); train the model again") from None
    if not isinstance(card, dict) or not {"modelType", "template", "concepts", "input"} <= set(card):
        raise ModelLoadError(f"{model_dir / MODEL_CARD} is not a deeptrain model card; train the model again")
    return card


class Predictor:
    def __init__(self, model_dir: Path, device: torch.device | str = "cpu"):
        self.model_dir = Path(model_dir)
        self.card = _read_card(self.model_dir)
        weights = weights_path(self.model_dir)
        checksum = "sha256:" + sha256_file(weights)
        if self.card.get("checksum") and checksum != self.card["checksum"]:
            raise ModelLoadError(f"{weights} does not match model.json (checksum {checksum}, "
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
        An input that cannot be read or decoded gets {"input", "error"} and the others their results.
        """
        if self.tokenizer is not None:
            raw = self._predict_texts(list(inputs))
            return [{"input": text, **public(result)} for text, result in zip(inputs, raw, strict=True)]
        results: list[dict[str, Any]] = [{"input": name} for name in inputs]
        loaded: list[tuple[int, Image.Image]] = []
        for index, name in enumerate(inputs):
            if is_video(name):
                continue
            image_or_error = _load_input_image(name)
            if isinstance(image_or_error, str):
                results[index]["error"] = image_or_error
            else:
                loaded.append((index, image_or_error))
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(loaded), BATCH_SIZE):
            chunk = loaded[start:start + BATCH_SIZE]
            batch = self._image_batch([image for _, image in chunk])
            raw = self._run(batch)
            for (index, image), result in zip(chunk, raw, strict=True):
                results[index].update(public(result))
                if save_dir is not None:
                    stem = save_dir / f"{index:04d}-{Path(inputs[index]).stem}"
                    saved = self.task.save_visualisation(image, result, self.model, batch, self.spec, stem)
                    if saved is not None:
                        results[index]["saved"] = str(saved)
        for index, name in enumerate(inputs):
            if is_video(name):
                saved_video = save_dir / f"{index:04d}-{Path(name).stem}.annotated.mp4" if save_dir else None
                results[index] = _predict_video_or_error(self, name, video_frame_rate, saved_video)
        return results

    def predict_raw(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """Predictions for decoded images, with the arrays kept for drawing (keys starting with "_")."""
        results = []
        for start in range(0, len(images), BATCH_SIZE):
            results.extend(self._run(self._image_batch(images[start:start + BATCH_SIZE])))
        return results

    def predict_images(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """Predictions for decoded images (any mode; converted to RGB), in order."""
        return [public(result) for result in self.predict_raw(images)]

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
        from .data.transforms import image_to_tensor, normalise, resize_image

        size = int(self.input["image_size"])
        return normalise(torch.stack([image_to_tensor(resize_image(to_rgb(image), size)) for image in images])).to(self.device)

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


def _load_input_image(name: str) -> Image.Image | str:
    """The decoded image, or one line saying why it cannot be predicted."""
    from .data import DatasetError
    from .data.images import load_image
    from .data.uris import resolve_uri

    try:
        return load_image(resolve_uri(name))
    except DatasetError as error:
        return error.problem + (f"; {error.fix}" if error.fix else "")
    except IsADirectoryError:
        return "is a directory; give image files"
    except FileNotFoundError:
        return "not found; check the path"
    except OSError as error:
        return f"cannot be read ({error.strerror or error}); check the path"


def _predict_video_or_error(predictor: Predictor, name: str, rate: float, save_path: Path | None) -> dict[str, Any]:
    """The video's per-frame predictions, or {"input", "error"} saying why it cannot be predicted."""
    from .data.video import VideoError, VideoSource
    from .video_inference import predict_video

    try:
        return predict_video(predictor, VideoSource.from_uri(name), rate=rate, save_path=save_path)
    except VideoError as error:
        return {"input": name, "error": error.problem + (f"; {error.fix}" if error.fix else "")}
    except IsADirectoryError:
        return {"input": name, "error": "is a directory; give video files"}
    except FileNotFoundError:
        return {"input": name, "error": "not found; check the path"}


def public(result: dict[str, Any]) -> dict[str, Any]:
    """A prediction without the arrays kept only for drawing."""
    return {key: value for key, value in result.items() if not key.startswith("_")}


def load_model(model_dir: Path | str, device: torch.device | str = "cpu") -> Predictor:
    return Predictor(Path(model_dir), device=device)
