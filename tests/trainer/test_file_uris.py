"""file:// URIs name the path their percent-escapes decode to, as `deeptrain run --output` writes them
(Path.as_uri()): an output or dataset directory with a space or a plus in its name is that directory,
not one named with the escapes."""

from __future__ import annotations

from pathlib import Path

from deeptrain_api.volumes import claim_and_path
from deeptrain_trainer.artifacts import OutputDir
from deeptrain_trainer.data.uris import list_dir, read_bytes


def test_an_output_directory_with_a_space_and_a_plus_in_its_name(tmp_path: Path) -> None:
    wanted = tmp_path / "my runs" / "a+b"
    uri = wanted.as_uri()
    assert "%20" in uri and "%2B" in uri

    output = OutputDir(uri)

    assert output.path("model.json") == wanted / "model.json"
    assert not output.is_remote
    assert claim_and_path(uri) == (None, str(wanted))


def test_a_dataset_directory_with_a_space_in_its_name_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "my data"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "one.txt").write_bytes(b"meow")

    assert [name.rsplit("/", 1)[-1] for name, _ in list_dir(folder.as_uri())] == ["cats"]
    assert read_bytes((folder / "cats" / "one.txt").as_uri()) == b"meow"
