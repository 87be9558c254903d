"""The deeptrain.dev/v1alpha1 API: typed models per kind, the CRDs generated from them, and admission checks."""

from .common import API_VERSION, GROUP, VERSION
from .job import DeepTrainingJob
from .workflow import Workflow

__all__ = ["API_VERSION", "GROUP", "VERSION", "DeepTrainingJob", "Workflow"]
