"""Fixtures of the fault-injection scenarios (`pytest -m faults`).

The scenarios reuse the operator integration suite's fixtures (wait_job, wait_trainer_job, wait_event
and its one-second reconcile interval) and the trainer suite's (trainer_config, colour_squares): those
conftest modules are loaded here under names of their own and their fixtures re-exported, so both
suites wait, time and build configs the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parents[1]
INTEGRATION = TESTS / "operator" / "integration"
TRAINER_TESTS = TESTS / "trainer"

# Their helper modules import each other by bare name, as pytest's default import mode lets them.
for folder in (INTEGRATION, TRAINER_TESTS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _load(path: Path, module_name: str) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


_integration = _load(INTEGRATION / "conftest.py", "faults_integration_fixtures")
_trainer = _load(TRAINER_TESTS / "conftest.py", "faults_trainer_fixtures")

operator_env = _integration.operator_env
wait_job = _integration.wait_job
wait_trainer_job = _integration.wait_trainer_job
wait_event = _integration.wait_event
trainer_config = _trainer.trainer_config
colour_squares = _trainer.colour_squares
