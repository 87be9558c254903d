"""The errors the workflow runtime raises for a graph it cannot run or a request it cannot answer."""

from __future__ import annotations


class WorkflowError(ValueError):
    """str() is one line that names the node or field at fault and how to fix it.

    `status` is the HTTP status the serving process answers with when a request caused it.
    """

    status = 400


class TooLarge(WorkflowError):
    """The request is over one of the server's documented limits (body size, image pixels)."""

    status = 413


class Unprocessable(WorkflowError):
    """The request is well formed but its content cannot be used (not an image, a non-finite vector)."""

    status = 422
