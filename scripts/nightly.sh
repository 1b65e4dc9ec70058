#!/usr/bin/env bash
# The nightly run, one entry point any CI system can call (.github/workflows/nightly.yml does):
# set up, run the cluster suite and every scenario file on the chosen driver, keep each run
# folder (history, verdict, JUnit, node logs, report.html) under runs/, exit non-zero on failure.
#
#   scripts/nightly.sh [lab|vagrant]        default: $MAILRING_DRIVER, else lab
#
# The suite runs as tox runs it (tox -e lab, tox -e cluster for Vagrant), the scenarios with
# `mailring scenario`. Everything goes on after a failure, so one night shows every problem.
# Exit: 0 all passed; 1 a test or a scenario expectation failed; 2 set-up or input was broken.
# Env: MAILRING_RUNS (default ./runs), MAILRING_LAB, NIGHTLY_SCENARIOS (a glob, default
# fixtures/scenarios/*.yaml), NIGHTLY_SKIP_SETUP=1 when the machine is already set up.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

driver="${1:-${MAILRING_DRIVER:-lab}}"
case "$driver" in
  lab) suite_env=lab ;;
  vagrant) suite_env=cluster ;;
  *) echo "nightly.sh: driver '$driver': use lab or vagrant" >&2; exit 2 ;;
esac
export MAILRING_DRIVER="$driver"
export MAILRING_RUNS="${MAILRING_RUNS:-$PWD/runs}"
mkdir -p "$MAILRING_RUNS"

if [ "${NIGHTLY_SKIP_SETUP:-0}" != 1 ]; then
  scripts/setup.sh || { echo "nightly.sh: scripts/setup.sh failed" >&2; exit 2; }
fi
[ -x .venv/bin/tox ] || { echo "nightly.sh: .venv/bin/tox missing; run scripts/setup.sh" >&2; exit 2; }

worst=0
record() {  # keep the worst status: 2 (could not run) over 1 (a failure) over 0
  local rc=$1 what=$2 class=0
  echo "nightly.sh: $what: exit $rc"
  if [ "$rc" -eq 1 ]; then class=1; elif [ "$rc" -ne 0 ]; then class=2; fi
  if [ "$class" -gt "$worst" ]; then worst=$class; fi
}

echo "nightly.sh: cluster suite on the $driver driver (tox -e $suite_env)"
.venv/bin/tox -e "$suite_env" -- --junitxml="$MAILRING_RUNS/nightly-suite-junit.xml"
record $? "suite"

shopt -s nullglob
# shellcheck disable=SC2206  # the glob is meant to expand
scenarios=(${NIGHTLY_SCENARIOS:-fixtures/scenarios/*.yaml})
if [ "${#scenarios[@]}" -eq 0 ]; then
  echo "nightly.sh: no scenario files matched" >&2
  record 2 "scenarios"
else
  for file in "${scenarios[@]}"; do
    echo "nightly.sh: scenario $file"
    .venv/bin/mailring scenario --driver "$driver" "$file"
    record $? "scenario $file"
  done
fi

echo "nightly.sh: run folders in $MAILRING_RUNS (open <run>/report.html); exit $worst"
exit "$worst"
