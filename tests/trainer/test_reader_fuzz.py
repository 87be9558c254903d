"""Fuzzing the dataset readers (imagefolder, jsonl, coco, csv): any content gives records or one DatasetError.

The files live on fsspec's in-memory file system (the readers' object-store path); the examples are
bounded so that the whole module takes seconds.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deeptrain_api import catalog
from deeptrain_trainer.data import DatasetError, read_records
from deeptrain_trainer.data.images import check_images

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**33), st.floats(-2.0, 2.0), st.floats(),
                    st.text(max_size=12), st.sampled_from(["cat", "dog", "a.png", "images/a.png", "mask.png"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(["id", "value", "image", "text", "concepts", "regions",
                                                         "region_info", "bounding_box", "polygon", "mask", "data",
                                                         "points", "row", "col", "top_row", "left_col",
                                                         "bottom_row", "right_col", "uri", "base64"])
                                        | st.text(max_size=6), inner, max_size=5), max_leaves=16)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_. ", min_size=1, max_size=8).filter(
    lambda name: name.strip(".") != "")


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_PNG = png_bytes()
file_contents = st.one_of(st.just(GOOD_PNG), st.binary(max_size=64), st.just(b""),
                          st.binary(max_size=30).map(lambda tail: GOOD_PNG[:40] + tail))


@contextmanager
def memory_folder() -> Iterator[tuple[fsspec.AbstractFileSystem, str]]:
    fs = fsspec.filesystem("memory")
    root = f"/fuzz-{uuid.uuid4().hex}"
    fs.mkdir(root)
    try:
        yield fs, root
    finally:
        fs.rm(root, recursive=True)


def read(uri: str, dataset_format: str, model_type: str) -> None:
    try:
        records = read_records(uri, dataset_format, model_type, None)
    except DatasetError as error:
        assert str(error).startswith(error.location)
        return
    image_records = [record for record in records if hasattr(record, "boxes")]
    try:
        check_images(image_records)
    except DatasetError:
        pass


@FUZZ
@given(st.dictionaries(names, st.dictionaries(names.map(lambda name: name + ".png"), file_contents, max_size=3),
                       max_size=3),
       st.sampled_from([catalog.VISUAL_CLASSIFIER, catalog.VISUAL_ANOMALY_HEATMAP]))
def test_imagefolder(tree: dict[str, dict[str, bytes]], model_type: str):
    with memory_folder() as (fs, root):
        for folder, files in tree.items():
            fs.mkdir(f"{root}/{folder}")
            for name, content in files.items():
                fs.pipe(f"{root}/{folder}/{name}", content)
        read(f"memory://{root}", "imagefolder", model_type)


@FUZZ
@given(st.lists(values.map(json.dumps) | st.text(max_size=30), max_size=6),
       st.sampled_from([catalog.VISUAL_CLASSIFIER, catalog.VISUAL_DETECTOR, catalog.VISUAL_SEGMENTER,
                        catalog.TEXT_CLASSIFIER]))
def test_jsonl(lines: list[str], model_type: str):
    with memory_folder() as (fs, root):
        fs.pipe(f"{root}/a.png", GOOD_PNG)
        fs.pipe(f"{root}/data.jsonl", "\n".join(lines).encode())
        read(f"memory://{root}/data.jsonl", "jsonl", model_type)


coco_documents = st.fixed_dictionaries({
    "images": st.lists(st.fixed_dictionaries({"id": scalars, "file_name": scalars, "width": scalars,
                                              "height": scalars}) | values, max_size=3),
    "annotations": st.lists(st.fixed_dictionaries({"id": scalars, "image_id": scalars, "category_id": scalars,
                                                   "bbox": st.lists(scalars, max_size=5) | values,
                                                   "segmentation": values}) | values, max_size=3),
    "categories": st.lists(st.fixed_dictionaries({"id": scalars, "name": scalars}) | values, max_size=3),
}) | values


@FUZZ
@given(coco_documents, st.sampled_from([catalog.VISUAL_DETECTOR, catalog.VISUAL_SEGMENTER, catalog.VISUAL_CLASSIFIER]))
def test_coco(document: object, model_type: str):
    with memory_folder() as (fs, root):
        fs.pipe(f"{root}/a.png", GOOD_PNG)
        fs.pipe(f"{root}/instances.json", json.dumps(document).encode())
        read(f"memory://{root}/instances.json", "coco", model_type)


@FUZZ
@given(st.sampled_from(["input,concepts\n", "concepts,input\n", "text\n", ""]),
       st.lists(st.lists(st.text(max_size=10), max_size=4).map(lambda cells: ",".join(cells)), max_size=5),
       st.binary(max_size=8))
def test_csv(header: str, rows: list[str], tail: bytes):
    with memory_folder() as (fs, root):
        fs.pipe(f"{root}/texts.csv", (header + "\n".join(rows)).encode() + tail)
        read(f"memory://{root}/texts.csv", "csv", catalog.TEXT_CLASSIFIER)
