"""Progress reaches the job's status subresource; failures end with the right exit code and message."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from deeptrain_api.trainer_contract import ExitCode
from deeptrain_trainer.data import DatasetError
from deeptrain_trainer.errors import ConfigError, OutputError, termination_for
from deeptrain_trainer.reporting import KubernetesReporter, Reporter, progress_payload


@pytest.fixture
def api_server():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "content_type": self.headers["Content-Type"], "body": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


def payload(step: int) -> dict:
    return progress_payload(epoch=2, epochs=4, step=step, steps=10, loss=0.5, items_per_second=100.0,
                            eta_seconds=30.0, last_eval={"accuracy": 0.75})


def test_progress_is_merge_patched_into_the_job_status(api_server):
    url, received = api_server
    reporter = KubernetesReporter(namespace="team-a", name="shoes", api_server=url, interval=3600)
    reporter.progress(payload(step=5))
    reporter.progress(payload(step=6))  # within the interval: throttled away
    reporter.progress(payload(step=10), force=True)  # epoch end: always sent
    reporter.close()
    # A newer update may replace one not yet sent; the throttled one is never sent.
    sent_steps = [r["body"]["status"]["progress"]["step"] for r in received]
    assert sent_steps in ([5, 10], [10])
    assert {r["path"] for r in received} == {"/apis/deeptrain.dev/v1alpha1/namespaces/team-a/deeptrainingjobs/shoes/status"}
    assert received[0]["content_type"] == "application/merge-patch+json"
    progress = received[-1]["body"]["status"]["progress"]
    assert progress["epoch"] == 2 and progress["step"] == 10 and progress["percent"] == 50.0
    assert progress["lastEval"] == {"accuracy": 0.75} and progress["etaSeconds"] == 30
    assert set(progress) >= {"epochs", "steps", "loss", "itemsPerSecond", "updatedAt"}


def test_unreachable_api_server_never_breaks_training():
    reporter = KubernetesReporter(namespace="ns", name="job", api_server="http://127.0.0.1:9", interval=0, timeout=1)
    reporter.progress(payload(step=1))
    reporter.close()  # no exception: the failure is logged


@pytest.mark.parametrize(("error", "reason", "code", "permanent"), [
    (DatasetError("/data/train.jsonl:3", "bad box", "fix it"), "InvalidDataset", ExitCode.INVALID_DATASET, True),
    (ConfigError("spec.hyperparameters.batch_size: ..."), "InvalidConfig", ExitCode.INVALID_CONFIG, True),
    (OutputError("cannot write"), "OutputError", ExitCode.OUTPUT_ERROR, True),
    (RuntimeError("NCCL timeout"), "Error", 1, False),
])
def test_failures_map_to_exit_codes_and_reasons(error, reason, code, permanent):
    message = termination_for(error)
    assert (message.reason, message.exitCode, message.permanent) == (reason, code, permanent)
    assert str(error).split(":")[0] in message.message


def test_invalid_config_file_exits_10_with_a_termination_message(tmp_path, monkeypatch):
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"modelType": "visual-classifier"}))
    termination = tmp_path / "termination-log"
    termination.touch()
    result = subprocess.run([sys.executable, "-m", "deeptrain_trainer", "--config", str(config)],
                            env={"DEEPTRAIN_TERMINATION_LOG": str(termination), "OMP_NUM_THREADS": "1",
                                 "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == ExitCode.INVALID_CONFIG, result.stderr
    message = json.loads(termination.read_text())
    assert message["reason"] == "InvalidConfig" and message["permanent"] and "job.json" in message["message"]


def test_help_describes_the_entry_point():
    result = subprocess.run([sys.executable, "-m", "deeptrain_trainer", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert "--config" in result.stdout and "DEEPTRAIN_CONFIG" in result.stdout


def test_a_progress_update_is_due_only_once_the_interval_has_passed(monkeypatch):
    from deeptrain_trainer import reporting

    now = [100.0]
    monkeypatch.setattr(reporting.time, "monotonic", lambda: now[0])
    reporter = Reporter(interval=5.0)
    assert reporter.due()
    reporter.progress(payload(step=1))
    now[0] += 4.9
    assert not reporter.due()  # the loop skips building a payload that would be dropped
    now[0] += 0.2
    assert reporter.due()
