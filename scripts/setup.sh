#!/usr/bin/env bash
# Install what mailring needs on a Debian 12 machine, as root:
#   - the real daemons and tools the lab runs (apt; none is started),
#   - a virtualenv .venv with mailring and its test dependencies (PyPI).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  haproxy postfix dovecot-imapd dovecot-pop3d nginx-light nsd unbound ucarp keepalived
  nftables
  iproute2 util-linux mount socat openssl ca-certificates
  python3 python3-yaml python3-dnspython
  swaks dnsutils curl iputils-arping
  shellcheck vagrant vagrant-libvirt
  mmdebstrap
  # the VM smoke (scripts/test.sh vagrant-smoke): libvirt + QEMU, and the box builder's tools
  libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
  dnsmasq-base extlinux e2fsprogs fdisk
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 2
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix without a main.cf: mailring renders its own per node.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test,vagrant]'
echo "setup.sh: ready (.venv/bin/mailring, .venv/bin/pytest)"
