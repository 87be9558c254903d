"""Videos through a Workflow's graph: per-frame outputs, the frame rows of an index, and video queries.

A video input is sampled (`data.video`: streamed, at the rate the request or command chooses) and
its frames run through the graph in batches, like images. Its output is
{"input", "video": {width, height, codec, frameRate, durationMs},
 "frames": [{"frameIndex", "timeOffsetMs", "nodes": {...as for an image...}}]}.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..data.images import load_image
from ..data.records import ImageRecord
from ..data.video import (
    DEFAULT_FRAME_RATE,
    VideoError,
    VideoLimits,
    VideoSource,
    VideoTooLarge,
    batched,
    check_rate,
    format_offset,
    is_video,
    open_video,
)
from .errors import TooLarge, Unprocessable, WorkflowError
from .graph import GraphInput, VideoInput, WorkflowRunner
from .index import Metric, SearchIndex
from .search import search_by_image

if TYPE_CHECKING:
    from .inputs import RawInput
    from .limits import ServeLimits

BATCH_SIZE = 32


def video_input(source: VideoSource, rate: float = DEFAULT_FRAME_RATE,
                limits: VideoLimits = VideoLimits()) -> GraphInput:
    return GraphInput(name=source.name, video=VideoInput(source, rate, limits))


def is_video_part(name: str | None, filename: str | None) -> bool:
    """A multipart part is a video when it is named "video" or its file name has a video extension."""
    return name == "video" or bool(filename and is_video(filename))


def video_rate(reference: Any, where: str) -> float:
    """The "frameRate" of a request's video reference (default 1 frame per second)."""
    rate = reference.get("frameRate", DEFAULT_FRAME_RATE) if isinstance(reference, dict) else DEFAULT_FRAME_RATE
    try:
        return check_rate(rate, f"{where}.frameRate")
    except VideoError as error:
        raise WorkflowError(str(error)) from None


def video_graph_input(raw: RawInput, limits: ServeLimits) -> GraphInput:
    """A request's video, sampled as it runs; its frames may have no more pixels than an image may."""
    assert raw.data is not None and raw.video_rate is not None
    frame_limits = VideoLimits(max_pixels=min(VideoLimits().max_pixels, limits.max_image_pixels))
    return video_input(VideoSource.from_bytes(raw.data, raw.name), raw.video_rate, frame_limits)


def _frames_of(runner: WorkflowRunner, video: VideoInput) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(frame fields, the graph's output for the frame) for each sampled frame, then the video's info last."""
    if runner.input_kind != "image":
        raise WorkflowError(f"{video.source.name}: this workflow takes {runner.input_kind} inputs, not videos")
    try:
        with open_video(video.source, video.limits) as opened:
            for frames in batched(opened.frames(video.rate), BATCH_SIZE):
                outputs = runner.run([GraphInput(name=f"{video.source.name}@{frame.time_offset_ms}", image=frame.image)
                                      for frame in frames])
                for frame, output in zip(frames, outputs, strict=True):
                    yield frame.describe(), output
            yield opened.info.describe(), {}
    except VideoTooLarge as error:
        raise TooLarge(str(error)) from error
    except VideoError as error:
        raise Unprocessable(str(error)) from error
    except FileNotFoundError as error:
        raise Unprocessable(f"{video.source.name}: no such video") from error


def run_video(runner: WorkflowRunner, video: VideoInput) -> dict[str, Any]:
    frames = []
    info: dict[str, Any] = {}
    for fields, output in _frames_of(runner, video):
        if output:
            frames.append({**fields, "nodes": output["nodes"]})
        else:
            info = fields
    return {"input": video.source.name, "video": info, "frames": frames}


def run_inputs(runner: WorkflowRunner, inputs: Sequence[GraphInput]) -> list[dict[str, Any]]:
    """The graph's output for each input, in order: images and texts in one batch, each video frame by frame."""
    still = [position for position, graph_input in enumerate(inputs) if graph_input.video is None]
    outputs: dict[int, dict[str, Any]] = {}
    if still:
        outputs.update(zip(still, runner.run([inputs[position] for position in still]), strict=True))
    for position, graph_input in enumerate(inputs):
        if graph_input.video is not None:
            outputs[position] = run_video(runner, graph_input.video)
    return [outputs[position] for position in range(len(inputs))]


def search_query(runner: WorkflowRunner, index: SearchIndex, query: GraphInput, k: int,
                 metric: Metric | None = None) -> list[dict[str, Any]]:
    """Search with an image (one result per embedding it makes) or a video (one merged result)."""
    if query.video is not None:
        return search_by_video(runner, index, query.video, k, metric)
    assert query.image is not None
    return search_by_image(runner, index, query.image, k, metric, name=query.name)


def search_by_video(runner: WorkflowRunner, index: SearchIndex, video: VideoInput, k: int,
                    metric: Metric | None = None) -> list[dict[str, Any]]:
    """Embeds every sampled frame (every region, for a crop graph) and merges their neighbours: each indexed
    item once, at its smallest distance to any query frame, nearest first; "queryTimeOffsetMs" says which."""
    best: dict[str, dict[str, Any]] = {}
    query_frames = 0
    info: dict[str, Any] = {}
    for fields, output in _frames_of(runner, video):
        if not output:
            info = fields
            continue
        query_frames += 1
        entries = output["nodes"].get(index.embed_node)
        if entries is None:
            raise WorkflowError(f"the index was built from node {index.embed_node!r}, which this workflow lacks")
        if not entries:
            continue
        for neighbours in index.search([entry["embedding"] for entry in entries], k, metric):
            for neighbour in neighbours:
                kept = best.get(neighbour["id"])
                if kept is None or neighbour["distance"] < kept["distance"]:
                    best[neighbour["id"]] = {**neighbour, "queryTimeOffsetMs": fields["timeOffsetMs"]}
    merged = sorted(best.values(), key=lambda found: found["distance"])[:k]
    return [{"video": info, "queryFrames": query_frames, "neighbours": merged}]


@dataclass(frozen=True)
class IndexInput:
    """One image the index embeds: a dataset image, or a sampled frame of a dataset video."""

    record: ImageRecord  # whose concepts (and boxes) the rows get
    record_id: str
    graph_input: GraphInput
    extra: dict[str, Any] = field(default_factory=dict)  # a frame's timeOffsetMs, frameIndex and "at"
    records_done: int = 0  # dataset records finished once this input is embedded (for progress)


def one_record_per_video(records: Sequence[ImageRecord]) -> list[ImageRecord]:
    """A listing with each video once: a jsonl video's annotated frames become one record of the whole
    video (its id, and every concept its frames name), so that the index samples it once, at its rate."""
    listed: list[ImageRecord] = []
    position: dict[str, int] = {}
    for record in records:
        if record.frame_time_ms is None:
            listed.append(record)
            continue
        if record.uri not in position:
            position[record.uri] = len(listed)
            listed.append(replace(record, frame_time_ms=None, id=record.id.rpartition("@")[0], boxes=[],
                                  box_concepts=[], masks=[], mask_concepts=[]))
            continue
        first = listed[position[record.uri]]
        listed[position[record.uri]] = replace(first, concepts=list(dict.fromkeys(first.concepts + record.concepts)))
    return listed


def _nearest_annotation(annotated: list[ImageRecord], time_ms: int) -> ImageRecord:
    return min(annotated, key=lambda record: abs((record.frame_time_ms or 0) - time_ms))


def index_inputs(records: Sequence[ImageRecord], rate: float = DEFAULT_FRAME_RATE) -> Iterator[IndexInput]:
    """What an index embeds, in dataset order, decoded lazily: every image, and every video's frames at `rate`.

    A video listed with per-frame annotations is sampled once; each frame takes the concepts and boxes
    of the annotated frame nearest in time.
    """
    videos: dict[str, list[ImageRecord]] = {}
    for record in records:
        if record.frame_time_ms is not None or is_video(record.uri):
            videos.setdefault(record.uri, []).append(record)
    done = 0
    sampled: set[str] = set()
    for record in records:
        if record.uri not in videos:
            done += 1
            try:
                image = load_image(record.uri)
            except Exception as error:  # noqa: BLE001 (fsspec and PIL raise many kinds; all mean "cannot read it")
                raise WorkflowError(f"{record.uri}: cannot read an image ({error})") from error
            yield IndexInput(record, record.id, GraphInput(name=record.uri, image=image), records_done=done)
            continue
        done += 1
        if record.uri in sampled:  # a video with annotated frames: sampled once, with its first record
            continue
        sampled.add(record.uri)
        annotated = videos[record.uri]
        video_id = record.id.rpartition("@")[0] if record.frame_time_ms is not None else record.id
        try:
            with open_video(record.uri) as video:
                for frame in video.frames(rate):
                    source = _nearest_annotation(annotated, frame.time_offset_ms)
                    extra = {**frame.describe(), "at": format_offset(frame.time_offset_ms)}
                    yield IndexInput(source, f"{video_id}@{frame.time_offset_ms}",
                                     GraphInput(name=record.uri, image=frame.image), extra, records_done=done)
        except VideoError as error:
            raise WorkflowError(f"cannot index {error}") from error
        except FileNotFoundError as error:
            raise WorkflowError(f"{record.uri}: no such video; fix the dataset") from error

