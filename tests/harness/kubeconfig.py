"""Reading a kubeconfig's current context into what an HTTP client needs (server, TLS, token)."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Connection:
    server: str
    namespace: str = "default"
    token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username is not None:
            basic = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}


def _named(items: list[dict[str, Any]], name: str, section: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(section) or {}
    raise ValueError(f"kubeconfig has no {section} named {name!r}")


def _file_or_data(entry: dict[str, Any], file_key: str, base_dir: Path) -> str | None:
    """A path for an entry given either as a file or inline as `<key>-data` (written to a private temp file)."""
    if entry.get(f"{file_key}-data"):
        handle, path = tempfile.mkstemp(prefix="kubeconfig-", suffix=".pem")
        with os.fdopen(handle, "wb") as output:
            output.write(base64.b64decode(entry[f"{file_key}-data"]))
        return path
    if entry.get(file_key):
        return str((base_dir / os.path.expanduser(entry[file_key])).resolve())
    return None


def load_connection(path: str | Path) -> Connection:
    path = Path(path)
    config = yaml.safe_load(path.read_text()) or {}
    context_name = config.get("current-context")
    if not context_name:
        raise ValueError(f"{path}: current-context is not set")
    context = _named(config.get("contexts", []), context_name, "context")
    cluster = _named(config.get("clusters", []), context["cluster"], "cluster")
    user = _named(config.get("users", []), context["user"], "user") if context.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise ValueError(f"{path}: exec and auth-provider credentials are not supported; use a token or a client "
                         "certificate")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return Connection(
        server=cluster["server"].rstrip("/"),
        namespace=context.get("namespace", "default"),
        token=token,
        username=user.get("username"),
        password=user.get("password"),
        ca_file=_file_or_data(cluster, "certificate-authority", path.parent),
        client_cert_file=_file_or_data(user, "client-certificate", path.parent),
        client_key_file=_file_or_data(user, "client-key", path.parent),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )
