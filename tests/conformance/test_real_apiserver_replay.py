"""Every exchange recorded from a real kube-apiserver v1.36, replayed in order against the fake API server.

The recording (`real-apiserver-v1.36.jsonl`, one request and the real server's answer per line) was
made against this project's CRDs, `tests/manifests/` and `examples/`. Each request is sent again as
recorded, except where it stands for a project file: the admission exchanges send the manifest as it
is now, and the two exchanges that install the project's CRDs send `crds/` as it is now. The fake
must give the real server's HTTP status, `reason` and `details.causes` field paths every time, and
its messages (and, for custom resources, the returned spec, status and deletion state) wherever the
project's files have not changed the answer since the recording. Where they have, the exchange is
listed in CHANGED_SINCE_RECORDING with the reason. A second replay sends every body exactly as
recorded: then every answer must be the real server's, with no exception.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakekube import FakeKubeServer

REPO = Path(__file__).resolve().parents[2]
RECORDING = Path(__file__).parent / "real-apiserver-v1.36.jsonl"
SHARED_RECORDING = REPO / ".." / "shared" / "kube-conformance" / "real-apiserver-v1.36.jsonl"
NAMESPACE = "conformance"
PROJECT_CRDS = {
    "crd: DeepTrainingJob (root fieldPath dropped)": REPO / "crds" / "deeptrain.dev_deeptrainingjobs.yaml",
    "crd: Workflow (root fieldPath dropped)": REPO / "crds" / "deeptrain.dev_workflows.yaml",
}


@dataclass(frozen=True)
class Now:
    """The answer now, where the project's files changed its status since the recording."""

    status: int
    reason: str | None = None
    cause_fields: tuple[str, ...] = ()


_HYPERPARAMETERS_KEPT = ("spec.hyperparameters keeps unknown keys now (x-kubernetes-preserve-unknown-fields), so "
                         "that the operator fails the job with InvalidSpec naming the key; the recorded CRD pruned "
                         "learning_rate from the returned spec")

_GRADIENT_CLIP_DEFAULTED = ("the CRD now defaults spec.hyperparameters.gradient_clip_norm (10), which every "
                            "returned DeepTrainingJob carries")

# name -> (why the answer changed, the status now where that changed too). Messages and returned bodies
# of these exchanges are not compared; status, reason and cause fields always are.
CHANGED_SINCE_RECORDING: dict[str, tuple[str, Now | None]] = {
    "crd: DeepTrainingJob (root fieldPath dropped)": (
        "crds/ now carries the mend the recording made by hand (the job-name rule without fieldPath), with the "
        "rule's message naming metadata.name, and spec.hyperparameters preserving unknown keys", None),
    "crd: Workflow (root fieldPath dropped)": (
        "crds/ now carries the mend the recording made by hand, and the Workflow gained spec.serve.auth "
        "(bearer tokens from a Secret)", None),
    "admission: examples/workflow.yaml": (
        "the example now sets spec.serve.auth, which the returned object carries", None),
    "admission: tests/manifests/invalid/name-too-long.yaml": (
        "the job-name rule's message now starts with the field it is about (metadata.name), because the "
        "apiserver reports a root rule at <nil>", None),
    "admission: tests/manifests/invalid/unknown-hyperparameter.yaml": (_HYPERPARAMETERS_KEPT, None),
    "admission with fieldValidation=Warn: tests/manifests/invalid/unknown-hyperparameter.yaml": (
        _HYPERPARAMETERS_KEPT, None),
    "admission with fieldValidation=Ignore: tests/manifests/invalid/unknown-hyperparameter.yaml": (
        _HYPERPARAMETERS_KEPT, None),
    "admission with fieldValidation=Strict: tests/manifests/invalid/unknown-hyperparameter.yaml": (
        "a field kept by x-kubernetes-preserve-unknown-fields is not unknown to strict decoding: kubectl's "
        "Strict apply admits the job now, and the operator fails it with InvalidSpec naming the key",
        Now(status=201)),
    "admission: examples/text-classifier.yaml": (_GRADIENT_CLIP_DEFAULTED, None),
    "admission: examples/visual-anomaly-heatmap.yaml": (_GRADIENT_CLIP_DEFAULTED, None),
    "admission: examples/visual-classifier.yaml": (_GRADIENT_CLIP_DEFAULTED, None),
    "admission: examples/visual-detector.yaml": (_GRADIENT_CLIP_DEFAULTED, None),
    "admission: examples/visual-embedder.yaml": (_GRADIENT_CLIP_DEFAULTED, None),
    "admission: examples/visual-segmenter.yaml": (_GRADIENT_CLIP_DEFAULTED, None),
    "create a job (defaults filled in the response)": (_GRADIENT_CLIP_DEFAULTED, None),
    "status written through the main resource is ignored": (_GRADIENT_CLIP_DEFAULTED, None),
    "status merge patch through the status subresource": (_GRADIENT_CLIP_DEFAULTED, None),
    "status field the schema lacks is pruned": (_GRADIENT_CLIP_DEFAULTED, None),
    "get": (_GRADIENT_CLIP_DEFAULTED, None),
    "list of custom resources": (_GRADIENT_CLIP_DEFAULTED, None),
    "delete with foreground propagation": (_GRADIENT_CLIP_DEFAULTED, None),
}


def exchanges() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RECORDING.read_text().splitlines() if line.strip()]


def body_to_send(exchange: dict[str, Any]) -> Any:
    """The request body: the project file an exchange stands for, as it is now, else the recorded body."""
    name = exchange["name"]
    if name in PROJECT_CRDS:
        return yaml.safe_load(PROJECT_CRDS[name].read_text())
    if name.startswith("admission"):
        manifest = yaml.safe_load((REPO / name.split(": ", 1)[1]).read_text())
        manifest["metadata"]["namespace"] = NAMESPACE
        return manifest
    return exchange["body"]


def send(server: FakeKubeServer, exchange: dict[str, Any], body: Any) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + exchange["path"], data=data, method=exchange["method"],
                                     headers={"Content-Type": exchange["contentType"]})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    # A watch answers a stream of events; the recording holds its first one.
    first = text.strip().splitlines()[0] if text.strip() else "null"
    return status, json.loads(first)


def answer(status: int, body: Any) -> dict[str, Any]:
    """What a client depends on: status, reason, the causes' fields (sorted), and the message."""
    body = body if isinstance(body, dict) else {}
    if body.get("type") == "ERROR":  # a watch event; its message quotes resourceVersions, which are volatile
        event = body["object"]
        return {"status": status, "reason": event.get("reason"), "code": event.get("code"), "cause_fields": []}
    if body.get("kind") == "Status":
        causes = (body.get("details") or {}).get("causes") or []
        return {"status": status, "reason": body.get("reason"),
                "cause_fields": sorted(cause.get("field", "") for cause in causes), "message": body.get("message")}
    return {"status": status, "reason": None, "cause_fields": []}


def returned_object(body: Any) -> dict[str, Any] | None:
    """The parts of a returned custom resource that do not vary between servers."""
    if not isinstance(body, dict) or not str(body.get("apiVersion", "")).startswith("deeptrain.dev/"):
        return None
    if body.get("kind", "").endswith("List"):
        return {"kind": body["kind"], "items": [returned_object(item) for item in body.get("items", [])]}
    meta = body.get("metadata") or {}
    return {"spec": body.get("spec"), "status": body.get("status"), "finalizers": meta.get("finalizers"),
            "deleting": "deletionTimestamp" in meta}


def typed_items(body: Any) -> set[tuple[bool, bool]]:
    """For a list: whether its items carry apiVersion and kind (built-in kinds' items do not)."""
    items = body.get("items") if isinstance(body, dict) else None
    return {("apiVersion" in item, "kind" in item) for item in items or []}


Replayed = list[tuple[dict[str, Any], Any, int, Any]]


def replay(body_for: Callable[[dict[str, Any]], Any]) -> Replayed:
    """Each exchange with the body sent and the fake's status and body, from one fresh fake, in order."""
    results = []
    with FakeKubeServer() as server:
        for exchange in exchanges():
            body = body_for(exchange)
            status, response = send(server, exchange, body)
            results.append((exchange, body, status, response))
            if exchange["name"].startswith("crd variant") and status == 201:
                # The recording removed each admitted variant before creating the next under the same
                # name (exchanges 2, 3, 10 and 13 are all 201 for variants.deeptrain.dev).
                remove(server, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{body['metadata']['name']}")
    return results


@pytest.fixture(scope="module")
def replayed() -> Replayed:
    return replay(body_to_send)


def differences_from_the_recording(results: Replayed, exempt: Collection[str] = ()) -> list[str]:
    """Messages, returned custom resources and list item shapes that differ from the real server's."""
    differences = []
    for exchange, _, status, response in results:
        if exchange["name"] in exempt:
            continue
        expected, got = answer(exchange["status"], exchange["response"]), answer(status, response)
        if got != expected:
            differences.append(f"{exchange['name']}:\n  real: {expected}\n  fake: {got}")
        if returned_object(response) != returned_object(exchange["response"]):
            differences.append(f"{exchange['name']}:\n  real: {returned_object(exchange['response'])}\n"
                               f"  fake: {returned_object(response)}")
        if typed_items(response) and typed_items(response) != typed_items(exchange["response"]):
            differences.append(f"{exchange['name']}: list items carry apiVersion/kind {typed_items(response)}, "
                               f"the real server's {typed_items(exchange['response'])}")
    return differences


def remove(server: FakeKubeServer, path: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(server.url + path, method="DELETE"), timeout=30):
        pass


def test_the_recording_holds_66_exchanges_with_unique_names() -> None:
    names = [exchange["name"] for exchange in exchanges()]
    assert len(names) == 66 and len(set(names)) == 66
    assert set(CHANGED_SINCE_RECORDING) <= set(names), set(CHANGED_SINCE_RECORDING) - set(names)


def test_the_in_repo_copy_is_the_shared_recording() -> None:
    if not SHARED_RECORDING.exists():
        pytest.skip(f"no shared recording at {SHARED_RECORDING} (a clean clone has only the in-repo copy)")
    assert RECORDING.read_bytes() == SHARED_RECORDING.read_bytes()


def test_every_exchange_gets_the_real_servers_status_reason_and_cause_fields(replayed: Replayed) -> None:
    differences = []
    for exchange, _, status, response in replayed:
        expected = answer(exchange["status"], exchange["response"])
        _, now = CHANGED_SINCE_RECORDING.get(exchange["name"], ("", None))
        if now is not None:
            expected = {**expected, "status": now.status, "reason": now.reason,
                        "cause_fields": sorted(now.cause_fields), "message": None}
        got = answer(status, response)
        keys = ("status", "reason", "code", "cause_fields")
        if any(got.get(key) != expected.get(key) for key in keys):
            differences.append(f"{exchange['name']}:\n  real: {[expected.get(k) for k in keys]}\n"
                               f"  fake: {[got.get(k) for k in keys]}  {got.get('message')}")
    assert not differences, "\n".join(differences)


def test_unchanged_exchanges_get_the_real_servers_messages_and_objects(replayed: Replayed) -> None:
    for exchange, body, _, _ in replayed:
        assert exchange["name"] in CHANGED_SINCE_RECORDING or body == exchange["body"], (
            f"{exchange['name']}: the project file changed since the recording; if the answer changed too, "
            "list the exchange in CHANGED_SINCE_RECORDING with the reason")
    differences = differences_from_the_recording(replayed, exempt=CHANGED_SINCE_RECORDING)
    assert not differences, "\n".join(differences)


def test_the_requests_as_recorded_get_every_answer_as_recorded() -> None:
    """With the bodies exactly as sent that day (the project's files as they were), nothing is exempt."""
    differences = differences_from_the_recording(replay(lambda exchange: exchange["body"]))
    assert not differences, "\n".join(differences)


def test_listed_exchanges_did_change(replayed: Replayed) -> None:
    """The list stays honest: an exchange whose request and answer are as recorded does not belong on it."""
    stale = []
    for exchange, body, status, response in replayed:
        if exchange["name"] not in CHANGED_SINCE_RECORDING:
            continue
        same_answer = answer(status, response) == answer(exchange["status"], exchange["response"])
        same_object = returned_object(response) == returned_object(exchange["response"])
        if body == exchange["body"] and same_answer and same_object:
            stale.append(exchange["name"])
    assert not stale, f"answered as recorded now; remove from CHANGED_SINCE_RECORDING: {stale}"
