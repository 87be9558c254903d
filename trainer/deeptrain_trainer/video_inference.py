"""Prediction on a video: one entry per sampled frame, and `--save` as an annotated video.

Frames are sampled as they are decoded (`data.video`) and predicted in batches, so memory holds
one batch of frames whatever the video's length. Each entry is the prediction an image would get,
plus the frame's "frameIndex" and "timeOffsetMs". The annotated video shows every sampled frame
for one sampling interval, with the boxes, masks or heatmap drawn on it and a caption (time, top
concept or score); it is H.264 in MP4.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from deeptrain_api import catalog

from .data.video import (
    DEFAULT_FRAME_RATE,
    Frame,
    VideoLimits,
    VideoSource,
    batched,
    format_offset,
    open_video,
)
from .data.video_writer import VideoWriter

if TYPE_CHECKING:
    from .inference import Predictor

# Annotated frames are scaled up to at least this short side, so captions stay readable.
ANNOTATED_MIN_SIDE = 256
BOX_COLOUR = (0, 255, 0)


def predict_video(predictor: Predictor, source: VideoSource, *, rate: float = DEFAULT_FRAME_RATE,
                  save_path: Path | None = None, limits: VideoLimits = VideoLimits()) -> dict[str, Any]:
    """{"input", "video": {size, codec, frameRate, durationMs}, "frames": [{frameIndex, timeOffsetMs, ...}],
    "saved" (with save_path)}."""
    from .inference import BATCH_SIZE, public

    entries: list[dict[str, Any]] = []
    writer = VideoWriter(save_path, rate) if save_path is not None else None
    try:
        with open_video(source, limits) as video:
            for frames in batched(video.frames(rate), BATCH_SIZE):
                raw = predictor.predict_raw([frame.image for frame in frames])
                for frame, result in zip(frames, raw, strict=True):
                    entries.append({**frame.describe(), **public(result)})
                    if writer is not None:
                        writer.write(annotate_frame(predictor, frame, result))
            info = video.info.describe()
    except BaseException:
        if writer is not None:  # no half-annotated video left behind
            writer.close().unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
    shown: dict[str, Any] = {"input": source.name, "video": info, "frames": entries}
    if save_path is not None:
        shown["saved"] = str(save_path)
    return shown


def annotate_frame(predictor: Predictor, frame: Frame, result: dict[str, Any]) -> Image.Image:
    """The frame as `--save` shows it for the model's type, with a caption."""
    model_type = predictor.spec.model_type
    image = frame.image
    scale = max(1.0, ANNOTATED_MIN_SIDE / min(image.size))
    if scale > 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    if model_type in (catalog.VISUAL_SEGMENTER, catalog.VISUAL_ANOMALY_HEATMAP):
        with tempfile.TemporaryDirectory(prefix="deeptrain-frame-") as scratch:
            saved = predictor.task.save_visualisation(image, result, predictor.model, None, predictor.spec,
                                                      Path(scratch) / "frame")
            if saved is not None:
                with Image.open(saved) as drawn:
                    overlay = drawn.convert("RGB").resize(image.size, Image.Resampling.NEAREST)
                # The segmenter draws its mask alone; the anomaly heatmap comes blended already.
                image = Image.blend(image, overlay, 0.5) if model_type == catalog.VISUAL_SEGMENTER else overlay
    draw = ImageDraw.Draw(image)
    for region in result.get("regions", []) if model_type == catalog.VISUAL_DETECTOR else ():
        box = region["box"]
        corners = (box["left_col"] * image.width, box["top_row"] * image.height,
                   box["right_col"] * image.width, box["bottom_row"] * image.height)
        draw.rectangle(corners, outline=BOX_COLOUR, width=2)
        draw.text((corners[0] + 2, corners[1] + 1), f"{region['concept']} {region['score']:.2f}", fill=BOX_COLOUR)
    draw.text((4, image.height - 14), _caption(frame, result), fill=(255, 255, 255), stroke_width=1,
              stroke_fill=(0, 0, 0))
    return image


def _caption(frame: Frame, result: dict[str, Any]) -> str:
    caption = format_offset(frame.time_offset_ms)
    if result.get("concepts"):
        top = result["concepts"][0]
        caption += f"  {top['id']} {top['value']:.2f}"
    elif "score" in result:
        caption += f"  anomaly {result['score']:.3f}"
    return caption
