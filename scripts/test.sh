#!/usr/bin/env bash
# Run mailring's tests with the venv that scripts/setup.sh made.
#   scripts/test.sh unit   the project's own tests: no root, no cluster
#   scripts/test.sh lab    the cluster suite on the lab driver (needs root), in
#                          MAILRING_WORKERS (default 5) pytest-xdist workers, a lab each
#   scripts/test.sh all    unit, lint, then the lab suite (CI runs it, then vagrant-smoke)
#   scripts/test.sh vagrant-smoke
#                          a subset of the suite on Debian VMs (libvirt, QEMU), with
#                          libvirtd, the VMs and the tests in a namespace made for the
#                          run (root; see docs/vagrant.md). Env MAILRING_LAB names it,
#                          MAILRING_SMOKE_LIMIT_S bounds it (default 2400 s).
# Extra arguments go to pytest. Each pytest run writes JUnit XML to runs/junit-<unit|lab|vagrant-smoke>.xml.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
shift || true
py="${MAILRING_PY:-.venv/bin}"  # tox sets its own env's bin
# Compiled modules are cached in __pycache__ (Python's default) also where the environment
# sets PYTHONDONTWRITEBYTECODE (some CI images and sandboxes do): a lab run starts hundreds
# of Python processes (xdist workers, node inits, probe agents, CLI runs), and without the
# cache each one compiles mailring from source again, and pytest rewrites every test module.
unset PYTHONDONTWRITEBYTECODE
mkdir -p runs
junit() { echo "--junitxml=runs/junit-$1.xml"; }
# the lab suite mostly waits on protocol timers: five labs side by side on two cores (an idle
# lab takes about a fifteenth of a core, most of it HAProxy's checks; five workers left the
# cores idle 20-30 s of a run where four left them idle 36-52 s). Each worker gets its next
# test when it is nearly done (loadgroup: the tests on the PROXY-off second lab stay in one
# worker); the plugin orders the long tests first, so the quick ones even out the ends.
workers="-n ${MAILRING_WORKERS:-5} --dist loadgroup"
case "$what" in
  unit) exec "$py/pytest" tests/unit "$(junit unit)" "$@" ;;
  lab)  exec "$py/pytest" tests/cluster --driver lab $workers "$(junit lab)" "$@" ;;
  lint) exec "$py/ruff" check mailring tests conftest.py ;;
  vagrant-smoke)
    t0=$(date +%s)
    # the box is built in this namespace (it fetches Debian packages), then everything
    # else runs confined; the confinement removes all it made, also on failure and Ctrl-C
    box=$(provision/boxes/debian.sh)
    rc=0
    # bounded: at the limit the confinement gets SIGTERM, stops the tests and removes the VMs
    limit="${MAILRING_SMOKE_LIMIT_S:-2400}"
    timeout -s TERM -k 300 "$limit" \
    "$py/python" -m mailring.drivers.vagrant.confine --lab "${MAILRING_LAB:-smoke}" \
      --network "$("$py/python" -c 'import sys; from mailring.topology import load; print(load(sys.argv[1]).network)' fixtures/topology-vm.yaml)" \
      -- scripts/vagrant-smoke.sh "$box" "$(junit vagrant-smoke)" "$@" || rc=$?
    [ "$rc" -ne 124 ] || echo "vagrant-smoke: stopped at its time limit of $limit s (MAILRING_SMOKE_LIMIT_S)" >&2
    echo "vagrant-smoke: exit $rc after $(( $(date +%s) - t0 )) s"
    exit "$rc"
    ;;
  all)
    "$py/ruff" check mailring tests conftest.py
    "$py/pytest" tests/unit "$(junit unit)" "$@"
    exec "$py/pytest" tests/cluster --driver lab $workers "$(junit lab)" "$@"
    ;;
  *) echo "usage: scripts/test.sh unit|lab|lint|all|vagrant-smoke [pytest args]" >&2; exit 2 ;;
esac
