"""deeptrain trainer: what the torchrun pods (and `deeptrain run`) execute."""

__version__ = "0.1.0"
