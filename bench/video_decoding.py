"""Video: our decode + sample (data.video) against raw PyAV decoding of the same file, and predict on video.

Arms, alternated round by round on the same H.264/MP4 file:
- ours, 1 fps          sample_frames(path, 1): decode every frame, convert the sampled ones to RGB
- ours, every frame    sample_frames(path, fps): every frame converted to RGB (the costliest rate)
- raw PyAV             container.decode(video=0), nothing else, with the same decoder threading as ours
- raw PyAV, defaults   the same with PyAV's default threading (what a plain loop gets)

All four decode every frame of the file (sampling cannot skip decoding: inter frames need their
references), so frames/s is source frames decoded per second. Goal: ours at 1 fps >= 0.9 of raw
PyAV with the same threading.

Predict throughput: `Predictor.predict` on the video (decode + sample + model) in sampled frames/s,
against the same model on the same frames already decoded in memory (the model alone).

    .venv/bin/python bench/video_decoding.py
    .venv/bin/python bench/video_decoding.py --seconds 120 --width 1280 --height 720 --rounds 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH_DIR,
    Comparison,
    add_common_arguments,
    alternate,
    comparison_table,
    fmt,
    median,
    pin_threads,
    print_table,
    simple_table,
    write_results,
)

pin_threads()

GOAL = 0.9
CACHE_DIR = BENCH_DIR / ".cache"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_rounds=5)
    parser.add_argument("--seconds", type=int, default=60, help="length of the test video (default 60)")
    parser.add_argument("--fps", type=int, default=25, help="its frame rate (default 25)")
    parser.add_argument("--width", type=int, default=640, help="its width (default 640)")
    parser.add_argument("--height", type=int, default=360, help="its height (default 360)")
    parser.add_argument("--rate", type=float, default=1.0, help="sampling rate of the main arm (default 1 frame/s)")
    parser.add_argument("--image-size", type=int, default=64, help="the predicting model's image_size (default 64)")
    return parser.parse_args(argv)


def test_video(seconds: int, fps: int, width: int, height: int) -> Path:
    """A moving, textured H.264/MP4 clip (made once and cached): shapes sliding over a gradient with grain."""
    import numpy as np

    from deeptrain_trainer.data.video_writer import VideoWriter

    path = CACHE_DIR / f"video-{seconds}s-{fps}fps-{width}x{height}.mp4"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    partial = path.with_suffix(".partial.mp4")
    with VideoWriter(partial, fps, options={"preset": "veryfast", "crf": "23"}) as writer:
        for index in range(seconds * fps):
            phase = index / fps
            pixels = np.stack([(xs + 40 * phase) % 256, (ys + 25 * phase) % 256,
                               128 + 100 * np.sin((xs + ys) / 40 + phase)], axis=-1)
            for k in range(4):
                cx = (width * (0.2 + 0.2 * k) + 60 * np.sin(phase + k)) % width
                cy = (height * 0.5 + 80 * np.cos(0.7 * phase + k)) % height
                pixels[(xs - cx) ** 2 + (ys - cy) ** 2 < 900] = (255, 255 - 60 * k, 60 * k)
            pixels += rng.normal(0, 4, size=pixels.shape)
            writer.write(pixels.clip(0, 255).astype(np.uint8))
    partial.rename(path)
    return path


def ours(path: Path, rate: float, frames: int) -> float:
    from deeptrain_trainer.data.video import sample_frames  # imported (with torch) by main, before any timing

    started = time.perf_counter()
    for _ in sample_frames(str(path), rate):
        pass
    return frames / (time.perf_counter() - started)


def raw_pyav(path: Path, frames: int, *, same_threading: bool) -> float:
    import av

    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if same_threading:
            stream.thread_type = "AUTO"
        decoded = sum(1 for _ in container.decode(stream))
    elapsed = time.perf_counter() - started
    assert decoded == frames, f"raw PyAV decoded {decoded} frames, expected {frames}"
    return frames / elapsed


def untrained_classifier(image_size: int) -> Path:
    """A visual-classifier model directory with fresh weights: throughput does not depend on training."""
    import torch

    from deeptrain_api import catalog
    from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
    from deeptrain_trainer.artifacts import OutputDir, build_model_card, write_model
    from deeptrain_trainer.tasks import task_for
    from deeptrain_trainer.tasks.base import ModelSpec

    output = CACHE_DIR / f"video-classifier-{image_size}"
    if (output / "model.json").exists():
        return output
    concepts = ["a", "b", "c"]
    config = TrainerConfig(job=JobRef(name="bench"), modelType=catalog.VISUAL_CLASSIFIER, template="ResNext",
                           templateScale=TemplateScale(width=0.25, depth=0.34),
                           hyperparameters=catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER,
                                                                           {"image_size": image_size}),
                           dataset=DatasetConfig(uri="unused", format="imagefolder"), outputUri=output.as_uri())
    task = task_for(catalog.VISUAL_CLASSIFIER)
    spec = ModelSpec.from_config(config, concepts)
    torch.manual_seed(0)
    model = task.build_model(spec)
    card = build_model_card(config=config, concepts=concepts, input_spec=task.input_spec(spec, None), metrics={},
                            evaluation={}, inference={}, lineage={}, created="2024-01-01T00:00:00Z")
    write_model(OutputDir(output.as_uri()), model.state_dict(), card)
    return output


def predict_video(predictor: Any, path: Path, rate: float) -> float:
    started = time.perf_counter()
    [entry] = predictor.predict([str(path)], video_frame_rate=rate)
    return len(entry["frames"]) / (time.perf_counter() - started)


def predict_decoded(predictor: Any, images: list[Any]) -> float:
    started = time.perf_counter()
    predictor.predict_images(images)
    return len(images) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from deeptrain_trainer.data.video import sample_frames
    from deeptrain_trainer.inference import load_model

    torch.set_num_threads(1)
    path = test_video(args.seconds, args.fps, args.width, args.height)
    frames = args.seconds * args.fps
    label = f"{args.width}x{args.height} H.264, {args.seconds} s at {args.fps} fps ({frames} frames)"
    arms = {
        f"ours {args.rate:g} fps": lambda r: ours(path, args.rate, frames),
        "ours every frame": lambda r: ours(path, float(args.fps), frames),
        "raw PyAV": lambda r: raw_pyav(path, frames, same_threading=True),
        "raw PyAV defaults": lambda r: raw_pyav(path, frames, same_threading=False),
    }
    runs = alternate(arms, args.rounds,
                     on_result=lambda arm, r, value: print(f"round {r + 1} {arm}: {fmt(value)} frames/s", flush=True))
    decoding = [Comparison(case=f"{label}, {arm}", unit="frames/s", ours=runs[arm], baseline=runs["raw PyAV"],
                           goal=GOAL if arm.endswith(f"{args.rate:g} fps") else None)
                for arm in (f"ours {args.rate:g} fps", "ours every frame", "raw PyAV defaults")]
    print_table(comparison_table("decoded + sampled frames/s against raw PyAV decoding of the same file",
                                 decoding, "arm", "raw PyAV (same threading)"))

    predictor = load_model(untrained_classifier(args.image_size))
    decoded = [frame.image for frame in sample_frames(str(path), args.rate)]
    predict_runs = alternate({"predict on the video": lambda r: predict_video(predictor, path, args.rate),
                              "model on decoded frames": lambda r: predict_decoded(predictor, decoded)}, args.rounds)
    predicting = Comparison(case=f"{label}, {args.rate:g} fps, ResNext 0.25/0.34 at {args.image_size} px",
                            unit="frames/s", ours=predict_runs["predict on the video"],
                            baseline=predict_runs["model on decoded frames"])
    print_table(simple_table("predict throughput on video (sampled frames predicted per second)",
                             ["case", "predict on the video", "model alone, frames in memory", "ratio"],
                             [(predicting.case, f"{fmt(median(predicting.ours))}/s",
                               f"{fmt(median(predicting.baseline))}/s", f"{predicting.ratio:.3f}")]))
    output = write_results("video_decoding", {
        "goal": f"ours at {args.rate:g} fps / raw PyAV (same threading) frames/s >= {GOAL}",
        "settings": {key: value for key, value in vars(args).items() if key != "output"},
        "comparisons": [c.as_dict() for c in decoding], "predict": predicting.as_dict()}, args.output)
    print(f"results: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
