"""An in-process fake of kube-apiserver for the operator-integration tests (see DESIGN.md, section 6)."""

from .errors import ApiError
from .server import FakeKubeServer

__all__ = ["ApiError", "FakeKubeServer"]
