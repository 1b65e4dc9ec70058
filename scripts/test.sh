#!/usr/bin/env bash
# Run mailring's tests with the venv that scripts/setup.sh made.
#   scripts/test.sh unit   the project's own tests: no root, no cluster
#   scripts/test.sh lab    the cluster suite on the lab driver (needs root)
#   scripts/test.sh all    unit, lint, then the lab suite (what CI runs)
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
shift || true
py=.venv/bin
case "$what" in
  unit) exec "$py/pytest" tests/unit "$@" ;;
  lab)  exec "$py/pytest" tests/cluster --driver lab "$@" ;;
  lint) exec "$py/ruff" check mailring tests conftest.py ;;
  all)
    "$py/ruff" check mailring tests conftest.py
    "$py/pytest" tests/unit "$@"
    exec "$py/pytest" tests/cluster --driver lab "$@"
    ;;
  *) echo "usage: scripts/test.sh unit|lab|lint|all [pytest args]" >&2; exit 2 ;;
esac
