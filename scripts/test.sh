#!/usr/bin/env bash
# Run mailring's tests with the venv that scripts/setup.sh made.
#   scripts/test.sh unit   the project's own tests: no root, no cluster
#   scripts/test.sh lab    the cluster suite on the lab driver (needs root)
#   scripts/test.sh all    unit, lint, then the lab suite (what CI runs)
# Extra arguments go to pytest. Each pytest run writes JUnit XML to runs/junit-<unit|lab>.xml.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
shift || true
py=.venv/bin
mkdir -p runs
junit() { echo "--junitxml=runs/junit-$1.xml"; }
case "$what" in
  unit) exec "$py/pytest" tests/unit "$(junit unit)" "$@" ;;
  lab)  exec "$py/pytest" tests/cluster --driver lab "$(junit lab)" "$@" ;;
  lint) exec "$py/ruff" check mailring tests conftest.py ;;
  all)
    "$py/ruff" check mailring tests conftest.py
    "$py/pytest" tests/unit "$(junit unit)" "$@"
    exec "$py/pytest" tests/cluster --driver lab "$(junit lab)" "$@"
    ;;
  *) echo "usage: scripts/test.sh unit|lab|lint|all [pytest args]" >&2; exit 2 ;;
esac
