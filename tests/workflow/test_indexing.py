"""`deeptrain index` at scale, for both stores: sharded with a shard killed and re-run, incremental
updates of a changed dataset, and a retrained embedder rolled over without mixing vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from deeptrain_api import catalog
from deeptrain_trainer.workflow import commands, indexing
from deeptrain_trainer.workflow.commands import index_dataset, open_runner, prune_index
from deeptrain_trainer.workflow.errors import WorkflowError
from deeptrain_trainer.workflow.graph import GraphInput
from deeptrain_trainer.workflow.indexing import shard_of
from deeptrain_trainer.workflow.stores import open_index

from .conftest import noise_image, write_untrained_model

IMAGES = 12
SHARDS = 3


@pytest.fixture(params=["embedded", "milvus"])
def setup(request, untrained_models, tmp_path, monkeypatch, milvus_lite):
    """(write the workflow for an embedder job, models dir, dataset dir); the embedder embeds whole images."""
    monkeypatch.setattr(indexing, "BATCH_SIZE", 1)
    data = tmp_path / "data"
    for i in range(IMAGES):
        (data / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        noise_image(32, 32, seed=i).save(data / f"c{i % 2}" / f"{i:02d}.png")

    def workflow(embedder: str = "embedder") -> Path:
        index = {"dataset": {"uri": data.as_uri(), "format": "imagefolder"}, "store": request.param, "clusters": 2}
        if request.param == "milvus":
            index["connection"] = {"secretRef": {"name": "milvus"}}
        manifest = {"apiVersion": "deeptrain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "shoes"},
                    "spec": {"nodes": [{"id": "embed", "model": {"deepTrainingJob": embedder}}], "index": index}}
        path = tmp_path / f"workflow-{embedder}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        return path

    return workflow, untrained_models, data


def killed_after_first_batch(monkeypatch):
    real = commands.embed_rows

    def crashing(*args, **kwargs):
        for number, rows in enumerate(real(*args, **kwargs)):
            if number == 1:
                raise KeyboardInterrupt("the pod was killed")
            yield rows

    monkeypatch.setattr(commands, "embed_rows", crashing)
    return real


def all_ids(index) -> list[str]:
    return [row_id for rows in index.iter_rows(100) for row_id in rows.ids]


def test_sharded_indexing_survives_a_killed_shard_without_duplicates(setup, tmp_path, monkeypatch):
    workflow, models, data = setup
    output = tmp_path / "index"
    keys = [f"c{i % 2}/{i:02d}" for i in range(IMAGES)]
    victim = max(range(SHARDS), key=lambda shard: sum(shard_of(key, SHARDS) == shard for key in keys))
    assert sum(shard_of(key, SHARDS) == victim for key in keys) >= 2, "the killed shard has work left when killed"
    for shard in range(SHARDS):
        if shard != victim:
            index_dataset(workflow(), models, output=output, shard=(shard, SHARDS))
    real = killed_after_first_batch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        index_dataset(workflow(), models, output=output, shard=(victim, SHARDS))
    monkeypatch.setattr(commands, "embed_rows", real)
    if "embedded" in workflow().read_text():
        with pytest.raises(WorkflowError, match=rf"shards \[{victim}\] of 3 wrote no part"):
            index_dataset(workflow(), models, output=output, merge=SHARDS)
    index_dataset(workflow(), models, output=output, shard=(victim, SHARDS))  # the retried shard
    index, location = index_dataset(workflow(), models, output=output, merge=SHARDS)

    ids = all_ids(open_index(location))
    assert len(ids) == len(set(ids)) == IMAGES
    assert set(ids) == {f"{path.parent.name}/{path.stem}" for path in data.glob("*/*.png")}
    assert sum(index.cluster_sizes().values()) == IMAGES
    assert not (tmp_path / ".index-parts").exists(), "the merge cleans up the parts"


def test_incremental_indexing_embeds_only_new_and_changed_inputs(setup, tmp_path, monkeypatch):
    workflow, models, data = setup
    output = tmp_path / "index"
    first, location = index_dataset(workflow(), models, output=output)
    version = first.version

    noise_image(32, 32, seed=100).save(data / "c0" / "new-a.png")
    noise_image(32, 32, seed=101).save(data / "c1" / "new-b.png")
    (data / "c0" / "00.png").unlink()
    noise_image(40, 40, seed=102).save(data / "c1" / "01.png")  # changed content
    embedded: list[str] = []
    real = commands.embed_rows

    def counting(runner, records, node, *rest):
        embedded.extend(record.uri for record in records)
        return real(runner, records, node, *rest)

    monkeypatch.setattr(commands, "embed_rows", counting)
    second, _ = index_dataset(workflow(), models, output=output)
    assert sorted(Path(uri).name for uri in embedded) == ["01.png", "new-a.png", "new-b.png"]
    ids = set(all_ids(open_index(location)))
    assert len(ids) == IMAGES + 1 and "c0/00" not in ids and "c0/new-a" in ids
    assert second.version != version

    embedded.clear()
    third, _ = index_dataset(workflow(), models, output=output)
    assert embedded == [] and third.count() == IMAGES + 1


def test_a_retrained_embedder_gets_its_own_generation_and_never_mixes_vectors(setup, tmp_path):
    workflow, models, data = setup
    output = tmp_path / "index"
    old, old_location = index_dataset(workflow(), models, output=output)
    write_untrained_model(models / "embedder-v2", catalog.VISUAL_EMBEDDER, ["circle", "square"], image_size=32, seed=7)
    new, new_location = index_dataset(workflow("embedder-v2"), models, output=output)

    runner = open_runner(workflow("embedder-v2"), models, [])
    probe = data / "c1" / "03.png"
    vector = runner.run([GraphInput(name=str(probe), image=Image.open(probe))])[0]["nodes"]["embed"][0]["embedding"]
    served = open_index(new_location)
    served.check_models(runner.model_versions())
    assert served.count() == IMAGES, "every row is the new model's: none kept from the old one"
    hit = served.search(vector, k=1)[0][0]
    assert hit["id"] == "c1/03" and hit["input"] == str(probe) and hit["score"] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(WorkflowError, match="build the index again"):
        served.check_models(open_runner(workflow(), models, []).model_versions())

    if new_location.startswith("milvus://"):
        assert new_location != old_location
        assert open_index(old_location).count() == IMAGES, "the old collection serves until the new one does"
        assert prune_index(workflow("embedder-v2"), models) == [old_location.removeprefix("milvus://")]
        with pytest.raises(WorkflowError, match="no such collection"):
            open_index(old_location)
    else:
        assert new_location == old_location == str(output)
        assert np.isfinite(served.search(vector, k=IMAGES)[0][-1]["distance"])
