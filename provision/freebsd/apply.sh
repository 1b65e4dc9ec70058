#!/bin/sh
# apply.sh [BUNDLE]: install one node's rendered mailring bundle on FreeBSD.
#
# BUNDLE (default: this script's folder) is what `mailring render --flavour
# freebsd` wrote for the node: a tree mirroring "/" plus the fragments in
# usr/local/etc/mailring/. Every address, vhid and name comes from there
# (node.env and the rendered files); this script holds FreeBSD mechanics only.
# Idempotent: each step compares first and changes only what differs, so a
# second run changes nothing and restarts nothing; the last line is the change
# report ("changed: <what> ..." or "nothing to change"). Run as root.
#
# ROOT (environment, default empty) prefixes every file path of the node, so
# the unit tests run the script against a fake root with stand-in commands.
set -eu

BUNDLE=${1:-$(dirname "$0")}
ENV_FILE="$BUNDLE/usr/local/etc/mailring/node.env"
if [ ! -r "$ENV_FILE" ]; then
	echo "apply.sh: $ENV_FILE not found; pass the node's folder rendered by" \
		"'mailring render --flavour freebsd'" >&2
	exit 2
fi
# shellcheck source=/dev/null
. "$ENV_FILE"
ROOT=${ROOT:-}
FRAG="$BUNDLE$MAILRING_ETC"
# pkg asks before installing packages built for a newer FreeBSD than the box
# (a 14.0 box and the 14.x package set), default no, so a provisioner would
# fail: skip the question (FACTS section 10).
export IGNORE_OSVERSION=yes ASSUME_ALWAYS_YES=yes
# pkg's daemons and checkers (haproxy, doveconf, nsd-checkconf ...), whatever
# PATH the provisioner's sudo left us
PATH="$PATH:/usr/local/sbin:/usr/local/bin"
CHANGED=" "

say() { printf 'mailring-apply[%s]: %s\n' "$NODE" "$*"; }
die() { printf 'mailring-apply[%s]: ERROR: %s\n' "$NODE" "$*" >&2; exit 1; }
mark() { case "$CHANGED" in *" $1 "*) ;; *) CHANGED="$CHANGED$1 " ;; esac; }
changed() { case "$CHANGED" in *" $1 "*) return 0 ;; esac; return 1; }

[ "$(uname -s)" = FreeBSD ] || die "this script configures FreeBSD nodes only"
[ "$(id -u)" -eq 0 ] || die "run as root (the Vagrantfile's shell provisioner uses sudo)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mailring-apply.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# --- packages --------------------------------------------------------------
install_packages() {
	if ! pkg -N >/dev/null 2>&1; then
		say "bootstrapping pkg"
		pkg bootstrap -f
	fi
	missing=""
	for p in $PACKAGES; do
		pkg info -e "$p" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		say "installing:$missing"
		# shellcheck disable=SC2086 # a list of package names
		pkg install -y $missing
		mark packages
	fi
	if [ "$ROLE" = client ]; then
		# dnspython for the probe, flavoured like the installed python3 (py311-, py312-, ...)
		py=$(python3 -c 'import sys; print("py%d%d" % sys.version_info[:2])')
		if ! pkg info -e "$py-dnspython"; then
			say "installing $py-dnspython"
			pkg install -y "$py-dnspython"
			mark packages
		fi
	fi
}

check_dovecot() {
	[ "$ROLE" = mail ] || return 0
	v=$(dovecot --version | cut -d' ' -f1)
	case "$v" in
	"$DOVECOT_SERIES" | "$DOVECOT_SERIES".*) ;;
	*) die "Dovecot $v is installed, but this bundle's dovecot.conf is for Dovecot" \
		"$DOVECOT_SERIES (the topology's dovecot_version). Set dovecot_version to" \
		"\"$(echo "$v" | cut -d. -f1-2)\" and render again, or remove the installed package" \
		"(pkg: dovecot is 2.3, dovecot24 is 2.4; they conflict)." ;;
	esac
}

# --- files -----------------------------------------------------------------
owner_of() {
	case "$1" in
	"$HAPROXY_CFG" | "$HAPROXY_CERTS"/*) echo haproxy ;;
	/usr/local/etc/rc.d/mailring_carp) echo mailring_carp ;;
	"$POSTFIX_DIR"/*) echo postfix ;;
	"$DOVECOT_DIR"/users) echo users ;; # passwd-file is re-read on change: no restart
	"$DOVECOT_DIR"/*) echo dovecot ;;
	"$NGINX_CONF") echo nginx ;;
	"$NSD_DIR"/*) echo nsd ;;
	"$UNBOUND_DIR"/*) echo unbound ;;
	"$CERTS_DIR"/*) echo certs ;;
	"$PF_CONF") echo pf ;;
	"$NTP_CONF") echo ntpd ;;
	"$SYSLOG_DIR"/*) echo syslogd ;;
	*) echo files ;;
	esac
}

group_of() { # Dovecot's auth process runs as user dovecot and reads the passwd-file
	case "$1" in
	"$DOVECOT_DIR"/users) echo dovecot ;;
	*) echo wheel ;;
	esac
}

install_files() {
	(cd "$BUNDLE" && find usr -type f) | sort >"$TMP/files"
	while IFS= read -r rel; do
		src="$BUNDLE/$rel"
		dest="$ROOT/$rel"
		mode=$(stat -f '%Lp' "$src")
		group=$(group_of "/$rel")
		if cmp -s "$src" "$dest" && [ "$(stat -f '%Lp:%Sg' "$dest")" = "$mode:$group" ]; then
			continue
		fi
		install -d -m 0755 "$(dirname "$dest")"
		install -m "$mode" -o root -g "$group" "$src" "$dest"
		say "installed /$rel"
		mark "$(owner_of "/$rel")"
	done <"$TMP/files"
}

# --- rc.conf, loader.conf, sysctl.conf ---------------------------------------
apply_sysrc() { # TARGET_FILE SETTINGS_FILE: name=value lines (value may be "quoted")
	while IFS= read -r line; do
		case "$line" in '' | '#'*) continue ;; esac
		name=${line%%=*}
		value=${line#*=}
		value=${value#\"}
		value=${value%\"}
		if ! sysrc -f "$1" -c "$name=$value" >/dev/null 2>&1; then
			sysrc -f "$1" "$name=$value" >/dev/null
			say "set $name=\"$value\" in $1"
			mark "${name%%_*}" # haproxy_flags -> haproxy
		fi
	done <"$2"
}

apply_sysctl() { # SETTINGS_FILE: name=value lines for /etc/sysctl.conf and the running kernel
	while IFS= read -r line; do
		case "$line" in '' | '#'*) continue ;; esac
		name=${line%%=*}
		value=${line#*=}
		if ! grep -qxF "$line" "$ROOT/etc/sysctl.conf" 2>/dev/null; then
			touch "$ROOT/etc/sysctl.conf"
			grep -v "^$name=" "$ROOT/etc/sysctl.conf" >"$TMP/sysctl.conf" || true
			echo "$line" >>"$TMP/sysctl.conf"
			cat "$TMP/sysctl.conf" >"$ROOT/etc/sysctl.conf"
			say "set $line in /etc/sysctl.conf"
			mark sysctl
		fi
		if [ "$(sysctl -n "$name")" != "$value" ]; then
			sysctl "$line" >/dev/null
			mark sysctl
		fi
	done <"$1"
}

# Keep BLOCK_FILE's lines in FILE between "# mailring-<tag>-begin/end"
# markers, appended after anything else (so outside Vagrant's block in
# rc.conf). Returns 0 when FILE changed, 1 when it already matched.
merge_block() { # FILE TAG BLOCK_FILE
	begin="# mailring-$2-begin (managed by mailring apply.sh)"
	end="# mailring-$2-end"
	touch "$1"
	sed -n "/^# mailring-$2-begin/,/^# mailring-$2-end/p" "$1" | sed '1d;$d' >"$TMP/current"
	if cmp -s "$TMP/current" "$3" && grep -q "^# mailring-$2-end" "$1"; then
		return 1
	fi
	sed "/^# mailring-$2-begin/,/^# mailring-$2-end/d" "$1" >"$TMP/merged"
	{ echo "$begin"; cat "$3"; echo "$end"; } >>"$TMP/merged"
	cat "$TMP/merged" >"$1"
	say "updated the mailring-$2 block in ${1#"$ROOT"}"
	return 0
}

cluster_if() { # the NIC holding this node's cluster address (Vagrant configured it)
	for i in $(ifconfig -l ether); do
		if ifconfig "$i" inet | grep -qF "inet $ADDRESS "; then
			echo "$i"
			return 0
		fi
	done
	die "no interface holds $ADDRESS (ifconfig -l ether: $(ifconfig -l ether));" \
		"is the Vagrant private network up?"
}

# CARP (mail nodes) and the node's aliases on the cluster NIC: one block of
# ifconfig_<if>_aliasN lines in rc.conf (CARP vhids first, then the node's
# plain `aliases`, e.g. the client's second source address).
setup_aliases() {
	if [ "$ROLE" = mail ]; then
		# carp_load and the tunable net.inet.carp.allow=0 (CARP held from boot
		# until rc.d/mailring_carp sees the daemons answer); dotted names are
		# not sysrc's, so the fragment is a block of its own.
		if merge_block "$ROOT/boot/loader.conf" mailring "$FRAG/loader.conf"; then mark loader; fi
		kldstat -q -m carp || { kldload carp && say "loaded carp" && mark carp; }
		apply_sysctl "$FRAG/sysctl.conf"
	fi
	ifc=$(cluster_if)
	[ -d "$ROOT$MAILRING_ETC" ] || install -d -m 0755 "$ROOT$MAILRING_ETC"
	echo "$ifc" >"$TMP/cluster_if"
	if ! cmp -s "$TMP/cluster_if" "$ROOT$MAILRING_ETC/cluster_if"; then
		install -m 0644 "$TMP/cluster_if" "$ROOT$MAILRING_ETC/cluster_if"
	fi
	sed "s/$IF_PLACEHOLDER/$ifc/g" "$FRAG/aliases.rc.conf" >"$TMP/aliases"
	if merge_block "$ROOT/etc/rc.conf" carp "$TMP/aliases"; then
		if [ "$ROLE" = mail ]; then
			# new vhids stay in INIT until the daemons answer (mailring_carp start)
			sysctl net.inet.carp.allow=0 >/dev/null
			mark mailring_carp
			mark haproxy # its VIP binds went away with the old aliases
		fi
		say "restarting $ifc for its aliases"
		service netif restart "$ifc"
		mark aliases
	fi
}

# --- shared mail store (NFS from the client node) -------------------------------
setup_store() {
	if [ "$ROLE" = client ]; then
		if [ ! -d "$ROOT$MAIL_STORE" ] ||
			[ "$(stat -f '%u:%g:%Lp' "$ROOT$MAIL_STORE")" != "$MAIL_UID:$MAIL_UID:770" ]; then
			install -d -o "$MAIL_UID" -g "$MAIL_UID" -m 0770 "$ROOT$MAIL_STORE"
			mark store
		fi
		if merge_block "$ROOT/etc/exports" mailring "$FRAG/exports"; then mark mountd; fi
		for s in rpcbind statd lockd mountd nfsd; do
			service "$s" status >/dev/null 2>&1 || { service "$s" start && mark "$s"; }
		done
		if changed mountd; then service mountd reload; fi
		return 0
	fi
	# Only create the mount point: once the store is mounted, a chmod here
	# would change the export's own mode (0770, set by the client node), and
	# the two nodes' runs would flip it back and forth.
	[ -d "$ROOT$MAIL_STORE" ] || install -d -m 0755 "$ROOT$MAIL_STORE"
	if merge_block "$ROOT/etc/fstab" mailring "$FRAG/fstab"; then mark fstab; fi
	# NLM locking on the client side too (Dovecot's fcntl locks on the store)
	for s in rpcbind statd lockd; do
		service "$s" status >/dev/null 2>&1 || { service "$s" start && mark "$s"; }
	done
	mount -t nfs | grep -q " on $MAIL_STORE (" && return 0
	n=0
	until showmount -e "$NFS_SERVER" 2>/dev/null | grep -q "^$MAIL_STORE "; do
		n=$((n + 1))
		[ "$n" -le 90 ] || die "$NFS_SERVER does not export $MAIL_STORE after 3 minutes;" \
			"provision the client node first (the machine list puts it first)"
		sleep 2
	done
	mount "$MAIL_STORE"
	say "mounted $MAIL_STORE from $NFS_SERVER"
	mark store
}

# --- the rest of the base system ---------------------------------------------------
setup_system() {
	if merge_block "$ROOT/etc/hosts" mailring "$FRAG/hosts"; then mark hosts; fi
	if changed certs; then certctl rehash && say "rehashed the trust store"; fi
	if [ -n "${SUDO_USER:-}" ]; then
		# The vagrant driver quotes commands for sh; official boxes log in with csh.
		case "$(pw usershow "$SUDO_USER" | cut -d: -f10)" in
		*csh) pw usermod "$SUDO_USER" -s /bin/sh && say "login shell of $SUDO_USER is now /bin/sh" ;;
		esac
	fi
	if [ "$ROLE" = mail ]; then
		mkdir -p "$ROOT/usr/local/etc/mail"
		if ! cmp -s "$ROOT/usr/local/share/postfix/mailer.conf.postfix" "$ROOT/usr/local/etc/mail/mailer.conf"; then
			install -m 0644 "$ROOT/usr/local/share/postfix/mailer.conf.postfix" "$ROOT/usr/local/etc/mail/mailer.conf"
			say "mailwrapper now runs Postfix"
			mark mailer
		fi
		# syslogd writes only to files that exist; a new rule or file needs a reload
		# (HAProxy logs to syslogd, syslog.d/mailring-haproxy.conf files local0 here).
		[ -e "$ROOT$LOG_DIR/haproxy.log" ] || { install -m 0600 /dev/null "$ROOT$LOG_DIR/haproxy.log" && mark syslogd; }
		if changed syslogd; then service syslogd reload; fi
		if changed sendmail; then service sendmail onestop >/dev/null 2>&1 || true; fi
		[ -d "$ROOT$WEBMAIL_STATE" ] || { install -d -o www -g www -m 0755 "$ROOT$WEBMAIL_STATE" && mark webmail_state; }
	else
		[ -d "$ROOT$NSD_STATE" ] || { mkdir -p "$ROOT$NSD_STATE" && mark nsd_state; }
		if service local_unbound onestatus >/dev/null 2>&1; then service local_unbound onestop; fi
	fi
}

# --- daemons -------------------------------------------------------------------
check_configs() {
	if [ "$ROLE" = mail ]; then
		haproxy -c -q -f "$ROOT$HAPROXY_CFG" || die "haproxy rejects $HAPROXY_CFG"
		postfix check || die "postfix check failed"
		doveconf -n -c "$ROOT$DOVECOT_DIR/dovecot.conf" >/dev/null || die "doveconf rejects $DOVECOT_DIR/dovecot.conf"
		nginx -t -q -c "$ROOT$NGINX_CONF" || die "nginx rejects $NGINX_CONF"
		pfctl -n -f "$ROOT$PF_CONF" || die "pfctl rejects $PF_CONF"
	else
		nsd-checkconf "$ROOT$NSD_DIR/nsd.conf" || die "nsd-checkconf rejects $NSD_DIR/nsd.conf"
		unbound-checkconf "$ROOT$UNBOUND_DIR/unbound.conf" >/dev/null || die "unbound-checkconf rejects the config"
	fi
}

start_services() {
	for s in $SERVICES; do
		if ! service "$s" status >/dev/null 2>&1; then
			# mailring_carp's status is net.inet.carp.allow=1: its start waits
			# until the daemons (started before it) answer, then turns CARP on.
			say "starting $s"
			service "$s" start
			mark "$s"
		elif ! changed "$s" || [ "$s" = mailring_carp ]; then
			continue
		elif [ "$s" = pf ]; then
			# reload: the new rules at once, the live states (SSH, sessions) kept
			say "reloading pf"
			service pf reload
		elif [ "$s" = haproxy ]; then
			# `restart` is stop (SIGUSR1, then wait for every live session to
			# end: minutes with IMAP clients) + start. `reload` starts the new
			# process at once with -sf: it takes the listeners, the old one
			# finishes its sessions, for at most haproxy.conf's hard-stop-after.
			say "reloading haproxy"
			service haproxy reload
		else
			say "restarting $s"
			service "$s" restart
		fi
	done
}

install_packages
check_dovecot
apply_sysrc "$ROOT/etc/rc.conf" "$FRAG/rc.sysrc"
setup_aliases
setup_store
install_files
setup_system
check_configs
start_services
if [ "$CHANGED" = " " ]; then
	say "nothing to change"
else
	say "changed:$CHANGED"
fi
