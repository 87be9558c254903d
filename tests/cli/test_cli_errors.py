"""Every `deeptrain` command: one line naming the problem and the fix, its documented exit code, no traceback.

`predict` answers per input: an "error" entry for each bad one and predictions for the others.
The model is a small untrained classifier written the way the trainer writes one (no torchrun needed).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deeptrain_cli.errors import EXIT_INPUT, EXIT_INTERNAL
from deeptrain_cli.main import app

os.environ.setdefault("OMP_NUM_THREADS", "1")

JOB = """\
apiVersion: deeptrain.dev/v1alpha1
kind: DeepTrainingJob
metadata: {name: x}
spec:
  modelType: visual-classifier
  template: ResNext
  hyperparameters: {lrate: 0.01}
  dataset: {uri: file://data, format: imagefolder}
  output: {uri: file://out}
"""


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:") or ": " in line]
    assert len(result.output.strip().splitlines()) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deeptrain_api import catalog
    from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
    from deeptrain_trainer.artifacts import OutputDir, build_model_card, write_model
    from deeptrain_trainer.tasks import task_for
    from deeptrain_trainer.tasks.base import ModelSpec

    root = tmp_path_factory.mktemp("model")
    config = TrainerConfig(job=JobRef(name="x"), modelType=catalog.VISUAL_CLASSIFIER, template="ResNext",
                           templateScale=TemplateScale(width=0.25, depth=0.34),
                           hyperparameters=catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER, {"image_size": 32}),
                           dataset=DatasetConfig(uri="unused", format="imagefolder"), outputUri=root.as_uri())
    concepts = ["blue", "red"]
    task = task_for(config.modelType)
    spec = ModelSpec.from_config(config, concepts)
    card = build_model_card(config=config, concepts=concepts, input_spec=task.input_spec(spec, None), metrics={},
                            evaluation={}, inference={}, lineage={}, created="2026-01-01T00:00:00Z")
    write_model(OutputDir(config.outputUri), task.build_model(spec).state_dict(), card)
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    good = folder / "good.png"
    Image.fromarray(np.full((40, 40, 3), 200, dtype=np.uint8)).save(good)
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / "a-directory").mkdir()
    return {"good": good, "truncated": truncated, "empty": folder / "empty.png", "text": folder / "notes.txt",
            "directory": folder / "a-directory", "missing": folder / "missing.png", "huge": _huge_png(folder)}


def _huge_png(folder: Path) -> Path:
    """A 20000x20000 grey PNG header with its first rows: the pixel limit refuses it before any decoding."""
    side = 20000
    raw = zlib.compress((b"\0" + bytes(side)) * 64)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = folder / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_predict_answers_each_input_with_results_or_an_error(model_dir, inputs):
    names = ["good", "missing", "text", "truncated", "empty", "directory", "huge", "good"]
    result = invoke("predict", str(model_dir), *(str(inputs[name]) for name in names))
    assert result.exit_code == EXIT_INPUT, result.output
    assert "Traceback" not in result.output
    answers = json.loads(result.stdout)
    assert [answer["input"] for answer in answers] == [str(inputs[name]) for name in names]
    for name, answer in zip(names, answers, strict=True):
        if name == "good":
            assert "error" not in answer and answer["concepts"], answer
        else:
            assert answer["error"] and "concepts" not in answer, (name, answer)
    by_name = dict(zip(names, answers, strict=False))
    assert "not found" in by_name["missing"]["error"]
    assert "directory" in by_name["directory"]["error"]
    assert "pixels" in by_name["huge"]["error"]
    assert "6 of 8 inputs could not be predicted" in result.stderr


def test_predict_all_good_inputs_exit_zero(model_dir, inputs):
    result = invoke("predict", str(model_dir), str(inputs["good"]))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["concepts"]


@pytest.mark.parametrize("case", ["missing-dir", "no-card"])
def test_predict_with_a_model_dir_that_is_not_a_model(case, tmp_path, inputs):
    model = tmp_path / "nowhere"
    if case == "no-card":
        model.mkdir()
        (model / "model.safetensors").write_bytes(b"")
    result = invoke("predict", str(model), str(inputs["good"]))
    assert result.exit_code == EXIT_INPUT
    line = one_error_line(result)
    assert str(model) in line and ("not found" if case == "missing-dir" else "model.json") in line
    assert "give the" in line  # the fix


def test_predict_save_pointing_at_a_file(model_dir, inputs, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("")
    result = invoke("predict", str(model_dir), str(inputs["good"]), "--save", str(target))
    assert result.exit_code == EXIT_INPUT
    assert "--save" in one_error_line(result) and "give a directory" in result.output


def test_validate_a_binary_file(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    result = invoke("validate", str(binary))
    assert result.exit_code == EXIT_INPUT
    assert "not UTF-8 text" in one_error_line(result)


def test_run_with_a_missing_manifest(tmp_path):
    result = invoke("run", str(tmp_path / "job.yaml"))
    assert result.exit_code == EXIT_INPUT
    assert "check the path" in one_error_line(result)


def test_data_make_with_an_unknown_name(tmp_path):
    result = invoke("data", "make", "no-such-dataset", "-o", str(tmp_path / "out"))
    assert result.exit_code == EXIT_INPUT
    assert "choose one of: digits" in one_error_line(result)


def test_workflow_commands_with_a_missing_manifest(tmp_path):
    for args in (["workflow", "run", str(tmp_path / "w.yaml"), "x.png"], ["index", str(tmp_path / "w.yaml")],
                 ["search", "x.png", "--workflow", str(tmp_path / "w.yaml"), "--index", str(tmp_path)]):
        result = invoke(*args)
        assert result.exit_code == EXIT_INPUT, (args, result.output)
        assert one_error_line(result).startswith("error:")


def test_usage_errors_are_the_parsers_with_exit_code_2():
    for args in (["no-such-command"], ["predict"], ["validate", "--no-such-option", "x.yaml"]):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "unexpected" not in result.output


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch):
    import deeptrain_cli.reference as reference

    def broken() -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(reference, "catalog_markdown", broken)
    result = invoke("catalog")
    assert result.exit_code == EXIT_INTERNAL
    assert "unexpected RuntimeError: boom" in one_error_line(result) and "--debug" in result.output
    debug = invoke("--debug", "catalog")
    assert isinstance(debug.exception, RuntimeError)


def test_the_installed_command_prints_no_traceback(tmp_path):
    """The real entry point (not the test runner): stderr is the one line, the exit code the documented one."""
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB.replace("lrate: 0.01", "lrate: .nan"))
    finished = subprocess.run([sys.executable, "-m", "deeptrain_cli.main", "validate", str(manifest)],
                              capture_output=True, text=True, timeout=60)
    assert finished.returncode == EXIT_INPUT
    assert finished.stderr.strip() == f"{manifest}: spec.hyperparameters.lrate: nan is not a number; give a finite number"
