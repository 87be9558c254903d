"""deeptrain operator: the DeepTrainingJob and Workflow controllers (kopf) and their Kubernetes I/O, built on deeptrain_api."""

__version__ = "0.1.0"
