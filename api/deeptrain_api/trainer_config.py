"""DeepTrainingJob -> TrainerConfig (the job.json the trainer reads): the same rendering for the cluster and `deeptrain run`."""

from __future__ import annotations

from collections.abc import Callable

from . import catalog
from .job import DeepTrainingJob
from .trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
from .volumes import PVC_SCHEME, in_pod_uri


class TrainerConfigError(ValueError):
    """The job cannot be rendered where it is meant to run; str() names the field and the fix."""


def build_trainer_config(
    job: DeepTrainingJob,
    *,
    output_uri: str | None = None,
    base_model_uri: str | None = None,
    local: bool = False,
) -> TrainerConfig:
    """The trainer config of `job`.

    output_uri overrides spec.output.uri (`deeptrain run --output`); base_model_uri is the model of the
    job named by spec.baseModel.deepTrainingJob, which only the operator can look up. local=True
    renders for this machine, where pvc:// claims are not mounted.
    """
    spec = job.spec

    def resolve(uri: str, field: str) -> str:
        if not uri.startswith(PVC_SCHEME):
            return uri
        if local:
            raise TrainerConfigError(
                f"{field}: {uri} is a PersistentVolumeClaim, mounted only in the cluster; "
                "use a file:// URI" + (" or pass --output DIR" if field == "spec.output.uri" else ""))
        return in_pod_uri(uri)

    validation = spec.dataset.validation
    dataset = DatasetConfig(
        uri=resolve(spec.dataset.uri, "spec.dataset.uri"),
        format=spec.dataset.format,
        validation_fraction=validation.fraction if validation else None,
        validation_uri=resolve(validation.uri, "spec.dataset.validation.uri") if validation and validation.uri else None,
        invalid_data_tolerance_percent=spec.dataset.invalidDataTolerancePercent,
        video_frame_rate=spec.dataset.videoFrameRate,
    )
    scale = spec.templateScale
    return TrainerConfig(
        job=JobRef(
            name=job.metadata.name or "",
            namespace=job.metadata.namespace or "",
            uid=job.metadata.uid or "",
            generation=job.metadata.generation or 0,
        ),
        modelType=spec.modelType,
        template=spec.template,
        templateScale=TemplateScale(width=scale.width, depth=scale.depth) if scale else TemplateScale(),
        concepts=list(spec.concepts) if spec.concepts is not None else None,
        hyperparameters=catalog.resolve_hyperparameters(spec.modelType, spec.hyperparameters.to_dict()),
        dataset=dataset,
        baseModelUri=_base_model_uri(job, base_model_uri, resolve),
        outputUri=output_uri if output_uri is not None else resolve(spec.output.uri, "spec.output.uri"),
        seed=0,
    )


def _base_model_uri(job: DeepTrainingJob, resolved_job_model: str | None,
                    resolve: Callable[[str, str], str]) -> str | None:
    base = job.spec.baseModel
    if base is None:
        return None
    if base.uri is not None:
        return resolve(base.uri, "spec.baseModel.uri")
    if resolved_job_model is None:
        raise TrainerConfigError(
            f"spec.baseModel.deepTrainingJob: the model of job {base.deepTrainingJob!r} is known only to the "
            "operator in the cluster; give spec.baseModel.uri (the model directory) to run here")
    return resolve(resolved_job_model, "spec.baseModel.deepTrainingJob")
