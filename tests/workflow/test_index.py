"""The embedded index's exact search and files on disk, k-means over an index, and embedding a dataset's rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from deeptrain_trainer.data import ImageRecord
from deeptrain_trainer.workflow.embedded_store import EmbeddedIndex
from deeptrain_trainer.workflow.errors import WorkflowError
from deeptrain_trainer.workflow.graph import GraphInput, WorkflowRunner
from deeptrain_trainer.workflow.index import IndexMeta, Rows
from deeptrain_trainer.workflow.indexing import embed_node_of, embed_rows, known_concepts, read_dataset
from deeptrain_trainer.workflow.kmeans import kmeans
from deeptrain_trainer.workflow.models import models_dir_resolver

from .conftest import CROP_GRAPH, noise_image, workflow_of


def items(count: int) -> list[dict]:
    return [{"id": f"item-{i}", "input": f"/data/{i}.png", "concepts": []} for i in range(count)]


def index_of(tmp_path, vectors: np.ndarray, metric: str = "cosine") -> EmbeddedIndex:
    index = EmbeddedIndex.create(tmp_path / "index", IndexMeta(metric=metric))
    index.add(Rows(ids=[item["id"] for item in items(len(vectors))], vectors=vectors, items=items(len(vectors))))
    index.commit()
    return index


def test_cosine_ranks_by_angle_and_euclidean_by_distance(tmp_path):
    # Row 0 points the query's way but is far away; row 1 is close but at an angle.
    vectors = np.array([[10.0, 0.0], [0.8, 0.6]], dtype=np.float32)
    query = [1.0, 0.0]
    cosine = index_of(tmp_path / "c", vectors, "cosine").search(query, k=2)[0]
    euclidean_index = index_of(tmp_path / "e", vectors, "euclidean")
    euclidean = euclidean_index.search(query, k=2)[0]
    assert [n["id"] for n in cosine] == ["item-0", "item-1"]
    assert cosine[0]["score"] == pytest.approx(1.0) and cosine[1]["score"] == pytest.approx(0.8)
    assert [n["id"] for n in euclidean] == ["item-1", "item-0"]
    assert euclidean[0]["distance"] == pytest.approx(np.hypot(0.2, 0.6), abs=1e-5)
    # An exact euclidean index can still be asked for cosine neighbours.
    assert [n["id"] for n in euclidean_index.search(query, 2, "cosine")[0]] == ["item-0", "item-1"]


def test_search_returns_at_most_the_index(tmp_path):
    assert len(index_of(tmp_path, np.eye(3, dtype=np.float32)).search([1, 0, 0], k=10)[0]) == 3


def test_saving_again_replaces_the_whole_index_in_one_step(tmp_path):
    first = index_of(tmp_path, np.eye(4, dtype=np.float32))
    described = json.loads((tmp_path / "index" / "index.json").read_text())
    assert described["size"] == 4 and described["dim"] == 4 and described["built"] == "exact"
    replacement = EmbeddedIndex.create(tmp_path / "index", IndexMeta())
    replacement.add(Rows(ids=["a", "b"], vectors=np.ones((2, 3), dtype=np.float32), items=items(2)))
    replacement.commit()
    loaded = EmbeddedIndex.open(tmp_path / "index")
    assert loaded.count() == 2 and loaded.dim == 3 and loaded.version != first.version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_a_broken_index_folder_is_reported(tmp_path):
    index_of(tmp_path, np.eye(3, dtype=np.float32))
    (tmp_path / "index" / "vectors.npy").write_bytes(b"not numpy")
    with pytest.raises(WorkflowError, match="cannot be read"):
        EmbeddedIndex.open(tmp_path / "index")


def blobs(per_blob: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5], [-5, -5, 0]], dtype=np.float32)
    points = np.concatenate([centre + rng.normal(scale=0.3, size=(per_blob, 3)) for centre in centres])
    return points.astype(np.float32), np.repeat(np.arange(len(centres)), per_blob)


def test_kmeans_recovers_well_separated_groups_the_same_way_for_a_seed(tmp_path):
    points, truth = blobs()
    index = index_of(tmp_path, points, "euclidean")
    found = kmeans(index, k=4, seed=3)
    # Each true group lands in exactly one cluster, and each cluster holds exactly one group.
    truth = truth[np.argsort([item["id"] for item in items(len(points))])]  # rows are stored in id order
    points = points[np.argsort([item["id"] for item in items(len(points))])]
    pairs = {(int(t), int(c)) for t, c in zip(truth, found.assignments, strict=True)}
    assert len(pairs) == 4 and len({c for _, c in pairs}) == 4
    for cluster in range(4):
        members = points[found.assignments == cluster]
        assert np.allclose(found.centroids[cluster], members.mean(axis=0), atol=1e-4)
    again = kmeans(index, k=4, seed=3)
    assert np.array_equal(again.assignments, found.assignments)


def test_kmeans_keeps_every_cluster_non_empty_and_checks_k(tmp_path):
    index = index_of(tmp_path, np.ones((5, 2), dtype=np.float32), "euclidean")
    found = kmeans(index, k=3, seed=0)
    assert sorted(set(found.assignments.tolist())) == [0, 1, 2]
    with pytest.raises(WorkflowError, match="between 1 and the index size 5"):
        kmeans(index, k=6)


def test_crops_take_the_concept_of_the_annotated_box_they_overlap():
    record = ImageRecord(uri="/x.png", boxes=[(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)],
                         box_concepts=["circle", "square"])
    near_second = {"box": {"top_row": 0.55, "left_col": 0.5, "bottom_row": 1.0, "right_col": 0.95}}
    between = {"box": {"top_row": 0.25, "left_col": 0.25, "bottom_row": 0.75, "right_col": 0.75}}
    assert known_concepts(record, near_second) == ["square"]
    assert known_concepts(record, between) == []
    assert known_concepts(ImageRecord(uri="/y.png", concepts=["boot"]), None) == ["boot"]


def test_indexing_a_dataset_through_a_crop_graph_gives_one_row_per_region(untrained_models, tmp_path):
    for concept in ("circle", "square"):
        (tmp_path / "data" / concept).mkdir(parents=True)
        for i in range(2):
            noise_image(64, 48, seed=i + 10 * len(concept)).save(tmp_path / "data" / concept / f"{i}.png")
    runner = WorkflowRunner(workflow_of(CROP_GRAPH), models_dir_resolver(untrained_models))
    records = read_dataset(str(tmp_path / "data"), "imagefolder")
    rows = list(embed_rows(runner, records, embed_node_of(runner, None)))

    outputs = runner.run([GraphInput(name=r.uri, image=Image.open(r.uri)) for r in records])
    regions = [len(output["nodes"]["detect"][0]["regions"]) for output in outputs]
    assert sum(len(batch) for batch in rows) == sum(regions) > 0
    first = rows[0].items[0]
    assert first["id"] == f"{records[0].id}#0" and first["source"] == records[0].id == "circle/0" and "box" in first["region"]
