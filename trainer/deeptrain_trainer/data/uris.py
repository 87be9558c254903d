"""Dataset locations: local paths and fsspec URIs, resolved one way everywhere.

Accepted forms:
- `file:///abs/path` and plain absolute paths: the local file system.
- `file://relative/path` and plain relative paths: relative to the current directory. (Strictly,
  `relative` would be a host name in a file URI; the project reads it as a relative path so that
  manifests in a repository can point next to themselves when run with `deeptrain run`.)
- any other `protocol://...` (`s3://`, `gs://`, `https://`, `memory://`, ...): fsspec, which takes
  credentials from the environment (the job's `secretRef` becomes env in the pods).

Resolved URIs are absolute local paths (fast to open in DataLoader workers) or `protocol://path`.
"""

from __future__ import annotations

import os
import posixpath

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from deeptrain_api.volumes import FILE_SCHEME, file_uri_path


def has_protocol(uri: str) -> bool:
    return "://" in uri


def resolve_uri(uri: str) -> str:
    if uri.startswith(FILE_SCHEME):
        return os.path.abspath(file_uri_path(uri))
    if not has_protocol(uri):
        return os.path.abspath(uri)
    return uri


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec file system holding `uri` and the path on it."""
    return fsspec.core.url_to_fs(resolve_uri(uri))


def _to_uri(fs: AbstractFileSystem, path: str) -> str:
    if isinstance(fs, LocalFileSystem):
        return path
    return fs.unstrip_protocol(path)


def parent_uri(uri: str) -> str:
    fs, path = filesystem(uri)
    return _to_uri(fs, fs._parent(path))


def join_uri(base_dir: str, child: str) -> str:
    """`child` as written in an annotation file: a URI, an absolute path on the same file system
    as `base_dir`, or a path relative to `base_dir`."""
    if has_protocol(child):
        return resolve_uri(child)
    fs, base_path = filesystem(base_dir)
    path = child if child.startswith("/") else posixpath.join(base_path, child)
    return _to_uri(fs, posixpath.normpath(path))


def read_bytes(uri: str) -> bytes:
    """Raises FileNotFoundError when there is nothing at `uri`."""
    resolved = resolve_uri(uri)
    if not has_protocol(resolved):
        # Local records are absolute paths; reading them directly skips fsspec's per-call URL parsing,
        # which costs as much as decoding a small image.
        with open(resolved, "rb") as handle:
            return handle.read()
    fs, path = fsspec.core.url_to_fs(resolved)
    return fs.cat_file(path)


def is_dir(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.isdir(path)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def list_dir(uri: str) -> list[tuple[str, bool]]:
    """(name, is_directory) of each entry directly under `uri`, sorted by name."""
    fs, path = filesystem(uri)
    entries = fs.ls(path, detail=True)
    listed = [(posixpath.basename(entry["name"].rstrip("/")), entry["type"] == "directory") for entry in entries]
    return sorted(listed)
