"""Bearer-token authentication of the serving API.

Tokens come from the environment (DEEPTRAIN_SERVE_TOKENS: one or more, separated by whitespace or
commas), which in the cluster the operator fills from the Secret named in `spec.serve.auth`.
Every presented token is compared with every configured one in constant time, so neither the
answer's timing nor its content tells how much of a token was right. Probes, metrics and the
OpenAPI document stay open: kubelets and scrapers carry no token.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable

from deeptrain_api.workflow_contract import HEALTH_PATH, METRICS_PATH, OPENAPI_PATH, READY_PATH

OPEN_PATHS = frozenset({HEALTH_PATH, READY_PATH, METRICS_PATH, OPENAPI_PATH})
SCHEME = "Bearer"
CHALLENGE = f'{SCHEME} realm="deeptrain"'


def parse_tokens(text: str) -> tuple[bytes, ...]:
    return tuple(token.encode() for token in re.split(r"[\s,]+", text) if token)


class BearerTokens:
    def __init__(self, tokens: Iterable[bytes]):
        self.tokens = tuple(tokens)
        if not self.tokens:
            raise ValueError("authentication is configured but holds no token")

    def allows(self, authorization: str | None) -> bool:
        scheme, _, presented = (authorization or "").strip().partition(" ")
        candidate = presented.strip().encode("utf-8", "replace")
        matched = False
        for token in self.tokens:  # no early exit: the time taken does not depend on which token matched
            matched |= hmac.compare_digest(candidate, token)
        return matched and scheme.lower() == SCHEME.lower()
