"""A kubeconfig for a plain-HTTP server without authentication."""

from __future__ import annotations

from pathlib import Path

import yaml

CONTEXT = "fakekube"


def write_kubeconfig(path: str | Path, server_url: str, namespace: str = "default") -> Path:
    path = Path(path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
