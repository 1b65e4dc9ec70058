#!/usr/bin/env bash
# The VM smoke run's inside half: runs in the namespace `scripts/test.sh vagrant-smoke`
# made (mailring.drivers.vagrant.confine), beside the libvirtd it started.
#   scripts/vagrant-smoke.sh BOX_FILE [pytest args]
# Adds the box to this run's VAGRANT_HOME, then runs the named subset of tests/cluster
# on Debian VMs (fixtures/topology-vm.yaml): DNS round robin, ownership, a session on
# every VIP for SMTP, POP3 and IMAP, a crash with failover to the predicted nodes and
# failback, a stopped local service served by backups, isolate/heal, and the client
# address logged through every VIP and by a backup (PROXY on).
set -euo pipefail
cd "$(dirname "$0")/.."
box="${1:?usage: scripts/vagrant-smoke.sh BOX_FILE [pytest args]}"
shift
[ -n "${MAILRING_CONFINED:-}" ] || { echo "vagrant-smoke.sh: run it through scripts/test.sh vagrant-smoke" >&2; exit 2; }
topology=fixtures/topology-vm.yaml
name=$("${MAILRING_PY:-.venv/bin}/python" -c 'import sys; from mailring.topology import load; print(load(sys.argv[1]).vagrant.boxes["libvirt"])' "$topology")
t0=$(date +%s)
# not beside the Vagrantfile (it needs a machine list); once per VAGRANT_HOME
if ! (cd / && vagrant box list --machine-readable) | grep -q ",box-name,$name\$"; then
  (cd / && vagrant box add --name "$name" "$box" >/dev/null)
fi
echo "vagrant-smoke: box $name added in $(( $(date +%s) - t0 )) s"
select=(
  tests/cluster/test_dns.py
  tests/cluster/test_ownership.py
  tests/cluster/test_sessions.py
  tests/cluster/test_failover.py
  tests/cluster/test_local_service.py
  tests/cluster/test_isolation.py
  tests/cluster/test_client_address.py
)
# one crash (mail02: its VIPs go to mail01 and mail03), each VM boot costs ~80 s of TCG;
# one node's stopped services; the client address through every VIP on the plain
# SMTP/POP3/IMAP ports (their TLS and submission twins are the same daemons)
keep="test_dns or test_ownership or smtp_banner or pop3_retr or imap_fetch"
keep+=" or (crash_fails_over and mail02) or (local_service_down and mail01) or (isolated_node and mail03)"
keep+=" or (daemon_logs_the_client_through_every_vip and (-smtp] or -pop3] or -imap]))"
keep+=" or (backup_node_logs_the_client and (smtp] or pop3] or imap]))"
# MAILRING_SMOKE_BENCH=1: after green tests, benchmarks/vms.py measures the same VMs
# (status() latency, snapshot restore, crash to failover, boot after crash), then removes them
bench="${MAILRING_SMOKE_BENCH:-}"
rc=0
"${MAILRING_PY:-.venv/bin}/pytest" "${select[@]}" -k "$keep" --driver vagrant --topology "$topology" \
  -p no:randomly -o addopts="--strict-markers -p no:cacheprovider" ${bench:+--keep-cluster} "$@" || rc=$?
if [ -n "$bench" ] && [ "$rc" -eq 0 ]; then
  "${MAILRING_PY:-.venv/bin}/python" benchmarks/vms.py --reuse --topology "$topology" \
    --lab "${MAILRING_LAB:-mailring}" || rc=$?
elif [ -n "$bench" ]; then  # no benchmark after failed tests: the kept VMs go now
  "${MAILRING_PY:-.venv/bin}/mailring" down --driver vagrant --topology "$topology" \
    --lab "${MAILRING_LAB:-mailring}" || true
fi
exit "$rc"
