"""The lab node init's start order: options, the listening ports it reads, HAProxy after its daemons.

``start_after_listening`` is run against a real Supervisor whose service is a
harmless process and against /proc/net/tcp text, so no node, root or daemon is
needed; the lab suite runs the real order on every node.
"""

from __future__ import annotations

import threading

import pytest

from mailring.drivers.lab import init, quickstart

# /proc/net/tcp lines: 0A is LISTEN, 01 ESTABLISHED (0x2739 = 10041, 0x0019 = 25, 0x272A = 10026)
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B38A8C0:2739 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1
   1: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2
   2: 0B38A8C0:272A 6438A8C0:C350 01 00000000:00000000 00:00000000 00000000     0        0 3
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_listening_ports_are_the_listen_rows_of_tcp_and_tcp6_only() -> None:
    assert init.listening_ports({"tcp": TCP, "tcp6": TCP6}) == {10041, 25, 80}
    assert init.listening_ports({}) == set()


def test_options_hold_and_after_listening() -> None:
    held, after = init.parse_options(["--hold", "carp,carp-backup",
                                      "--after-listening", "haproxy=10025,10110"])
    assert held == {"carp", "carp-backup"}
    assert after == {"haproxy": {10025, 10110}}
    assert init.parse_options([]) == (set(), {})
    for bad in (["--hold"], ["--wait", "x"]):
        with pytest.raises(ValueError):
            init.parse_options(bad)


class Recorder(init.Supervisor):
    """A Supervisor that records starts instead of spawning (its service table is real)."""

    def __init__(self) -> None:
        super().__init__({"haproxy": [["haproxy"]]})
        self.started: list[str] = []

    def start(self, name: str, unless_stopped: bool = False) -> None:
        self.started.append(name)


def test_haproxy_starts_only_once_every_port_listens() -> None:
    sup, tables = Recorder(), {"tcp": ""}
    looks = []

    def read() -> dict[str, str]:
        looks.append(sup.started[:])
        if len(looks) == 3:  # the daemons come up while the init is waiting
            tables["tcp"] = TCP
        return dict(tables)

    assert init.start_after_listening(sup, "haproxy", {25, 10041}, deadline_s=10, tables=read)
    assert sup.started == ["haproxy"]
    assert looks[:3] == [[], [], []]  # not started while a port was missing


def test_a_port_that_never_listens_starts_it_at_the_deadline_and_a_stop_wins() -> None:
    sup = Recorder()
    assert not init.start_after_listening(sup, "haproxy", {25, 9999}, deadline_s=0.1,
                                          tables=lambda: {"tcp": TCP})
    assert sup.started == ["haproxy"]
    stopped = init.Supervisor({"haproxy": [["haproxy"]]})  # the real one: it would spawn
    stopped.stopped.add("haproxy")  # `mailring stop <node> haproxy` while it waited
    t = threading.Thread(target=init.start_after_listening,
                         args=(stopped, "haproxy", {25}, 5, lambda: {"tcp": TCP}))
    t.start()
    t.join(5)
    assert not t.is_alive() and stopped.procs == {}


# -- Postfix's first start (quickstart) -------------------------------------------
POSTFIX_FILES = """\
# comment: $queue_directory/x:d:root:-:755:uc
$queue_directory:d:root:-:755:uc
$queue_directory/active:d:$mail_owner:-:700:ucr
$queue_directory/hold:d:$mail_owner:-:700:ucr
$queue_directory/maildrop:d:$mail_owner:$setgid_group:730:uc
$queue_directory/public:d:$mail_owner:$setgid_group:710:uc
$queue_directory/pid/master.pid:f:root:-:644:o
$daemon_directory/master:f:root:-:755
"""


def test_queue_dirs_are_postfix_files_directories_under_the_queue_with_owner_group_mode() -> None:
    names = quickstart.settings("mail_owner = mailer\n  setgid_group = nope\n# setgid_group = x\n")
    assert names == {"mail_owner": "mailer", "setgid_group": "postdrop"}
    dirs = quickstart.queue_dirs(POSTFIX_FILES, names)
    assert [(d.name, d.owner, d.group, oct(d.mode)) for d in dirs] == [
        ("active", "mailer", None, "0o700"), ("hold", "mailer", None, "0o700"),
        ("maildrop", "mailer", "postdrop", "0o730"), ("public", "mailer", "postdrop", "0o710")]


def test_only_missing_queue_dirs_are_made_with_their_owner_and_mode(tmp_path) -> None:
    import grp
    import os
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    (tmp_path / "active").mkdir(mode=0o755)
    dirs = [quickstart.QueueDir("active", user, None, 0o700),
            quickstart.QueueDir("hold", user, None, 0o700),
            quickstart.QueueDir("public", user, group, 0o710)]
    todo = quickstart.missing(dirs, tmp_path)
    assert [d.name for d in todo] == ["hold", "public"]
    quickstart.make(todo, tmp_path)
    assert oct((tmp_path / "hold").stat().st_mode & 0o7777) == "0o700"
    assert oct((tmp_path / "public").stat().st_mode & 0o7777) == "0o710"
    assert oct((tmp_path / "active").stat().st_mode & 0o7777) == "0o755"  # present: left alone
    assert quickstart.missing(dirs, tmp_path) == []
