"""Where the tests run: the in-process fake, or a real cluster named by DEEPTRAIN_TEST_KUBECONFIG."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakekube import FakeKubeServer

from .client import KubeApiError, KubeClient
from .conditions import has_condition

REAL_CLUSTER_ENV = "DEEPTRAIN_TEST_KUBECONFIG"
REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"


@dataclass
class KubeEnv:
    kubeconfig: Path
    fake: FakeKubeServer | None
    crds: list[dict[str, Any]] = field(default_factory=list)
    crd_problem: str | None = None
    crds_refused: bool = False

    @property
    def real(self) -> bool:
        return self.fake is None

    def require_crds(self) -> None:
        """Fail the calling test when the server refused the project's CRDs; skip it while there are none."""
        if self.crds_refused:
            pytest.fail(self.crd_problem or "the CRDs were refused", pytrace=False)
        if self.crd_problem:
            pytest.skip(self.crd_problem)

    def crd_kinds(self) -> list[tuple[str, str]]:
        """(apiVersion, kind) of every installed custom resource, at its storage version."""
        kinds = []
        for crd in self.crds:
            spec = crd["spec"]
            version = next(v["name"] for v in spec["versions"] if v.get("storage"))
            kinds.append((f"{spec['group']}/{version}", spec["names"]["kind"]))
        return kinds


def load_crds(directory: Path = CRD_DIR) -> list[dict[str, Any]]:
    crds = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                crds.append(document)
    return crds


async def install_crds(kubeconfig: Path, crds: list[dict[str, Any]], timeout: float = 60) -> None:
    """Create or update each CRD, then wait until the server serves it (Established)."""
    async with KubeClient(kubeconfig) as kube:
        for crd in crds:
            await kube.apply(crd)
        for crd in crds:
            await kube.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"],
                                None, lambda obj: has_condition(obj, "Established"), timeout,
                                what="Established")


def _install(env: KubeEnv, crd_dir: Path) -> None:
    crds = load_crds(crd_dir) if crd_dir.is_dir() else []
    if not crds:
        env.crd_problem = f"no CustomResourceDefinitions in {crd_dir} yet: tests that need the deeptrain API skip"
        return
    try:
        asyncio.run(install_crds(env.kubeconfig, crds))
    except KubeApiError as error:
        # A refused CRD is a defect of the project (a real apiserver would refuse `helm install` too).
        env.crd_problem = f"installing the CRDs from {crd_dir} failed: {error}"
        env.crds_refused = True
        return
    env.crds = crds


@contextlib.contextmanager
def kube_environment(work_dir: Path, crd_dir: Path = CRD_DIR) -> Iterator[KubeEnv]:
    """The fake (started, with the CRDs installed) unless DEEPTRAIN_TEST_KUBECONFIG names a real cluster."""
    real = os.environ.get(REAL_CLUSTER_ENV)
    if real:
        env = KubeEnv(Path(real), None)
        _install(env, crd_dir)
        yield env
        return
    with FakeKubeServer() as server:
        env = KubeEnv(server.write_kubeconfig(work_dir / "kubeconfig"), server)
        _install(env, crd_dir)
        yield env


def unique_name(prefix: str, test_name: str) -> str:
    """A DNS-1123 name that says which test made it, unique per run."""
    readable = "".join(c if c.isalnum() else "-" for c in test_name.lower()).strip("-")[:30].strip("-")
    return f"{prefix}-{readable}-{secrets.token_hex(3)}"
