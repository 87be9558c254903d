"""deeptrain operator: DeepTrainingJob and Workflow controllers (kopf), API models, CRD generation."""

__version__ = "0.1.0"
