"""The operator with both handler sets registered (jobs and Workflows), for the deletion scenarios.

The harness imports this module into a registry of its own, so both handler modules are (re)imported
here for their decorators to register there.
"""

from __future__ import annotations

import importlib
import sys

for _module in ("deeptrain_operator.handlers", "deeptrain_operator.workflows.handlers"):
    if _module in sys.modules:
        importlib.reload(sys.modules[_module])
    else:
        importlib.import_module(_module)
