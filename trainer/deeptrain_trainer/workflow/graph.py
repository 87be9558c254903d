"""Running a Workflow's graph over a batch of inputs.

Nodes run in the order they are listed (the API requires dependency order). Each node consumes
*items*: an image (a whole input, or a crop that remembers the region it was cut for) or a text.

- A node without inputs consumes the graph's inputs.
- A node fed by an image-crop node consumes that node's crops, one item per region.
- A node fed by a model node consumes the items that node consumed: models annotate images, they
  do not replace them (so a classifier fed by a detector sees the same images as the detector).
- With several inputs, the items of each input in the order the inputs are listed.

A node runs once per batch over every item of every input (the predictor batches them), so a node
fed by crops runs on all crops of all inputs together.

Output per input, JSON-serialisable: {"input": NAME, "nodes": {NODE_ID: [ENTRY, ...]}}, one entry
per item the node consumed (per crop it made, for image-crop), in item order:
- visual-detector: {"regions": [{"box": {top_row, left_col, bottom_row, right_col}, "concept", "score"}]}
  with boxes normalised to the *input* image, also when the detector ran on crops;
- image-crop: {"region": REGION, "cropBox": BOX actually cut (margin applied, clamped), "size": [w, h]};
- visual-embedder: {"embedding": [...]}; classifier, segmenter, anomaly, text: the model's prediction;
- an entry made from a crop also carries that crop's "region".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from deeptrain_api import catalog
from deeptrain_api.workflow import Workflow, WorkflowNode

from ..data.video import VideoLimits, VideoSource
from ..inference import Predictor, load_model
from .crop import DEFAULT_MARGIN, Box, box_in_parent, crop_region, rounded
from .errors import WorkflowError
from .models import ModelResolver, model_directory

IMAGE_CROP = "image-crop"


@dataclass(frozen=True)
class VideoInput:
    source: VideoSource
    rate: float  # frames per second to sample
    limits: VideoLimits = VideoLimits()


@dataclass(frozen=True)
class GraphInput:
    """One input of a request: an image, a video or a text, and the name the output shows for it.

    `run` takes images and texts; a video's frames go through it batch by batch (workflow.video).
    """

    name: str
    image: Image.Image | None = None
    text: str | None = None
    video: VideoInput | None = None


@dataclass(frozen=True)
class Item:
    input_index: int
    image: Image.Image | None = None
    text: str | None = None
    region: dict[str, Any] | None = None  # the detected region this crop was cut for, in input coordinates
    window: Box | None = None  # where this crop's pixels lie in the input; None: the whole input


@dataclass
class _Step:
    node: WorkflowNode
    predictor: Predictor | None
    consumed: list[Item] = field(default_factory=list)
    produced: list[Item] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # one per produced crop or consumed item
    # A detector's regions as (item, box relative to the item's pixels, region as shown in the output).
    detections: list[tuple[Item, Box, dict[str, Any]]] = field(default_factory=list)


class WorkflowRunner:
    """Loads every node's model once, checks that the graph's steps fit together, then runs batches."""

    def __init__(self, workflow: Workflow, resolve_model_uri: ModelResolver, device: str = "cpu"):
        self.workflow = workflow
        self.nodes: list[WorkflowNode] = list(workflow.spec.nodes)
        self.predictors: dict[str, Predictor] = {}
        self.model_dirs: dict[str, Path] = {}
        loaded: dict[Path, Predictor] = {}
        for node in self.nodes:
            if node.model.builtin is not None:
                continue
            directory = model_directory(resolve_model_uri(node), node.id).resolve()
            if directory not in loaded:
                try:
                    loaded[directory] = load_model(directory, device=device)
                except (OSError, ValueError, KeyError) as error:
                    raise WorkflowError(f"node {node.id!r}: cannot load the model in {directory}: {error}; "
                                        "point the node at a trained model directory (model.json + "
                                        "model.safetensors)") from error
            self.predictors[node.id] = loaded[directory]
            self.model_dirs[node.id] = directory
        self.input_kind = self._check_graph()

    def model_type(self, node_id: str) -> str | None:
        predictor = self.predictors.get(node_id)
        return predictor.spec.model_type if predictor is not None else None

    def model_versions(self) -> dict[str, dict[str, Any]]:
        """What each model node runs: type, template, version (from model.json) and directory."""
        return {node_id: {"modelType": predictor.card["modelType"], "template": predictor.card["template"],
                          "version": predictor.card.get("version"), "modelDir": str(self.model_dirs[node_id])}
                for node_id, predictor in self.predictors.items()}

    def embedding_nodes(self) -> list[str]:
        return [node.id for node in self.nodes if self.model_type(node.id) == catalog.VISUAL_EMBEDDER]

    def run(self, inputs: Sequence[GraphInput]) -> list[dict[str, Any]]:
        for position, graph_input in enumerate(inputs):
            has_image, has_text = graph_input.image is not None, graph_input.text is not None
            if has_image == has_text:
                raise WorkflowError(f"inputs[{position}] ({graph_input.name}): give exactly one of an image or a text")
            if (self.input_kind == "text") != has_text:
                raise WorkflowError(f"inputs[{position}] ({graph_input.name}): this workflow takes "
                                    f"{self.input_kind} inputs")
        graph_items = [Item(index, image=i.image, text=i.text) for index, i in enumerate(inputs)]
        steps: dict[str, _Step] = {}
        for node in self.nodes:
            step = _Step(node, self.predictors.get(node.id))
            step.consumed = graph_items if not node.inputs else [
                item for name in node.inputs for item in steps[name].produced]
            if node.model.builtin == IMAGE_CROP:
                self._crop(step, steps)
            else:
                self._predict(step)
            steps[node.id] = step
        results = [{"input": graph_input.name, "nodes": {node.id: [] for node in self.nodes}} for graph_input in inputs]
        for node_id, step in steps.items():
            owners = step.produced if step.node.model.builtin == IMAGE_CROP else step.consumed
            for item, entry in zip(owners, step.entries, strict=True):
                results[item.input_index]["nodes"][node_id].append(entry)
        return results

    def _predict(self, step: _Step) -> None:
        assert step.predictor is not None
        items = step.consumed
        if self.input_kind == "text":
            raw = [{k: v for k, v in r.items() if k != "input"}
                   for r in step.predictor.predict([item.text or "" for item in items])]
        else:
            raw = step.predictor.predict_images([item.image for item in items]) if items else []
        is_detector = step.predictor.spec.model_type == catalog.VISUAL_DETECTOR
        for item, prediction in zip(items, raw, strict=True):
            entry = dict(prediction)
            if is_detector:
                entry["regions"] = []
                for region in prediction["regions"]:
                    shown = {**region, "box": rounded(box_in_parent(region["box"], item.window))}
                    entry["regions"].append(shown)
                    step.detections.append((item, region["box"], shown))
            if item.region is not None:
                entry["region"] = item.region
            step.entries.append(entry)
        step.produced = list(items)

    def _crop(self, step: _Step, steps: dict[str, _Step]) -> None:
        params = step.node.model.params
        margin = params.margin if params is not None and params.margin is not None else DEFAULT_MARGIN
        for name in step.node.inputs or ():
            for item, local_box, region in steps[name].detections:
                crop, cut = crop_region(item.image, local_box, margin)
                window = box_in_parent(cut, item.window)
                step.produced.append(Item(item.input_index, image=crop, region=region, window=window))
                step.entries.append({"region": region, "cropBox": rounded(window), "size": list(crop.size)})

    def _check_graph(self) -> str:
        """The graph's input kind ("image" or "text"); WorkflowError naming the first node that cannot run."""
        kinds: dict[str, str] = {}
        for node in self.nodes:
            model_type = self.model_type(node.id)
            if node.model.builtin == IMAGE_CROP:
                sources = node.inputs or []
                bad = [name for name in sources if self.model_type(name) != catalog.VISUAL_DETECTOR]
                if not sources or bad:
                    raise WorkflowError(f"node {node.id!r}: image-crop cuts the regions of visual-detector nodes; "
                                        f"its inputs {sources} must name only such nodes")
                kinds[node.id] = "image"
                continue
            wants = "text" if catalog.model_type(model_type).input == "text" else "image"
            if node.inputs:
                given = {kinds[name] for name in node.inputs}
                if given != {wants}:
                    raise WorkflowError(f"node {node.id!r}: a {model_type} model takes {wants} inputs but its "
                                        f"inputs {node.inputs} give {' and '.join(sorted(given))}")
            kinds[node.id] = wants
        roots = {kinds[node.id] for node in self.nodes if not node.inputs}
        if len(roots) != 1:
            raise WorkflowError("spec.nodes: the nodes without inputs mix image and text models; "
                                "a workflow takes one kind of input")
        return roots.pop()

