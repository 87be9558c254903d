"""The operator as deployed once deeptrain_operator.handlers imports the Workflow handlers: both sets registered.

The harness imports this module into a registry of its own; both handler modules are (re)imported
here so that their decorators register into that registry.
"""

from __future__ import annotations

import importlib
import sys

for _module in ("deeptrain_operator.handlers", "deeptrain_operator.workflows.handlers"):
    if _module in sys.modules:
        importlib.reload(sys.modules[_module])
    else:
        importlib.import_module(_module)
