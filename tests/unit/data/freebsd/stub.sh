#!/bin/sh
# Stand-ins for the FreeBSD commands provision/freebsd/apply.sh calls, for
# tests/unit/test_freebsd_apply.py: each is a link to this file, named after
# the command. State lives in $STUB_STATE (packages, sysctls, running services,
# mounts, owners); every call that would change the node is appended to
# $STUB_STATE/calls, so a run that changes nothing leaves that file alone.
set -eu
S=$STUB_STATE
mkdir -p "$S/pkg" "$S/sysctl" "$S/running" "$S/own" "$S/kld"
log() { echo "$*" >>"$S/calls"; }
own_file() { echo "$S/own/$(echo "$1" | tr / _)"; }

case "$(basename "$0")" in
uname) echo FreeBSD ;;
id) echo 0 ;;
pkg)
	case "$1" in
	-N) exit 0 ;;
	info) [ -e "$S/pkg/$3" ] ;;
	install | bootstrap)
		# pkg asks "Ignore the mismatch and continue?" (default no) when the box
		# is older than the package set; non-interactive runs then fail.
		[ "${IGNORE_OSVERSION:-}" = yes ] || { echo "pkg: ABI mismatch; answer no" >&2; exit 1; }
		shift
		for p in "$@"; do case "$p" in -*) ;; *) touch "$S/pkg/$p" ;; esac; done
		log "pkg install $*" ;;
	esac ;;
dovecot) echo "${STUB_DOVECOT_VERSION:-2.3.21.1} (47349e2482)" ;;
sysrc) # sysrc -f FILE [-c] name=value
	file=$2
	shift 2
	check=no
	[ "$1" = -c ] && { check=yes; shift; }
	name=${1%%=*} value=${1#*=}
	touch "$file"
	if [ $check = yes ]; then grep -qx "$name=\"$value\"" "$file"; exit; fi
	grep -v "^$name=" "$file" >"$file.new" || true
	echo "$name=\"$value\"" >>"$file.new"
	mv "$file.new" "$file"
	log "sysrc $name=$value" ;;
sysctl)
	if [ "$1" = -n ]; then
		cat "$S/sysctl/$2" 2>/dev/null || case "$2" in net.inet.carp.allow) echo 1 ;; *) echo 0 ;; esac
	else
		echo "${1#*=}" >"$S/sysctl/${1%%=*}"
		log "sysctl $1"
	fi ;;
kldstat) [ -e "$S/kld/$3" ] ;;
kldload) touch "$S/kld/$1"; log "kldload $1" ;;
ifconfig)
	case "$*" in
	"-l ether") echo "em0 em1" ;;
	"em0 inet") printf 'em0: flags=8843<UP>\n\tinet 10.0.2.15 netmask 0xffffff00 broadcast 10.0.2.255\n' ;;
	"em1 inet") printf 'em1: flags=8843<UP>\n\tinet %s netmask 0xffffff00 broadcast x\n' "$STUB_ADDRESS" ;;
	*) exit 1 ;;
	esac ;;
service)
	svc=$1 verb=$2
	if [ "$svc" = mailring_carp ]; then # its status is net.inet.carp.allow
		case "$verb" in
		status) [ "$(cat "$S/sysctl/net.inet.carp.allow" 2>/dev/null || echo 1)" = 1 ]; exit ;;
		start) echo 1 >"$S/sysctl/net.inet.carp.allow" ;;
		esac
	fi
	case "$verb" in
	status | onestatus) [ -e "$S/running/$svc" ]; exit ;;
	start | restart | reload) touch "$S/running/$svc" ;;
	esac
	log "service $*" ;;
stat) # BSD stat -f FORMAT FILE, for the formats apply.sh uses
	fmt=$2 file=$3
	o=$(cat "$(own_file "$file")" 2>/dev/null || echo "0:0:wheel")
	mode=$(/usr/bin/stat -L -c %a "$file")
	echo "$fmt" | sed -e "s/%Lp/$mode/; s/%Sg/$(echo "$o" | cut -d: -f3)/; s/%u/$(echo "$o" | cut -d: -f1)/; s/%g/$(echo "$o" | cut -d: -f2)/" ;;
install) # install [-d] [-m MODE] [-o OWNER] [-g GROUP] ...: owners recorded, not set
	dir="" mode=0755 owner=0 group=wheel
	while [ $# -gt 0 ]; do
		case "$1" in
		-d) dir=-d ;;
		-m) mode=$2; shift ;;
		-o) owner=$2; shift ;;
		-g) group=$2; shift ;;
		*) break ;;
		esac
		shift
	done
	/usr/bin/install $dir -m "$mode" "$@"
	for last in "$@"; do :; done
	echo "$owner:$group:$group" >"$(own_file "$last")"
	log "install $last" ;;
mount)
	if [ "$1" = -t ]; then cat "$S/mounts" 2>/dev/null || true; exit 0; fi
	# NFS: the mount point becomes the client node's export (a link to it)
	rmdir "$ROOT$1"
	ln -s "$STUB_EXPORT" "$ROOT$1"
	echo "server:$1 on $1 (nfs)" >>"$S/mounts"
	log "mount $1" ;;
showmount) printf 'Exports list on %s:\n%s  x\n' "$2" "$STUB_EXPORTED" ;;
certctl) log "certctl $*" ;;
haproxy | postfix | doveconf | nginx | pfctl | nsd-checkconf | unbound-checkconf) exit 0 ;;
*) echo "stub.sh: no stand-in for $(basename "$0")" >&2; exit 3 ;;
esac
