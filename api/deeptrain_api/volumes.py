"""Where a URI's data is inside the pods: `pvc://CLAIM/PATH` is CLAIM mounted at /mnt/pvc/CLAIM.

Users write and read pvc:// URIs (spec.output.uri, spec.baseModel.uri, status.model.uri); the pods see
the same place as `file:///mnt/pvc/CLAIM/PATH`, which is what the trainer reports. Every consumer
(the trainer config, the pods' volumes, a Workflow's pinned models and index) maps with these.
"""

from __future__ import annotations

from urllib.parse import unquote

from .trainer_contract import PVC_MOUNT_ROOT

PVC_SCHEME = "pvc://"
FILE_SCHEME = "file://"
MOUNTED_PREFIX = f"{FILE_SCHEME}{PVC_MOUNT_ROOT}/"


def file_uri_path(uri: str) -> str:
    """The path a file:// URI names, its percent-escapes decoded (RFC 8089): Path.as_uri(), which
    `deeptrain run --output` uses, writes `/runs/my job` as `file:///runs/my%20job`."""
    return unquote(uri.removeprefix(FILE_SCHEME))


def claim_and_path(uri: str) -> tuple[str | None, str]:
    """(the claim to mount or None, the path the pods read) for a model, dataset or index URI."""
    for prefix in (PVC_SCHEME, MOUNTED_PREFIX):
        if uri.startswith(prefix):
            rest = uri.removeprefix(prefix)
            return rest.split("/", 1)[0] or None, f"{PVC_MOUNT_ROOT}/{rest}"
    return None, file_uri_path(uri) if uri.startswith(FILE_SCHEME) else uri


def claim_of(uri: str | None) -> str | None:
    """The PersistentVolumeClaim behind a URI, in either spelling; None for other schemes."""
    return claim_and_path(uri)[0] if uri else None


def in_pod_uri(uri: str) -> str:
    """The URI the pods use for `uri`: pvc:// as its mount (file:///mnt/pvc/...), anything else as it is."""
    if uri.startswith(PVC_SCHEME):
        return f"{MOUNTED_PREFIX}{uri.removeprefix(PVC_SCHEME)}"
    return uri
