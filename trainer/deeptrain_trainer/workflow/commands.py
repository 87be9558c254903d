"""What `deeptrain workflow run`, `deeptrain index` and `deeptrain search` do, minus argument parsing."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..contract import ENV_TERMINATION_LOG, PVC_MOUNT_ROOT
from ..data.images import load_image
from ..data.uris import resolve_uri
from ..data.video import DEFAULT_FRAME_RATE, VideoSource, is_video
from .contract import index_termination_message
from .errors import WorkflowError
from .graph import GraphInput, WorkflowRunner
from .index import Index, Metric, load_index
from .indexing import build_index, read_dataset
from .manifest import load_workflow
from .models import PVC_SCHEME, models_dir_resolver, parse_model_map, pinned_resolver
from .video import run_inputs, search_query, video_input

log = logging.getLogger(__name__)

DEFAULT_INDEX_DIR = "index"


def open_runner(workflow_file: Path, models_dir: Path | None, model_pairs: Sequence[str]) -> WorkflowRunner:
    workflow = load_workflow(workflow_file)
    if models_dir is None and not model_pairs:
        raise WorkflowError("give --models DIR (DIR/<deepTrainingJob name> holds each job's model) "
                            "or --model NODE=DIR for each model node")
    fallback = models_dir_resolver(models_dir) if models_dir is not None else None
    return WorkflowRunner(workflow, pinned_resolver(parse_model_map(list(model_pairs)), fallback))


def graph_inputs(runner: WorkflowRunner, inputs: Sequence[str],
                 video_frame_rate: float = DEFAULT_FRAME_RATE) -> list[GraphInput]:
    """Command-line inputs: texts for a text workflow, otherwise image or video paths or URIs."""
    if runner.input_kind == "text":
        return [GraphInput(name=text, text=text) for text in inputs]
    images = []
    for name in inputs:
        if is_video(name):
            images.append(video_input(VideoSource.from_uri(name), video_frame_rate))
            continue
        try:
            images.append(GraphInput(name=name, image=load_image(resolve_uri(name))))
        except Exception as error:  # noqa: BLE001 (fsspec and PIL raise many kinds; all mean "cannot read it")
            raise WorkflowError(f"{name}: cannot read an image ({error})") from error
    return images


def run_workflow(workflow_file: Path, inputs: Sequence[str], models_dir: Path | None,
                 model_pairs: Sequence[str] = (), video_frame_rate: float = DEFAULT_FRAME_RATE) -> list[dict[str, Any]]:
    runner = open_runner(workflow_file, models_dir, model_pairs)
    return run_inputs(runner, graph_inputs(runner, inputs, video_frame_rate))


def dataset_location(uri: str) -> str:
    """spec.index.dataset.uri as this process reads it: pvc:// is where pods mount claims."""
    if uri.startswith(PVC_SCHEME):
        return f"file://{PVC_MOUNT_ROOT}/{uri.removeprefix(PVC_SCHEME)}"
    return uri


def index_dataset(workflow_file: Path, models_dir: Path | None, model_pairs: Sequence[str] = (),
                  output: Path | None = None, embed_node: str | None = None) -> tuple[Index, Path]:
    """Build the index spec.index asks for and save it (default: `index/` in the models directory)."""
    runner = open_runner(workflow_file, models_dir, model_pairs)
    spec = runner.workflow.spec.index
    if spec is None:
        raise WorkflowError(f"{workflow_file}: spec.index is not set; add spec.index.dataset {{uri, format}} to index")
    if output is None:
        if models_dir is None:
            raise WorkflowError("give --output DIR for the index (the default, DIR/index, needs --models DIR)")
        output = models_dir / DEFAULT_INDEX_DIR
    records = read_dataset(dataset_location(spec.dataset.uri), spec.dataset.format)

    def progress(done: int, total: int) -> None:
        log.info("indexed %d/%d dataset entries (images or videos)", done, total)

    index = build_index(runner, records, embed_node, metric=spec.metric,
                        dataset={"uri": spec.dataset.uri, "format": spec.dataset.format}, progress=progress,
                        video_frame_rate=spec.dataset.videoFrameRate)
    index.save(output)
    termination_log = os.environ.get(ENV_TERMINATION_LOG)
    if termination_log:
        Path(termination_log).write_text(index_termination_message(index.size, index.version, str(output)))
    return index, output


def search_image(workflow_file: Path, models_dir: Path | None, model_pairs: Sequence[str], index_dir: Path,
                 image: str, k: int, metric: Metric | None = None,
                 video_frame_rate: float = DEFAULT_FRAME_RATE) -> list[dict[str, Any]]:
    """Search with an image, or a video (its sampled frames' neighbours merged)."""
    runner = open_runner(workflow_file, models_dir, model_pairs)
    query = graph_inputs(runner, [image], video_frame_rate)[0]
    return search_query(runner, load_index(index_dir), query, k, metric)
