"""Scenario 7 (trainer side): corrupt, truncated and mislabeled dataset files.

No cluster needed: the trainer runs as `deeptrain run` runs it (launcher.run_local: torchrun with 2
processes and up to 3 restarts of a failed gang), in a subprocess bounded by a timeout.
Bar: a dataset beyond repair ends the run with exit code 11 and an InvalidDataset message naming the
offending file (and line) after a single attempt - a permanent error is never restarted; a few
broken images within spec.dataset.invalidDataTolerancePercent are skipped (counted in the model
card) or replaced when they fail to decode late, and training finishes. Never a hang (timeout).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deeptrain_api.trainer_contract import TrainerConfig

pytestmark = pytest.mark.faults

RUN_TIMEOUT_SECONDS = 300
RUN_LOCAL = ("import sys; from pathlib import Path; from deeptrain_api.trainer_contract import load_config; "
             "from deeptrain_trainer.launcher import run_local; "
             "sys.exit(run_local(load_config(Path(sys.argv[1]).read_text()), 2))")


def run_trainer(config: TrainerConfig, work: Path) -> tuple[int, str]:
    """Exit code and output of one `deeptrain run` of `config`."""
    config_path = work / "config.json"
    config_path.write_text(config.model_dump_json())
    env = {"OMP_NUM_THREADS": "1", "DEEPTRAIN_REPORT": "none", "COLUMNS": "400"}
    try:
        finished = subprocess.run([sys.executable, "-c", RUN_LOCAL, str(config_path)], capture_output=True,
                                  text=True, timeout=RUN_TIMEOUT_SECONDS, env={**_inherited(), **env})
    except subprocess.TimeoutExpired:
        pytest.fail(f"the trainer hung: no exit within {RUN_TIMEOUT_SECONDS}s", pytrace=False)
    return finished.returncode, finished.stdout + finished.stderr


def _inherited() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("DEEPTRAIN_")}


def attempts(log: str) -> int:
    """How many times the gang ran: `deeptrain run` announces each restart."""
    return 1 + log.count("restarting the training processes")


def failure_line(log: str) -> str:
    """What `deeptrain run` says when training fails: "training failed: REASON: MESSAGE", one line, then
    where torchrun's log (and its traceback) is; torchrun's traceback itself stays off the terminal."""
    marker = "training failed: InvalidDataset:"
    assert marker in log, log[-4000:]
    assert "Traceback" not in log and "ChildFailedError" not in log, log[-4000:]
    line = log[log.rindex(marker):].splitlines()[0]
    assert log.count(marker) == 1
    assert "torchrun's log (with its traceback): " in log
    return line


def copy_dataset(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def small(trainer_config, output: Path, dataset: Path, **overrides) -> TrainerConfig:
    settings = {"batch_size": 8, "image_size": 32, "num_epochs": 1, "lrate": 0.02, "num_items_per_epoch": 16}
    return trainer_config(output, dataset, **{**settings, **overrides})


def test_corrupt_images_beyond_the_tolerance_fail_permanently_naming_them(colour_squares, trainer_config, tmp_path):
    dataset = copy_dataset(colour_squares, tmp_path / "data")
    corrupt = sorted((dataset / "red").glob("*.png"))[:6]  # 6 of 48: 12.5%, over the default 5%
    for path in corrupt:
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    code, log = run_trainer(small(trainer_config, tmp_path / "model", dataset), tmp_path)
    assert code == 11, log[-4000:]
    failure = failure_line(log)
    assert any(path.name in failure for path in corrupt) and "tolerated" in failure, failure
    assert attempts(log) == 1, log[-4000:]


def test_a_few_broken_images_are_skipped_within_the_tolerance(colour_squares, trainer_config, tmp_path):
    dataset = copy_dataset(colour_squares, tmp_path / "data")
    blue = sorted((dataset / "blue").glob("*.png"))
    blue[0].write_bytes(b"not an image at all")  # 1 of 48: 2%, under the default 5%; dropped up front
    blue[1].write_bytes(blue[1].read_bytes()[:60])  # header intact, pixels cut off: replaced when loaded
    config = small(trainer_config, tmp_path / "model", dataset, num_items_per_epoch=0)  # every image is read
    code, log = run_trainer(config, tmp_path)
    assert code == 0, log[-4000:]
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["dataset"]["skipped"] == 1, card["dataset"]
    assert (tmp_path / "model" / "model.safetensors").exists()


@pytest.mark.parametrize(("bad_line", "complaint"), [
    ({"image": "red/00.png", "concepts": [{"value": 1}]}, '"id"'),
    ({"image": "red/does-not-exist.png", "concepts": [{"id": "red"}]}, "not found"),
    ("{\"image\": \"red/01.png\", \"concepts\": [", "not valid JSON"),
], ids=["label-without-a-concept", "label-for-a-missing-image", "torn-line"])
def test_a_mislabeled_annotation_file_fails_permanently_naming_file_and_line(
        bad_line, complaint, colour_squares, trainer_config, tmp_path):
    lines = [json.dumps({"image": f"{concept}/{index:02d}.png", "concepts": [{"id": concept}]})
             for concept in ("red", "blue") for index in range(24)]
    lines.insert(10, bad_line if isinstance(bad_line, str) else json.dumps(bad_line))
    annotations = copy_dataset(colour_squares, tmp_path / "data") / "annotations.jsonl"
    annotations.write_text("\n".join(lines) + "\n")
    config = small(trainer_config, tmp_path / "model", annotations, dataset_format="jsonl")
    # One malformed line of 49 is within the default tolerance (skipped and counted); none is tolerated here.
    config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"invalid_data_tolerance_percent": 0})})
    code, log = run_trainer(config, tmp_path)
    assert code == 11, log[-4000:]
    failure = failure_line(log)
    assert f"{annotations.name}:11" in failure and complaint in failure, failure
    assert attempts(log) == 1, log[-4000:]
