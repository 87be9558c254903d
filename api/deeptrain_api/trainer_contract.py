"""The operator <-> trainer contract: the trainer config (`job.json`), env, exit codes, termination message.

Torch-free: the operator renders `TrainerConfig` into the job's ConfigMap, `deeptrain run` renders the
same thing locally, and the trainer parses it back with this very model.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import catalog

CONFIG_API_VERSION = "deeptrain.dev/v1alpha1"
CONFIG_KIND = "TrainerConfig"
CONFIG_FILENAME = "job.json"

# Env the trainer reads (besides torchrun's own RANK/WORLD_SIZE/...).
ENV_CONFIG = "DEEPTRAIN_CONFIG"  # path to job.json
ENV_REPORT = "DEEPTRAIN_REPORT"  # "kubernetes" (patch status.progress), "console" (progress bar), "none"
ENV_JOB_NAME = "DEEPTRAIN_JOB_NAME"
ENV_JOB_NAMESPACE = "DEEPTRAIN_JOB_NAMESPACE"
ENV_API_SERVER = "DEEPTRAIN_API_SERVER"  # override of the in-cluster API server URL (tests)
ENV_TERMINATION_LOG = "DEEPTRAIN_TERMINATION_LOG"
ENV_LAUNCHER_PID = "DEEPTRAIN_LAUNCHER_PID"  # `deeptrain run`'s pid: torchrun ends when that process does
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes kubelet keeps of a termination message

# Where the pods mount `pvc://CLAIM/...` URIs: pvc://CLAIM/PATH -> file:///mnt/pvc/CLAIM/PATH.
PVC_MOUNT_ROOT = "/mnt/pvc"

# Output layout under output.uri.
MODEL_WEIGHTS = "model.safetensors"
MODEL_CARD = "model.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "checkpoints/last.pt"
METRICS_HISTORY = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
PLOTS_DIR = "plots"
MODEL_FORMAT = "safetensors"


class ExitCode(enum.IntEnum):
    """Trainer exit codes. The permanent ones fail the job at once; any other failure is retried."""

    OK = 0
    INVALID_CONFIG = 10
    INVALID_DATASET = 11
    OUTPUT_ERROR = 12
    INSUFFICIENT_MEMORY = 13
    NON_FINITE_LOSS = 14


# Condition reason the operator reports for each permanent exit code.
PERMANENT_FAILURE_REASONS: dict[int, str] = {
    ExitCode.INVALID_CONFIG: "InvalidConfig",
    ExitCode.INVALID_DATASET: "InvalidDataset",
    ExitCode.OUTPUT_ERROR: "OutputError",
    ExitCode.INSUFFICIENT_MEMORY: "InsufficientMemory",
    ExitCode.NON_FINITE_LOSS: "NonFiniteLoss",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobRef(_Strict):
    name: str
    namespace: str = ""
    uid: str = ""
    generation: int = 0


class TemplateScale(_Strict):
    """Multipliers on the template's published width (channels) and depth (blocks); 1.0 = as published."""

    width: float = Field(default=1.0, gt=0, le=4)
    depth: float = Field(default=1.0, gt=0, le=4)


class DatasetConfig(_Strict):
    uri: str  # resolved: pvc:// already mapped to a file:// path under PVC_MOUNT_ROOT
    format: Literal["imagefolder", "jsonl", "coco", "csv"]
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    validation_uri: str | None = None
    invalid_data_tolerance_percent: float = Field(default=5.0, ge=0, le=100)
    video_frame_rate: float = Field(default=catalog.DEFAULT_VIDEO_FRAME_RATE, gt=0, le=catalog.MAX_VIDEO_FRAME_RATE)

    @model_validator(mode="after")
    def _one_validation_source(self) -> DatasetConfig:
        if self.validation_fraction is not None and self.validation_uri is not None:
            raise ValueError("give validation_fraction or validation_uri, not both")
        return self


class TrainerConfig(_Strict):
    apiVersion: Literal["deeptrain.dev/v1alpha1"] = CONFIG_API_VERSION
    kind: Literal["TrainerConfig"] = CONFIG_KIND
    job: JobRef
    modelType: str
    template: str
    templateScale: TemplateScale = TemplateScale()
    concepts: list[str] | None = None  # None: every concept found in the dataset
    hyperparameters: dict[str, bool | int | float]  # effective values (catalog.resolve_hyperparameters)
    dataset: DatasetConfig
    baseModelUri: str | None = None  # a model directory holding model.safetensors + model.json
    outputUri: str
    seed: int = 0

    @model_validator(mode="after")
    def _catalog_allows(self) -> TrainerConfig:
        given = {k: v for k, v in self.hyperparameters.items() if k != "lrate"}
        problems = catalog.check_hyperparameters(self.modelType, self.template, given)
        if problems:
            raise ValueError("; ".join(f"{path}: {message}" for path, message in problems))
        return self


class ModelSummary(_Strict):
    """What a finished run reports: written to the termination message and copied into status.model."""

    uri: str
    version: str  # first 12 hex digits of the weights' sha256
    format: str = MODEL_FORMAT
    concepts: list[str]
    metrics: dict[str, float]
    checksum: str  # "sha256:<hex>" of model.safetensors


class TerminationMessage(_Strict):
    """JSON the trainer writes to the termination log; the operator reads it from the pod status."""

    reason: str  # CamelCase: "Succeeded", "InvalidDataset", "InvalidConfig", "OutputError", "Error"
    message: str = ""
    permanent: bool = False
    exitCode: int = 0
    model: ModelSummary | None = None

    def to_json(self) -> str:
        text = self.model_dump_json(exclude_none=True)
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
            return text
        # Metrics are what grows; the status keeps the primary ones and model.json has the rest.
        trimmed = self.model_copy(update={"message": self.message[:1024]})
        if trimmed.model is not None:
            metrics = dict(list(trimmed.model.metrics.items())[:16])
            trimmed = trimmed.model_copy(update={"model": trimmed.model.model_copy(update={"metrics": metrics})})
        return trimmed.model_dump_json(exclude_none=True)[:TERMINATION_MESSAGE_LIMIT]


def parse_termination_message(text: str | None) -> TerminationMessage | None:
    if not text:
        return None
    try:
        return TerminationMessage.model_validate_json(text)
    except ValueError:
        return None


def load_config(data: str | bytes | dict[str, Any]) -> TrainerConfig:
    if isinstance(data, dict):
        return TrainerConfig.model_validate(data)
    return TrainerConfig.model_validate_json(data)
