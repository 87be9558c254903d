"""What `deeptrain workflow run`, `deeptrain index` and `deeptrain search` do, minus argument parsing."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deeptrain_api.trainer_contract import ENV_TERMINATION_LOG, PVC_MOUNT_ROOT
from deeptrain_api.workflow_contract import index_termination_message

from ..data.images import load_image
from ..data.uris import resolve_uri
from ..data.video import DEFAULT_FRAME_RATE, VideoSource, is_video
from .errors import WorkflowError
from .graph import GraphInput, WorkflowRunner
from .index import IndexMeta, Metric, SearchIndex
from .indexing import (
    embed_node_of,
    embed_rows,
    merge_parts,
    model_versions,
    part_directory,
    plan,
    read_dataset,
    write_part,
)
from .kmeans import store_clusters
from .manifest import load_workflow
from .milvus_store import MilvusIndex, collection_name
from .models import PVC_SCHEME, models_dir_resolver, parse_model_map, pinned_resolver
from .stores import EMBEDDED, MILVUS, create_index, open_index
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


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N); `$JOB_COMPLETION_INDEX/N` is how an indexed Job's pods name their shard."""
    shard, _, shards = text.partition("/")
    try:
        pair = int(shard), int(shards)
    except ValueError:
        pair = (-1, 0)
    if not 0 <= pair[0] < pair[1]:
        raise WorkflowError(f"--shard {text!r}: write I/N with 0 <= I < N, e.g. --shard 0/4")
    return pair


def parts_directory(output: Path) -> Path:
    """Where the shards of an embedded index leave their parts for the merge: a hidden sibling of the index."""
    return output.parent / f".{output.name}-parts"


def index_dataset(workflow_file: Path, models_dir: Path | None, model_pairs: Sequence[str] = (),
                  output: Path | None = None, embed_node: str | None = None, *,
                  shard: tuple[int, int] | None = None, merge: int | None = None) -> tuple[SearchIndex, str]:
    """Bring the index spec.index asks for up to date with its dataset (default folder: `index/` in the models dir).

    Without `shard` or `merge` one process does everything. `shard=(I, N)` embeds the I-th of N
    shards: into a part for the embedded store, straight into the collection for milvus. `merge=N`
    then applies the N parts (embedded), clusters the rows and commits.
    """
    runner = open_runner(workflow_file, models_dir, model_pairs)
    spec = runner.workflow.spec.index
    if spec is None:
        raise WorkflowError(f"{workflow_file}: spec.index is not set; add spec.index.dataset {{uri, format}} to index")
    if output is None and spec.store == EMBEDDED:
        if models_dir is None:
            raise WorkflowError("give --output DIR for the index (the default, DIR/index, needs --models DIR)")
        output = models_dir / DEFAULT_INDEX_DIR
    output = output or Path(DEFAULT_INDEX_DIR)
    node = embed_node_of(runner, embed_node)
    meta = IndexMeta(metric=spec.metric, embed_node=node, models=model_versions(runner),
                     dataset={"uri": spec.dataset.uri, "format": spec.dataset.format})
    index = create_index(spec.store, meta, directory=output, workflow_name=runner.workflow.metadata.name or "",
                         structure=spec.structure)

    def progress(done: int, total: int) -> None:
        log.info("embedded %d/%d dataset entries (images or videos)", done, total)

    rate = spec.dataset.videoFrameRate

    if merge is None:
        records = read_dataset(dataset_location(spec.dataset.uri), spec.dataset.format)
        shard_index, shards = shard or (0, 1)
        todo = plan(records, index.sources(), shard=shard_index, shards=shards)
        log.info("shard %d/%d: %s", shard_index, shards, todo.summary())
        if shard is not None and spec.store == EMBEDDED:
            write_part(parts_directory(output), shard_index, shards, todo,
                       embed_rows(runner, todo.embed, node, progress, rate))
            return index, str(part_directory(parts_directory(output), shard_index, shards))
        index.remove_sources(todo.remove)
        for rows in embed_rows(runner, todo.embed, node, progress, rate):
            index.add(rows)
        if shard is not None:
            index.commit()
            return index, index.location
    elif spec.store == EMBEDDED:
        merge_parts(index, parts_directory(output), merge)
    index.commit()
    if spec.clusters and index.count():
        store_clusters(index, spec.clusters)
        index.commit()
    if index.count() == 0:
        raise WorkflowError(f"node {node!r} made no embedding for any image of {spec.dataset.uri} "
                            "(is it empty, or did the detector find nothing?); nothing to index")
    if merge is not None and spec.store == EMBEDDED:
        shutil.rmtree(parts_directory(output), ignore_errors=True)
    termination_log = os.environ.get(ENV_TERMINATION_LOG)
    if termination_log:
        Path(termination_log).write_text(index_termination_message(index.count(), index.version, index.location))
    return index, index.location


def prune_index(workflow_file: Path, models_dir: Path | None, model_pairs: Sequence[str] = (),
                embed_node: str | None = None) -> list[str]:
    """Drop the store's other generations of this workflow's index: call once the current one serves."""
    runner = open_runner(workflow_file, models_dir, model_pairs)
    spec = runner.workflow.spec.index
    if spec is None or spec.store != MILVUS:
        return []  # the embedded store keeps one folder, replaced in place
    meta = IndexMeta(metric=spec.metric, embed_node=embed_node_of(runner, embed_node), models=model_versions(runner))
    name = runner.workflow.metadata.name or ""
    return MilvusIndex.create(collection_name(name, meta), meta).drop_other_generations(name)


def search_image(workflow_file: Path, models_dir: Path | None, model_pairs: Sequence[str], index_dir: str,
                 image: str, k: int, metric: Metric | None = None,
                 video_frame_rate: float = DEFAULT_FRAME_RATE) -> list[dict[str, Any]]:
    """Search with an image, or a video (its sampled frames' neighbours merged)."""
    runner = open_runner(workflow_file, models_dir, model_pairs)
    query = graph_inputs(runner, [image], video_frame_rate)[0]
    index = open_index(index_dir)
    index.check_models(runner.model_versions())
    return search_query(runner, index, query, k, metric)
