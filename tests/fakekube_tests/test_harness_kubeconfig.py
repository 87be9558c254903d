"""The harness reads the kubeconfigs real clusters come with: tokens, inline certificates, namespaces."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from harness.kubeconfig import load_connection


def write(path: Path, cluster: dict, user: dict, namespace: str | None = None) -> Path:
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": context}]}))
    return path


def test_token_and_inline_ca(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"
    config = write(tmp_path / "config", {"server": "https://10.0.0.1:6443/",
                                         "certificate-authority-data": base64.b64encode(ca).decode()},
                   {"token": "s3cret"}, namespace="team-a")
    connection = load_connection(config)
    assert connection.server == "https://10.0.0.1:6443"
    assert connection.headers() == {"Authorization": "Bearer s3cret"}
    assert connection.namespace == "team-a"
    assert connection.ca_file is not None and Path(connection.ca_file).read_bytes() == ca


def test_client_certificate_files_resolve_next_to_the_kubeconfig(tmp_path: Path) -> None:
    config = write(tmp_path / "config", {"server": "https://k:6443", "insecure-skip-tls-verify": True},
                   {"client-certificate": "tls.crt", "client-key": "tls.key"})
    connection = load_connection(config)
    assert connection.client_cert_file == str(tmp_path / "tls.crt")
    assert connection.client_key_file == str(tmp_path / "tls.key")
    assert connection.insecure and connection.headers() == {}


def test_exec_credentials_are_refused_with_a_reason(tmp_path: Path) -> None:
    config = write(tmp_path / "config", {"server": "https://k:6443"}, {"exec": {"command": "aws"}})
    with pytest.raises(ValueError, match="exec and auth-provider credentials are not supported"):
        load_connection(config)
