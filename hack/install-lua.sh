#!/usr/bin/env bash
# Installs the Lua runtime the Argo CD health-check tests use (tests/gitops). Argo CD evaluates
# health.lua with gopher-lua, which implements Lua 5.1; lupa bundles a real Lua 5.1 (lupa.lua51)
# in its wheel, so the tests run the scripts under the same language version without a system
# package. Idempotent: pip leaves an already-installed pinned version alone.
#
#   bash hack/install-lua.sh                 # into .venv
#   PYTHON=python3 bash hack/install-lua.sh  # into another interpreter's environment
set -euo pipefail

LUPA_VERSION="2.8"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"

if "$python" -c "import lupa, lupa.lua51, sys; sys.exit(lupa.__version__ != '$LUPA_VERSION')" 2>/dev/null; then
  echo "lupa $LUPA_VERSION already installed"
  exit 0
fi
"$python" -m pip install --quiet "lupa==$LUPA_VERSION"
"$python" -c "import lupa.lua51; print('lupa', lupa.lua51.LuaRuntime().eval('_VERSION'))"
