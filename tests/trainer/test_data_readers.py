"""Readers: each format read from tiny fixtures, and each kind of bad entry reported with file:line."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from deeptrain_api import catalog
from deeptrain_trainer.data import DatasetError, ImageRecord, TextRecord, read_records


def png(color: tuple[int, int, int] = (200, 10, 10), size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_jsonl(path: Path, entries: list[dict | str]) -> Path:
    lines = [entry if isinstance(entry, str) else json.dumps(entry) for entry in entries]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "images" / name).write_bytes(png())
    return tmp_path


def box_region(concept: str, top=0.1, left=0.2, bottom=0.5, right=0.6) -> dict:
    return {"region_info": {"bounding_box": {"top_row": top, "left_col": left, "bottom_row": bottom, "right_col": right}},
            "data": {"concepts": [{"id": concept, "value": 1}]}}


def test_imagefolder_concepts_are_folder_names_and_non_images_are_ignored(tmp_path: Path) -> None:
    for concept, names in {"cat": ["1.png", "2.PNG"], "dog": ["3.jpg"]}.items():
        (tmp_path / concept).mkdir()
        for name in names:
            (tmp_path / concept / name).write_bytes(png())
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / ".cache").mkdir()
    records = read_records(str(tmp_path), "imagefolder", catalog.VISUAL_CLASSIFIER, None)
    assert [(Path(r.uri).name, r.concepts) for r in records] == [("1.png", ["cat"]), ("2.PNG", ["cat"]), ("3.jpg", ["dog"])]


def test_imagefolder_anomaly_finds_mvtec_ground_truth_beside_the_root(tmp_path: Path) -> None:
    for folder in ("train/good", "test/good", "test/crack", "ground_truth/crack"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "test/good/000.png").write_bytes(png())
    (tmp_path / "test/crack/000.png").write_bytes(png())
    (tmp_path / "ground_truth/crack/000_mask.png").write_bytes(png((255, 255, 255)))
    records = read_records(str(tmp_path / "test"), "imagefolder", catalog.VISUAL_ANOMALY_HEATMAP, None)
    by_concept = {r.concepts[0]: r for r in records}
    assert by_concept["crack"].is_anomalous and by_concept["crack"].anomaly_mask_uri.endswith("crack/000_mask.png")
    assert not by_concept["good"].is_anomalous and by_concept["good"].anomaly_mask_uri is None


def test_imagefolder_rejects_a_concept_outside_spec_concepts(tmp_path: Path) -> None:
    for concept in ("cat", "dog"):
        (tmp_path / concept).mkdir()
        (tmp_path / concept / "x.png").write_bytes(png())
    with pytest.raises(DatasetError, match="'dog' is not one of spec.concepts") as error:
        read_records(str(tmp_path), "imagefolder", catalog.VISUAL_CLASSIFIER, ["cat"])
    assert error.value.location.endswith("dog")


def test_jsonl_reads_concepts_negatives_boxes_polygons_and_masks(image_dir: Path) -> None:
    mask = base64.b64encode(png((255, 255, 255))).decode()
    path = write_jsonl(image_dir / "data.jsonl", [
        {"id": "first", "image": "images/a.png", "concepts": [{"id": "cat", "value": 1}, {"id": "dog", "value": 0}],
         "regions": [box_region("cat"),
                     {"region_info": {"polygon": {"points": [{"row": 0.1, "col": 0.1}, {"row": 0.1, "col": 0.9},
                                                             {"row": 0.9, "col": 0.5}]}},
                      "data": {"concepts": [{"id": "dog"}]}},
                     {"region_info": {"mask": {"image": {"base64": mask}}}, "data": {"concepts": [{"id": "cat"}]}}]},
        "",
        {"image": str(image_dir / "images" / "b.png")},
    ])
    first, second = read_records(f"file://{path}", "jsonl", catalog.VISUAL_SEGMENTER, None)
    assert isinstance(first, ImageRecord)
    assert first.id == "first" and first.concepts == ["cat"] and first.negative_concepts == ["dog"]
    assert first.uri == str(image_dir / "images" / "a.png")
    assert first.boxes == [(0.2, 0.1, 0.6, 0.5)] and first.box_concepts == ["cat"]
    assert first.masks[0].polygon == ((0.1, 0.1), (0.9, 0.1), (0.5, 0.9))
    assert first.masks[1].image_bytes == png((255, 255, 255))
    assert first.mask_concepts == ["dog", "cat"]
    assert second.id == "line-3" and second.uri == str(image_dir / "images" / "b.png")


def test_jsonl_folder_uri_and_relative_file_uri(image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(image_dir / "data.jsonl", [{"image": "images/a.png", "concepts": [{"id": "cat"}]}])
    monkeypatch.chdir(image_dir.parent)
    records = read_records(f"file://{image_dir.name}", "jsonl", catalog.VISUAL_CLASSIFIER, None)
    assert [r.uri for r in records] == [str(image_dir / "images" / "a.png")]


@pytest.mark.parametrize(("line", "message"), [
    ('{"image": "images/a.png", "concepts": [', "not valid JSON"),
    ('["a list"]', "must be a JSON object"),
    ('{"concepts": [{"id": "cat"}]}', 'missing "image"'),
    ('{"image": "images/a.png", "concepts": [{"value": 1}]}', 'needs a string "id"'),
    ('{"image": "images/a.png", "concepts": [{"id": "bird"}]}', "'bird' is not one of spec.concepts"),
    (json.dumps({"image": "images/a.png", "regions": [box_region("cat", right=1.2)]}), "right_col is outside"),
    (json.dumps({"image": "images/a.png", "regions": [box_region("cat", top=0.6, bottom=0.5)]}), "inverted"),
    (json.dumps({"image": "images/a.png", "regions": [{"region_info": {"polygon": {"points": []}},
                                                       "data": {"concepts": [{"id": "cat"}]}}]}), "at least 3 points"),
    (json.dumps({"image": "images/a.png", "regions": [{"region_info": {"bounding_box": {}},
                                                       "data": {"concepts": [{"id": "cat"}]}}]}), "must be a number"),
    (json.dumps({"image": "images/a.png", "regions": [{"region_info": {"bounding_box": {}}}]}), "region has no concept"),
    (json.dumps({"image": "images/a.png", "regions": [{"region_info": {}, "data": {"concepts": [{"id": "cat"}]}}]}),
     "exactly one of bounding_box, polygon, mask"),
])
def test_jsonl_errors_name_file_and_line(image_dir: Path, line: str, message: str) -> None:
    path = write_jsonl(image_dir / "data.jsonl", ['{"image": "images/b.png", "concepts": [{"id": "cat"}]}', line])
    with pytest.raises(DatasetError, match=message) as error:
        read_records(str(path), "jsonl", catalog.VISUAL_DETECTOR, ["cat", "dog"])
    assert error.value.location == f"{path}:2"
    assert str(error.value).startswith(f"{path}:2: ")


def test_jsonl_text_records(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "great film", "concepts": [{"id": "pos"}]}])
    (record,) = read_records(str(path), "jsonl", catalog.TEXT_CLASSIFIER, None)
    assert record == TextRecord(text="great film", concepts=["pos"], id="line-1", source=f"{path}:1")


def test_jsonl_over_memory_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/readers-test/images/a.png", png())
    fs.pipe("/readers-test/data.jsonl", b'{"image": "images/a.png", "concepts": [{"id": "cat"}]}\n')
    (record,) = read_records("memory://readers-test/data.jsonl", "jsonl", catalog.VISUAL_CLASSIFIER, None)
    assert record.uri == "memory:///readers-test/images/a.png"
    with fsspec.open(record.uri, "rb") as handle:
        assert handle.read() == png()


def coco_document(**overrides: object) -> dict:
    document = {
        "images": [{"id": 7, "file_name": "a.png", "width": 200, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "bbox": [20, 10, 100, 40],
             "segmentation": [[20, 10, 120, 10, 120, 50]]},
            # 2x2 RLE, column-major: one background pixel, then the three others.
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [190, 90, 30, 30], "iscrowd": 1,
             "segmentation": {"counts": [1, 3], "size": [2, 2]}},
        ],
        "categories": [{"id": 2, "name": "cat"}],
    }
    document.update(overrides)
    return document


def test_coco_boxes_polygons_rle_and_images_folder(image_dir: Path) -> None:
    (image_dir / "coco.json").write_text(json.dumps(coco_document()))
    (record,) = read_records(str(image_dir / "coco.json"), "coco", catalog.VISUAL_SEGMENTER, None)
    assert record.uri == str(image_dir / "images" / "a.png")  # found under images/
    assert record.boxes == [(0.1, 0.1, 0.6, 0.5), (0.95, 0.9, 1.0, 1.0)]  # the second clamped to the image
    assert record.concepts == ["cat"] and record.box_concepts == ["cat", "cat"]
    assert record.box_crowd == [False, True]  # a crowd region: ignored by detector training and evaluation
    assert record.masks[0].polygon == ((0.1, 0.1), (0.6, 0.1), (0.6, 0.5))
    rle = np.asarray(Image.open(io.BytesIO(record.masks[1].image_bytes)))
    assert rle.tolist() == [[0, 255], [255, 255]]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"annotations": [{"id": 5, "image_id": 7, "category_id": 2, "bbox": [10, 10, 0, 5]}]}, r"annotations\[0\] \(id 5\): bbox"),
    ({"annotations": [{"id": 5, "image_id": 99, "category_id": 2, "bbox": [1, 1, 5, 5]}]}, "image_id does not name"),
    ({"annotations": [{"id": 5, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5]}]}, "category_id 3"),
    ({"annotations": [{"id": 5, "image_id": 7, "category_id": 2, "bbox": [1, 1, 5, 5],
                       "segmentation": {"counts": "abc", "size": [2, 2]}}]}, "compressed RLE"),
    ({"images": [{"id": 7, "file_name": "a.png"}]}, "positive \"width\""),
    ({"annotations": [{"id": 5, "image_id": 7, "category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 2}]},
     r"annotations\[0\] \(id 5\): iscrowd must be 0 or 1"),
])
def test_coco_errors_name_the_file_and_entry(image_dir: Path, overrides: dict, message: str) -> None:
    path = image_dir / "coco.json"
    path.write_text(json.dumps(coco_document(**overrides)))
    with pytest.raises(DatasetError, match=message) as error:
        read_records(str(path), "coco", catalog.VISUAL_DETECTOR, None)
    assert error.value.location == str(path)


def test_coco_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "coco.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(DatasetError, match="not valid JSON") as error:
        read_records(str(path), "coco", catalog.VISUAL_DETECTOR, None)
    assert error.value.location == f"{path}:2"


def test_csv_reads_multi_concepts_and_quoted_text(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('input,concepts\n"hello, world",greeting\n"two\nlines",a|b\n')
    first, second = read_records(str(path), "csv", catalog.TEXT_CLASSIFIER, None)
    assert (first.text, first.concepts, first.source) == ("hello, world", ["greeting"], f"{path}:2")
    assert (second.text, second.concepts, second.source) == ("two\nlines", ["a", "b"], f"{path}:3")


@pytest.mark.parametrize(("content", "line", "message"), [
    ("text,label\nhi,a\n", 1, "lacks the column"),
    ("input,concepts\nhi,a\nthere,a,extra\n", 3, "expected 2 fields"),
    ("input,concepts\nhi,a\n,a\n", 3, "input text is empty"),
    ("input,concepts\nhi,a\nhello,z\n", 3, "'z' is not one of spec.concepts"),
])
def test_csv_errors_name_file_and_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as error:
        read_records(str(path), "csv", catalog.TEXT_CLASSIFIER, ["a"])
    assert error.value.location == f"{path}:{line}"


def test_format_that_cannot_hold_the_model_type_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="use one of: jsonl, coco"):
        read_records(str(tmp_path), "imagefolder", catalog.VISUAL_DETECTOR, None)
