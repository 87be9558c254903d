"""DeepTrainingJob: train one model of a catalog model type and template on a dataset (DESIGN section 2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, create_model, model_validator

from . import catalog, rules
from .common import (
    API_VERSION,
    MAP_MAX_PROPERTIES,
    MESSAGE_MAX_LENGTH,
    NAME_MAX_LENGTH,
    ApiModel,
    Condition,
    LocalObjectReference,
    ObjectMeta,
    ResourceRequirements,
    StatusModel,
    StringMap,
    Timestamp,
    Toleration,
)
from .fields import DatasetFormat, ObjectName, Uri, VideoFrameRate

KIND = "DeepTrainingJob"
PLURAL = "deeptrainingjobs"

ModelTypeName = Literal[tuple(catalog.MODEL_TYPES)]  # type: ignore[valid-type]
TemplateName = Literal[tuple(dict.fromkeys(t for mt in catalog.MODEL_TYPES.values() for t in mt.templates))]  # type: ignore[valid-type]
Phase = Literal["Created", "Queued", "Running", "Restarting", "Suspended", "Succeeded", "Failed"]

_PYTHON_TYPES: dict[str, type] = {"boolean": bool, "integer": int, "number": float}
_EVERY_MODEL_TYPE = frozenset(catalog.MODEL_TYPES)


def _hyperparameter_field(hp: catalog.Hyperparameter) -> tuple[Any, Any]:
    bounds: dict[str, Any] = {}
    if hp.minimum is not None:
        bounds["gt" if hp.exclusive_minimum else "ge"] = hp.minimum
    if hp.maximum is not None:
        bounds["le"] = hp.maximum
    if hp.multiple_of:
        bounds["multiple_of"] = hp.multiple_of
    # A schema default on a type-specific hyperparameter would itself trip the "applies only to" rule.
    default = hp.default if hp.model_types >= _EVERY_MODEL_TYPE else None
    python_type = _PYTHON_TYPES[hp.type]
    return python_type | None, Field(default=default, description=hp.description, **bounds)


def _at_most_one_learning_rate(self: Any) -> Any:
    given = [key for key in catalog.LEARNING_RATE_KEYS if getattr(self, key) is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of {', '.join(catalog.LEARNING_RATE_KEYS)} (got {', '.join(given)})")
    return self


Hyperparameters = create_model(  # type: ignore[call-overload]
    "Hyperparameters",
    __base__=ApiModel,
    __doc__="Training hyperparameters, named as in the product documentation. Values that are not given "
            "take the model type's defaults; status.hyperparameters shows the effective values.",
    __validators__={"at_most_one_learning_rate": model_validator(mode="after")(_at_most_one_learning_rate)},
    **{name: _hyperparameter_field(hp) for name, hp in catalog.HYPERPARAMETERS.items()},
)
# Unknown keys are kept rather than pruned: a client that does not ask for strict field validation
# would otherwise have a misspelt hyperparameter dropped silently, and the job would train without it.
# The operator refuses such a job (checks.unknown_hyperparameters).
Hyperparameters.model_config["json_schema_extra"] = {"x-kubernetes-validations": [rules.at_most_one_learning_rate()],
                                                     "x-kubernetes-preserve-unknown-fields": True}
Hyperparameters.model_rebuild(force=True)

# The effective values: every hyperparameter of the catalog typed, no ranges (the operator computed them).
EffectiveHyperparameters = Annotated[
    dict[str, bool | int | float],
    WithJsonSchema({
        "type": "object",
        "properties": {name: {"type": hp.type} for name, hp in catalog.HYPERPARAMETERS.items()},
    }),
]


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("must not repeat a value")
    return values


def _check_nproc(value: int | str) -> int | str:
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError('must be "auto" or an integer >= 1')
    return value


NprocPerNode = Annotated[
    int | Literal["auto"],
    WithJsonSchema({
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int ? self >= 1 : self == 'auto'",
            "message": 'spec.nprocPerNode must be "auto" (GPUs per pod, else CPUs) or an integer >= 1',
        }],
    }),
    AfterValidator(_check_nproc),
]

Concepts = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=128)]],
    Field(max_length=1024, json_schema_extra={"x-kubernetes-list-type": "set"}),
    AfterValidator(_unique),
]


class TemplateScale(ApiModel):
    """Multipliers on the template's published width (channels) and depth (blocks), so that small
    clusters and CI can train a small variant of the same architecture."""

    width: float = Field(default=1.0, gt=0, le=4, description="Width multiplier, (0, 4]; 1 = as published.")
    depth: float = Field(default=1.0, gt=0, le=4, description="Depth multiplier, (0, 4]; 1 = as published.")


class DatasetValidation(ApiModel):
    """Where validation items come from: a fraction held out of the dataset, or a separate dataset."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [
        rules.exactly_one(("fraction", "uri"), "spec.dataset.validation")]}}

    fraction: float | None = Field(default=None, gt=0, lt=1, description="Share of the dataset held out, (0, 1).")
    uri: Uri | None = Field(default=None, description="A separate validation dataset in the same format.")

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetValidation:
        if (self.fraction is None) == (self.uri is None):
            raise ValueError("give exactly one of fraction or uri")
        return self


class Dataset(ApiModel):
    """The training data."""

    uri: Uri = Field(description="pvc://CLAIM/PATH (mounted into the pods), file://, s3://, gs:// or https://.")
    format: DatasetFormat = Field(description="Layout of the dataset.")
    validation: DatasetValidation | None = Field(default=None, description="Validation split; "
                                                 "default: the trainer holds out a fraction.")
    secretRef: LocalObjectReference | None = Field(
        default=None, description="Secret whose keys become environment variables (e.g. AWS_*) for object stores.")
    invalidDataTolerancePercent: float = Field(
        default=5.0, ge=0, le=100, description="Percent of unreadable items tolerated before training fails.")
    videoFrameRate: VideoFrameRate = catalog.DEFAULT_VIDEO_FRAME_RATE


class BaseModelSource(ApiModel):
    """Warm start from another job's trained model or from a model directory."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [
        rules.exactly_one(("deepTrainingJob", "uri"), "spec.baseModel")]}}

    deepTrainingJob: ObjectName | None = Field(default=None, description="A DeepTrainingJob in this namespace.")
    uri: Uri | None = Field(default=None, description="A directory holding model.safetensors and model.json.")

    @model_validator(mode="after")
    def _exactly_one(self) -> BaseModelSource:
        if (self.deepTrainingJob is None) == (self.uri is None):
            raise ValueError("give exactly one of deepTrainingJob or uri")
        return self


class Output(ApiModel):
    """Where the model, checkpoints, metrics and plots are written."""

    uri: Uri = Field(description="pvc://CLAIM/PATH, file://, s3://, gs:// or https://.")


class Scheduling(ApiModel):
    """Placement of the worker pods."""

    queueName: str | None = Field(default=None, max_length=63, description="Kueue LocalQueue (label on the child Job).")
    priorityClassName: str | None = Field(default=None, max_length=NAME_MAX_LENGTH, description="PriorityClass of the pods.")
    nodeSelector: StringMap | None = Field(default=None, description="Node labels the pods require.")
    tolerations: list[Toleration] | None = Field(default=None, max_length=32, description="Taints the pods tolerate.")
    gang: Literal["", "volcano", "scheduler-plugins"] = Field(
        default="", description='Gang scheduling with a PodGroup: "volcano", "scheduler-plugins", or "" for none.')


class RunPolicy(ApiModel):
    """Lifecycle of the run; the only part of the spec that may change while the job is active."""

    suspend: bool = Field(default=False, description="true: delete the pods and keep the job; false: run.")
    backoffLimit: int = Field(default=3, ge=0, le=1000, description="Gang restarts allowed on retryable failures.")
    activeDeadlineSeconds: int | None = Field(default=None, ge=1, description="Fail the job after this long running.")
    ttlSecondsAfterFinished: int | None = Field(
        default=None, ge=0, description="Delete the pods' Job this long after finishing; the DeepTrainingJob stays.")


class DeepTrainingJobSpec(ApiModel):
    """What to train, on what data, where the model goes, and on how many pods."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [
        rules.template_offered(), *rules.hyperparameters_for_model_type(), rules.batch_divides_over_processes()]}}

    modelType: ModelTypeName = Field(description="The kind of model: " + ", ".join(catalog.MODEL_TYPES) + ".")
    template: TemplateName = Field(description="Architecture; the allowed set depends on modelType.")
    templateScale: TemplateScale | None = Field(default=None, description="Width/depth multipliers of the template.")
    concepts: Concepts | None = Field(default=None, description="Concepts to train; default: every concept in the dataset.")
    hyperparameters: Hyperparameters = Field(  # type: ignore[valid-type]
        default_factory=Hyperparameters, json_schema_extra={"default": {}})
    dataset: Dataset
    baseModel: BaseModelSource | None = Field(default=None, description="Optional warm start.")
    output: Output
    workers: int = Field(default=1, ge=1, description="Worker pods (torchrun nodes).")
    nprocPerNode: NprocPerNode = Field(default="auto", description='Processes per pod: "auto" or an integer.')
    resources: ResourceRequirements | None = Field(default=None, description="Resources of each worker pod.")
    image: str | None = Field(default=None, max_length=512, description="Trainer image; default from the operator.")
    scheduling: Scheduling = Field(default_factory=Scheduling, json_schema_extra={"default": {}})
    runPolicy: RunPolicy = Field(default_factory=RunPolicy, json_schema_extra={"default": {}})


class WorkerCounts(StatusModel):
    """Worker pods by state."""

    active: int = Field(default=0, ge=0)
    ready: int = Field(default=0, ge=0)
    succeeded: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)


NumberMap = Annotated[dict[str, float], Field(json_schema_extra={"maxProperties": MAP_MAX_PROPERTIES})]


class Progress(StatusModel):
    """Training progress, reported by rank 0 (throttled)."""

    epoch: int | None = Field(default=None, ge=0)
    epochs: int | None = Field(default=None, ge=0)
    step: int | None = Field(default=None, ge=0)
    steps: int | None = Field(default=None, ge=0)
    percent: int | None = Field(default=None, ge=0, le=100, description="Whole percent of steps done.")
    loss: float | None = None
    itemsPerSecond: float | None = Field(default=None, ge=0)
    etaSeconds: int | None = Field(default=None, ge=0)
    lastEval: NumberMap | None = Field(default=None, description="Metrics of the last evaluation.")
    updatedAt: Timestamp | None = None


class TrainedModel(StatusModel):
    """The trained model, as recorded when the job succeeded."""

    uri: str = Field(max_length=2048)
    version: str = Field(max_length=64)
    format: str = Field(default="safetensors", max_length=64)
    concepts: list[Annotated[str, Field(max_length=128)]] = Field(default_factory=list, max_length=1024)
    metrics: NumberMap = Field(default_factory=dict)
    checksum: str = Field(default="", max_length=128)


class WorkflowReference(StatusModel):
    """A Workflow that uses this job's model."""

    name: str = Field(max_length=NAME_MAX_LENGTH)
    namespace: str | None = Field(default=None, max_length=63)


class DeepTrainingJobStatus(StatusModel):
    """Observed state, written by the operator (progress by the trainer's rank 0)."""

    observedGeneration: int | None = Field(default=None, ge=0)
    phase: Phase | None = None
    hyperparameters: EffectiveHyperparameters | None = Field(
        default=None, description="Effective hyperparameters the trainer uses (per-type defaults included).")
    conditions: list[Condition] | None = Field(default=None, max_length=32, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})
    startTime: Timestamp | None = None
    completionTime: Timestamp | None = None
    attempt: int | None = Field(default=None, ge=0, description="Current attempt; the gang restarts as attempt N+1.")
    restarts: int | None = Field(default=None, ge=0)
    workers: WorkerCounts | None = None
    progress: Progress | None = None
    model: TrainedModel | None = None
    metric: str | None = Field(default=None, max_length=64, description='Primary metric, e.g. "accuracy=0.962".')
    workflows: list[WorkflowReference] | None = Field(default=None, max_length=256)
    message: str | None = Field(default=None, max_length=MESSAGE_MAX_LENGTH)
    specHash: str | None = Field(default=None, max_length=128, description=(
        "Hash of the spec the current run was built from (runPolicy and the queue excluded): a finished "
        "job whose spec hash changes trains again."))


def _frozen_while_active() -> dict[str, bool]:
    """Spec fields a running gang was built from, each with whether it is always present.

    runPolicy and the queue/priority stay editable: suspending, and Kueue moving jobs between queues.
    """
    def always_present(info: Any) -> bool:
        return info.is_required() or info.default_factory is not None or info.default is not None

    frozen = {name: always_present(info) for name, info in DeepTrainingJobSpec.model_fields.items()
              if name not in ("runPolicy", "scheduling")}
    frozen.update({f"scheduling.{name}": always_present(info) for name, info in Scheduling.model_fields.items()
                   if name not in ("queueName", "priorityClassName")})
    return frozen


class DeepTrainingJob(ApiModel):
    """A training run of one model type and template on a dataset, as torchrun pods."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [
        rules.name_fits_pod_hostnames(),
        rules.immutable_while_active(_frozen_while_active())]}}

    apiVersion: Literal["deeptrain.dev/v1alpha1"] = API_VERSION
    kind: Literal["DeepTrainingJob"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DeepTrainingJobSpec
    status: DeepTrainingJobStatus | None = None
