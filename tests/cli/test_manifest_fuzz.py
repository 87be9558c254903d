"""Fuzzing the manifest loader: whatever the bytes, `deeptrain validate` answers with objects or one ManifestError.

Bounded (a few hundred examples in all, no deadline) so that it fits the CI budget; the same examples
every run (tests/conftest.py), new ones with HYPOTHESIS_PROFILE=explore.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deeptrain_api.manifests import ManifestError, admit, load_objects
from deeptrain_api.yaml_safety import MAX_MANIFEST_BYTES

ROOT = Path(__file__).resolve().parents[2]
JOB = yaml.safe_load((ROOT / "examples" / "visual-classifier.yaml").read_text())
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def load_text(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.yaml"
        path.write_bytes(data)
        try:
            load_objects(path)
        except ManifestError as error:
            assert "\n" not in str(error)


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_get_objects_or_one_manifest_error(data: bytes):
    load_text(data)


@FUZZ
@given(st.lists(st.sampled_from(["a: 1\n", "a: &x [1, 2]\n", "b: *x\n", "- *x\n", "c: .nan\n", "c: .inf\n",
                                 "a: 2\n", "---\n", "  d: {e: f}\n", "<<: *x\n", "kind: Workflow\n", "? [k]\n"]),
                max_size=12))
def test_yaml_features_mixed_at_random(lines: list[str]):
    load_text("".join(lines).encode())


def set_path(document: dict, path: list[str], value: object) -> dict:
    """`document` with the value at `path` (keys of nested mappings, the last one created) replaced."""
    changed = copy.deepcopy(document)
    node = changed
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            return changed
        node = node[key]
    node[path[-1]] = value
    return changed


job_paths = st.sampled_from([
    ["spec", "modelType"], ["spec", "template"], ["spec", "templateScale"], ["spec", "hyperparameters"],
    ["spec", "hyperparameters", "batch_size"], ["spec", "hyperparameters", "image_size"],
    ["spec", "hyperparameters", "per_item_lrate"], ["spec", "dataset"], ["spec", "dataset", "uri"],
    ["spec", "dataset", "validation"], ["spec", "output"], ["spec", "workers"], ["spec", "nprocPerNode"],
    ["spec", "concepts"], ["spec", "resources"], ["spec", "runPolicy"], ["metadata", "name"], ["spec"],
    ["apiVersion"], ["kind"],
])


@settings(FUZZ, max_examples=60)
@given(job_paths, values)
@example(["spec", "hyperparameters"], {"batch_size": 2**63})  # beyond int64: a float64, as the apiserver decodes it
def test_a_job_with_one_field_replaced_is_admitted_or_refused_naming_a_field(path: list[str], value: object):
    document = set_path(JOB, path, value)
    try:
        admit(document)
    except ManifestError as error:
        assert error.field and "\n" not in str(error)


@FUZZ
@given(st.sampled_from(["lrate", "per_item_lrate", "base_gradient_multiplier"]),
       st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_numbers_are_refused_by_name(name: str, value: float):
    hyperparameters = {k: v for k, v in JOB["spec"]["hyperparameters"].items() if not k.endswith("lrate")}
    text = yaml.safe_dump(set_path(JOB, ["spec", "hyperparameters"], {**hyperparameters, name: value}))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "job.yaml"
        path.write_text(text)
        with pytest.raises(ManifestError, match=rf"spec\.hyperparameters\.{name}: -?(nan|inf) is "
                                                r"(not a number|infinite); give a finite number"):
            load_objects(path)


def test_yaml_bombs_duplicates_and_oversize_files_are_refused(tmp_path: Path):
    cases = {
        "laughs": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
                   r"line 2: the alias \*a is not accepted"),
        "duplicate": ("apiVersion: v1\nkind: DeepTrainingJob\nkind: Workflow\n",
                      r"line 3: duplicate key 'kind' \(first given on line 2\); keep one of them"),
        "nested-duplicate": ("spec:\n  hyperparameters:\n    batch_size: 8\n    batch_size: 16\n",
                             r"line 4: duplicate key 'batch_size'"),
        "oversize": ("# " + "x" * MAX_MANIFEST_BYTES + "\n", r"larger than 1024 KiB"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        with pytest.raises(ManifestError, match=expected):
            load_objects(path)
