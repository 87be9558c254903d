"""deeptrain API layer: what the operator and the trainer agree on, and nothing else.

The deeptrain.dev/v1alpha1 models of both kinds and the CRDs generated from them, admission (schema,
CEL, catalog checks) and the manifest loader, the catalog of model types, templates and
hyperparameters, the trainer config contract with its rendering from a job, and the workflow pods'
contract. It imports neither torch nor kopf nor aiohttp (.importlinter); the operator, the trainer and
the `deeptrain` command build on it.
"""

from .common import API_VERSION, GROUP, VERSION
from .job import DeepTrainingJob
from .workflow import Workflow

__all__ = ["API_VERSION", "GROUP", "VERSION", "DeepTrainingJob", "Workflow"]
