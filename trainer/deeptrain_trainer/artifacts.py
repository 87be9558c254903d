"""Where the trainer writes: the output location, the weights file, the model card, the metrics history.

Every file is written to a local directory with ordinary file operations (atomic renames,
fsync, TensorBoard's own writer). When `outputUri` names an object store or any other fsspec
URL, that local directory is a staging area: `pull` fetches what a previous attempt left (the
checkpoints) and `push` uploads after each checkpoint and at the end.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from deeptrain_api.trainer_contract import MODEL_CARD, MODEL_FORMAT, MODEL_WEIGHTS, ModelSummary
from deeptrain_api.volumes import FILE_SCHEME, file_uri_path

from .errors import OutputError
from .metrics.definitions import definitions_of

MODEL_CARD_API_VERSION = "deeptrain.dev/v1alpha1"
MODEL_CARD_KIND = "ModelCard"

# OS errors that retrying the pod cannot fix.
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def local_path_of(uri: str) -> Path | None:
    """The local directory a file:// URI or a bare path names (relative to the working directory); None for remote URLs."""
    if uri.startswith(FILE_SCHEME):
        return Path(file_uri_path(uri)).absolute()
    if "://" not in uri:
        return Path(uri).absolute()
    return None


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn full disks and missing permissions into OutputError, naming the path."""
    try:
        yield
    except Exception as error:
        # Writers in C++ (torch.save's zip writer) report a failed write as a RuntimeError raised while
        # the OSError is handled: look for the OSError along the chain.
        cause = _permanent_os_error(error)
        if cause is not None:
            raise OutputError(f"cannot write {path}: {os.strerror(cause.errno)}; "
                              "check the free space and permissions of spec.output.uri") from error
        raise


def _permanent_os_error(error: BaseException | None) -> OSError | None:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in _PERMANENT_ERRNOS:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class OutputDir:
    """The job's output location as a local directory, mirrored to a remote fsspec URL when it is one."""

    def __init__(self, uri: str, *, staging_root: Path | None = None):
        self.uri = uri
        local = local_path_of(uri)
        if local is not None:
            self.root = local
            self._remote = None
        else:
            import fsspec

            fs, remote_root = fsspec.core.url_to_fs(uri)
            self._remote = (fs, remote_root.rstrip("/"))
            digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
            self.root = (staging_root or Path(tempfile.gettempdir())) / f"deeptrain-output-{digest}"
        with writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)

    @property
    def is_remote(self) -> bool:
        return self._remote is not None

    def path(self, relative: str) -> Path:
        return self.root / relative

    def pull(self, relative: str) -> None:
        """Fetch a file or folder from the remote location when it exists there."""
        if self._remote is None:
            return
        fs, remote_root = self._remote
        source = f"{remote_root}/{relative}"
        if fs.exists(source):
            target = self.path(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get(source, str(target), recursive=fs.isdir(source))

    def push(self, *relatives: str) -> None:
        """Upload the given files/folders (everything when none are named) to the remote location."""
        if self._remote is None:
            return
        fs, remote_root = self._remote
        names = relatives or tuple(p.name for p in self.root.iterdir())
        for relative in names:
            source = self.path(relative)
            if not source.exists():
                continue
            try:
                if source.is_dir():
                    for file in source.rglob("*"):
                        if file.is_file():
                            fs.put_file(str(file), f"{remote_root}/{file.relative_to(self.root).as_posix()}")
                else:
                    fs.put_file(str(source), f"{remote_root}/{relative}")
            except PermissionError as error:
                raise OutputError(f"cannot upload {relative} to {self.uri}: {error}") from error


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_weights(path: Path, state_dict: Mapping[str, torch.Tensor]) -> str:
    """Save every tensor of the state dict (parameters and buffers); returns "sha256:<hex>" of the file."""
    # Cloning breaks storage sharing, which safetensors refuses, and moves the tensors to the CPU.
    tensors = {name: tensor.detach().to("cpu").clone().contiguous() for name, tensor in state_dict.items()}
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
    return "sha256:" + sha256_file(path)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)


def version_of(checksum: str) -> str:
    return checksum.removeprefix("sha256:")[:12]


def read_model_card(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / MODEL_CARD).read_text())


def weights_path(model_dir: Path) -> Path:
    return model_dir / MODEL_WEIGHTS


class MetricsHistory:
    """metrics.jsonl: one JSON line per epoch (with the evaluation when one ran)."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: Mapping[str, Any]) -> None:
        with writing(self.path), open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, global_step: int) -> list[dict[str, Any]]:
        """Drop lines an interrupted attempt wrote after its last checkpoint; returns the kept ones."""
        kept = [record for record in self.records() if record.get("step", 0) <= global_step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with writing(self.path):
            tmp.write_text("".join(json.dumps(record) + "\n" for record in kept))
            os.replace(tmp, self.path)
        return kept


def build_model_card(*, config: Any, concepts: list[str], input_spec: Mapping[str, Any], metrics: Mapping[str, float],
                     evaluation: Mapping[str, Any], inference: Mapping[str, Any], lineage: Mapping[str, Any],
                     created: str) -> dict[str, Any]:
    """model.json without its checksum (added once the weights are written)."""
    return {
        "apiVersion": MODEL_CARD_API_VERSION,
        "kind": MODEL_CARD_KIND,
        "modelType": config.modelType,
        "template": config.template,
        "templateScale": config.templateScale.model_dump(),
        "concepts": list(concepts),
        "input": dict(input_spec),
        "hyperparameters": dict(config.hyperparameters),
        "metrics": dict(metrics),
        "metricDefinitions": definitions_of(metrics),
        "evaluation": dict(evaluation),
        "inference": dict(inference),
        "dataset": dict(lineage),
        "baseModel": config.baseModelUri,
        "job": {"name": config.job.name, "namespace": config.job.namespace},
        "format": MODEL_FORMAT,
        "created": created,
    }


def write_model(output: OutputDir, state_dict: Mapping[str, torch.Tensor], card: dict[str, Any]) -> ModelSummary:
    """model.safetensors, then model.json naming its checksum; returns what status.model shows."""
    checksum = write_weights(output.path(MODEL_WEIGHTS), state_dict)
    card = {**card, "checksum": checksum, "version": version_of(checksum)}
    write_json(output.path(MODEL_CARD), card)
    return ModelSummary(uri=output.uri, version=card["version"], concepts=card["concepts"],
                        metrics=card["metrics"], checksum=checksum)
