"""Videos in a training dataset -> one record per sampled frame, and the pixels of a frame record.

Readers list a video as one record (imagefolder: a video file in a concept's folder; jsonl: a
"video" line without "frames"). `expand_videos` opens each such video once (its header, no
decoding) and replaces the record by frame records at spec.dataset.videoFrameRate, each with the
video's concepts. Frame records a jsonl file annotates itself are kept as they are. A video that
cannot be opened is dropped and counted with the undecodable images.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from .errors import DatasetError
from .images import HEADER_CHECK_THREADS, ImageLoadStats
from .records import ImageRecord, Record
from .video import VideoError, is_video, open_video, sample_times_ms


def video_of(record: Record) -> str | None:
    """The video a record's pixels come from; None for images and texts."""
    if isinstance(record, ImageRecord) and (record.frame_time_ms is not None or is_video(record.uri)):
        return record.uri
    return None


def _pending(record: Record) -> bool:
    return isinstance(record, ImageRecord) and record.frame_time_ms is None and is_video(record.uri)


def _frame_times(record: ImageRecord, rate: float) -> list[int] | str:
    """The sampled times, or why the video cannot be read. A missing file is an error."""
    try:
        with open_video(record.uri) as video:
            return sample_times_ms(video.info, rate)
    except FileNotFoundError:
        raise DatasetError(record.source or record.uri, f"video {record.uri} not found",
                           "fix the path (relative paths start at the annotation file's folder) or remove the entry") from None
    except VideoError as error:
        return error.problem


def expand_videos(records: Sequence[Record], rate: float) -> tuple[list[Record], ImageLoadStats]:
    """Records with every whole video replaced by its frames; the stats count the videos dropped."""
    pending = [record for record in records if _pending(record)]
    with ThreadPoolExecutor(max_workers=HEADER_CHECK_THREADS) as pool:
        times = dict(zip((id(r) for r in pending), pool.map(lambda r: _frame_times(r, rate), pending), strict=True))
    stats = ImageLoadStats()
    expanded: list[Record] = []
    for record in records:
        if not _pending(record):
            expanded.append(record)
            continue
        assert isinstance(record, ImageRecord)
        found = times[id(record)]
        if isinstance(found, str):
            stats.record_skipped(record.uri, found)
            continue
        expanded.extend(replace(record, frame_time_ms=time_ms, id=f"{record.id}@{time_ms}") for time_ms in found)
    return expanded, stats
