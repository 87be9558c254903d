"""The one error the workflow runtime raises for a graph it cannot run or a request it cannot answer."""

from __future__ import annotations


class WorkflowError(ValueError):
    """str() is one line that names the node or field at fault and how to fix it."""
