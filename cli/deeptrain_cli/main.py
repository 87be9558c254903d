"""`deeptrain`: the command line. Each command is a thin shell over a module that does the work.

Torch is imported only by the commands that train or predict, so the operator image (no torch) can
still run `deeptrain crds` and `deeptrain validate`. Every failure ends as one line on stderr and an
exit code from `.errors` (README, "Exit codes"); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from .errors import EXIT_INPUT, InputError, OneLineErrors

app = typer.Typer(
    cls=OneLineErrors,
    help="deeptrain: typed deep training on Kubernetes, and the same trainer on this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure instead of one line.")) -> None:
    """deeptrain: typed deep training on Kubernetes, and the same trainer on this machine."""
data_app = typer.Typer(help="Example datasets built from images and text that ship inside installed packages.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

_RATE_HELP = "Frames per second sampled from each video."


@app.command()
def crds() -> None:
    """Print the CustomResourceDefinitions generated from the API models (what crds/ holds)."""
    from deeptrain_api.crdgen import render_crds

    typer.echo(render_crds(), nl=False)


@app.command("catalog")
def catalog_command() -> None:
    """Print the model types, templates and hyperparameters (ranges, per-type defaults) as Markdown."""
    from .reference import catalog_markdown

    typer.echo(catalog_markdown(), nl=False)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Manifests (YAML, one or more documents each).")) -> None:
    """Check manifests with the CRD schema, its CEL rules and the template catalog; exit 1 naming the field."""
    from deeptrain_api.manifests import ManifestError, load_objects

    failed = False
    for path in files:
        try:
            objects = load_objects(path)
        except ManifestError as error:
            typer.echo(f"{path}: {error}", err=True)
            failed = True
            continue
        for obj in objects:
            typer.echo(f"{path}: {obj.kind}/{obj.metadata.name} is valid")
    raise typer.Exit(EXIT_INPUT if failed else 0)


@app.command()
def run(
    job_file: Path = typer.Argument(..., help="A DeepTrainingJob manifest."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output directory (default: the manifest's output.uri)."),
    nproc: int | None = typer.Option(None, "--nproc", "-n", min=1, help="Processes (default: the job's nprocPerNode, auto = GPUs or 2 on CPU)."),
) -> None:
    """Train a DeepTrainingJob on this machine with torchrun: same validation, same trainer config as the cluster."""
    from deeptrain_api.manifests import ManifestError, load_job
    from deeptrain_api.trainer_config import TrainerConfigError, build_trainer_config
    from deeptrain_trainer.launcher import run_local

    try:
        job = load_job(job_file)
        config = build_trainer_config(job, output_uri=output.resolve().as_uri() if output else None, local=True)
    except (ManifestError, TrainerConfigError) as error:
        typer.echo(f"{job_file}: {error}", err=True)
        raise typer.Exit(EXIT_INPUT) from None
    raise typer.Exit(run_local(config, nproc=nproc))


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="A trained model directory (model.safetensors + model.json)."),
    inputs: list[str] = typer.Argument(..., help="Image or video files, or text when the model is a text classifier."),
    save: Path | None = typer.Option(None, "--save", help="Write annotated images / heatmaps / masks (videos: an annotated MP4) here."),
    video_frame_rate: float = typer.Option(1.0, "--video-frame-rate", min=0.001, max=60, help=_RATE_HELP),
) -> None:
    """Run a trained model and print its predictions as JSON (labels, boxes, masks, embeddings, anomaly scores);
    a video gets one entry per sampled frame, with its frameIndex and timeOffsetMs."""
    from deeptrain_trainer.inference import load_model

    if save is not None and save.exists() and not save.is_dir():
        raise InputError(f"--save: {save} is a file; give a directory (it is created when missing)")
    model = load_model(model_dir)
    results = model.predict(inputs, save_dir=save, video_frame_rate=video_frame_rate)
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    failed = sum(1 for result in results if "error" in result)
    if failed:
        typer.echo(f"error: {failed} of {len(results)} inputs could not be predicted; see their \"error\" entries",
                   err=True)
        raise typer.Exit(EXIT_INPUT)


@data_app.command("list")
def data_list() -> None:
    """List the example datasets `deeptrain data make` can write."""
    from deeptrain_trainer.datasets import DATASETS

    for name, maker in DATASETS.items():
        typer.echo(f"{name:28s} {maker.description}")


@data_app.command("make")
def data_make(
    name: str = typer.Argument(..., help="Dataset name (see `deeptrain data list`)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write."),
) -> None:
    """Write an example dataset, deterministically, in a format the trainer reads."""
    from deeptrain_trainer.datasets import DATASETS, make_dataset

    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    summary = make_dataset(name, output)
    typer.echo(summary)


workflow_app = typer.Typer(help="Workflows: inference graphs over trained models.", no_args_is_help=True)
app.add_typer(workflow_app, name="workflow")

_MODELS_HELP = "Directory holding one model directory per job: deepTrainingJob NAME reads DIR/NAME (each `deeptrain run --output`)."
_MODEL_HELP = "NODE=DIR: the model directory of one node (repeatable; overrides --models for that node)."


def _workflow_failure(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(EXIT_INPUT)


@workflow_app.command("run")
def workflow_run(
    workflow_file: Path = typer.Argument(..., help="A Workflow manifest."),
    inputs: list[str] = typer.Argument(..., help="Image or video files or URIs (texts, for a text workflow)."),
    models: Path | None = typer.Option(None, "--models", help=_MODELS_HELP),
    model: list[str] = typer.Option([], "--model", help=_MODEL_HELP),
    video_frame_rate: float = typer.Option(1.0, "--video-frame-rate", min=0.001, max=60, help=_RATE_HELP),
) -> None:
    """Run a Workflow's graph on inputs with local models; print each input's node outputs as JSON
    (a video's per sampled frame, with frameIndex and timeOffsetMs)."""
    from deeptrain_trainer.workflow.commands import run_workflow
    from deeptrain_trainer.workflow.errors import WorkflowError

    try:
        results = run_workflow(workflow_file, inputs, models, model, video_frame_rate)
    except WorkflowError as error:
        raise _workflow_failure(error) from None
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


@app.command("index")
def index_command(
    workflow_file: Path = typer.Argument(..., help="A Workflow manifest with spec.index."),
    models: Path | None = typer.Option(None, "--models", help=_MODELS_HELP),
    model: list[str] = typer.Option([], "--model", help=_MODEL_HELP),
    output: Path | None = typer.Option(None, "--output", "-o", help="Index directory (default: MODELS/index)."),
    node: str | None = typer.Option(None, "--node", help="The embedder node to index (default: the only one)."),
    shard: str | None = typer.Option(None, "--shard", help="I/N: embed only the I-th of N shards of the dataset "
                                                           "(default: the completion index of an indexed Job)."),
    merge: int | None = typer.Option(None, "--merge", min=1, help="N: merge the N shards' parts, cluster, commit."),
    prune: bool = typer.Option(False, "--prune", help="Drop this workflow's collections of other model versions."),
) -> None:
    """Bring spec.index up to date with spec.index.dataset: embed what is new or changed, remove what left it."""
    import logging

    from deeptrain_trainer.workflow.commands import index_dataset, parse_shard, prune_index
    from deeptrain_trainer.workflow.errors import WorkflowError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if prune:
            dropped = prune_index(workflow_file, models, model, node)
            typer.echo(f"dropped {len(dropped)} collections of other model versions: {', '.join(dropped) or 'none'}")
            return
        index, written = index_dataset(workflow_file, models, model, output, node,
                                       shard=parse_shard(shard) if shard is not None else None, merge=merge)
    except WorkflowError as error:
        raise _workflow_failure(error) from None
    if shard is not None:
        typer.echo(f"shard {shard} written to {written}")
        return
    typer.echo(f"indexed {index.size} items ({index.dim} dimensions, {index.metric}) into {written}; "
               f"version {index.version}")


@app.command("search")
def search_command(
    image: str = typer.Argument(..., help="The query image or video (a path or URI)."),
    workflow_file: Path = typer.Option(..., "--workflow", help="The Workflow the index was built with."),
    index: str = typer.Option(..., "--index", help="The index `deeptrain index` wrote: its folder, or milvus://COLLECTION."),
    models: Path | None = typer.Option(None, "--models", help=_MODELS_HELP),
    model: list[str] = typer.Option([], "--model", help=_MODEL_HELP),
    k: int = typer.Option(5, "-k", "--k", min=1, help="Neighbours per query embedding."),
    metric: str | None = typer.Option(None, "--metric", help="cosine or euclidean (default: the index's)."),
    video_frame_rate: float = typer.Option(1.0, "--video-frame-rate", min=0.001, max=60, help=_RATE_HELP),
) -> None:
    """Nearest indexed items to each embedding the graph makes of IMAGE (one per detected region), as JSON;
    a video query merges the neighbours of all its sampled frames."""
    from deeptrain_trainer.workflow.commands import search_image
    from deeptrain_trainer.workflow.errors import WorkflowError

    try:
        results = search_image(workflow_file, models, model, index, image, k, metric,  # type: ignore[arg-type]
                               video_frame_rate)
    except WorkflowError as error:
        raise _workflow_failure(error) from None
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":  # pragma: no cover
    app()
