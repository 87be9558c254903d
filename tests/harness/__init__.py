"""The harness the operator-integration tests run on, against the fake or a real cluster."""

from .client import KubeApiError, KubeClient
from .conditions import assert_condition, find_condition, has_condition, wait_for_condition
from .environment import KubeEnv
from .kubelet import JobPlayer
from .operator_runner import OperatorRunner

__all__ = ["JobPlayer", "KubeApiError", "KubeClient", "KubeEnv", "OperatorRunner", "assert_condition",
           "find_condition", "has_condition", "wait_for_condition"]
