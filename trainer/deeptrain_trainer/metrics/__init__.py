"""Evaluation metrics, one module per family, named like the platform's evaluation summary.

Plain NumPy on purpose: they run on rank 0 over gathered predictions, once per evaluation.
"""
