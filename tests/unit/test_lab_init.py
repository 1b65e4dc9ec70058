"""The lab node init's start order: options, the listening sockets the kernel names, HAProxy last.

``start_after_listening`` is run against a real Supervisor whose service is a
harmless process and against a stand-in for the kernel's answer, so no node, root or
daemon is needed; the lab suite runs the real order on every node. The kernel's answer
itself is asked in this process's own namespace.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from mailring.drivers.lab import init, quickstart
from mailring.drivers.lab.listening import accepting


def test_the_kernel_names_the_targets_a_listening_socket_would_take() -> None:
    """sock_diag in this process's own namespace: no root, no node. Bound to the address, to
    the wildcard, or IPv6 dual-stack counts; bound and not listening, IPv6-only, another
    address, or a connected socket's own port does not."""
    with socket.socket() as srv, socket.socket() as wild, socket.socket() as bound, \
            socket.socket(socket.AF_INET6) as dual, socket.socket(socket.AF_INET6) as v6only:
        srv.bind(("127.0.0.1", 0))
        wild.bind(("0.0.0.0", 0))
        bound.bind(("127.0.0.1", 0))  # bound, never listening
        dual.bind(("::", 0))
        v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6only.bind(("::", 0))
        for s in (srv, wild, dual, v6only):
            s.listen()
        port = {s: s.getsockname()[1] for s in (srv, wild, bound, dual, v6only)}
        with socket.create_connection(srv.getsockname()) as conn:
            yes = {("127.0.0.1", port[srv]), ("127.0.0.1", port[wild]), ("127.0.0.1", port[dual])}
            no = {("127.0.0.2", port[srv]), ("127.0.0.1", port[bound]), ("127.0.0.1", port[v6only]),
                  ("127.0.0.1", conn.getsockname()[1])}
            assert accepting(yes | no) == yes
            assert accepting(set()) == set()


def test_options_hold_and_after_listening() -> None:
    held, after = init.parse_options(["--hold", "carp,carp-backup",
                                      "--after-listening", "haproxy=10.0.0.1:10025,10.0.0.1:10110"])
    assert held == {"carp", "carp-backup"}
    assert after == {"haproxy": {("10.0.0.1", 10025), ("10.0.0.1", 10110)}}
    assert init.parse_options([]) == (set(), {})
    for bad in (["--hold"], ["--wait", "x"], ["--after-listening", "haproxy=10025"]):
        with pytest.raises(ValueError):
            init.parse_options(bad)


class Recorder(init.Supervisor):
    """A Supervisor that records starts instead of spawning (its service table is real)."""

    def __init__(self) -> None:
        super().__init__({"haproxy": [["haproxy"]]})
        self.started: list[str] = []

    def start(self, name: str, unless_stopped: bool = False) -> None:
        self.started.append(name)


A, B, C = ("10.0.0.1", 25), ("10.0.0.1", 10041), ("10.0.0.1", 80)


def test_haproxy_starts_only_once_every_target_listens() -> None:
    sup, listening = Recorder(), {C}
    looks = []

    def read(targets: set) -> set:
        assert targets == {A, B}  # it asks about its own targets only
        looks.append(sup.started[:])
        if len(looks) == 3:  # the daemons come up while the init is waiting
            listening.update({A, B})
        return targets & listening

    assert init.start_after_listening(sup, "haproxy", {A, B}, deadline_s=10, listening_now=read)
    assert sup.started == ["haproxy"]
    assert looks[:3] == [[], [], []]  # not started while a target was missing


def test_a_target_that_never_listens_starts_it_at_the_deadline_and_a_stop_wins() -> None:
    sup = Recorder()
    assert not init.start_after_listening(sup, "haproxy", {A, ("10.0.0.1", 9999)}, deadline_s=0.1,
                                          listening_now=lambda targets: {A, B})
    assert sup.started == ["haproxy"]
    stopped = init.Supervisor({"haproxy": [["haproxy"]]})  # the real one: it would spawn
    stopped.stopped.add("haproxy")  # `mailring stop <node> haproxy` while it waited
    t = threading.Thread(target=init.start_after_listening,
                         args=(stopped, "haproxy", {A}, 5, lambda targets: {A}))
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
    assert names == {"mail_owner": "mailer", "setgid_group": "postdrop", "maillog_file": ""}
    dirs = quickstart.queue_dirs(POSTFIX_FILES, names)
    assert [(d.name, d.owner, d.group, oct(d.mode)) for d in dirs] == [
        ("active", "mailer", None, "0o700"), ("hold", "mailer", None, "0o700"),
        ("maildrop", "mailer", "postdrop", "0o730"), ("public", "mailer", "postdrop", "0o710")]


def test_every_boot_gives_the_maillog_file_to_the_mail_owner(tmp_path) -> None:
    """postsuper, in Postfix's start-up checks, logs to it as the mail owner (root could not:
    a leftover file in incoming/ then stopped Postfix from starting after a crash)."""
    import os
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name  # one a non-root test may give the file to
    main_cf = tmp_path / "main.cf"
    log = tmp_path / "log" / "postfix.log"
    log.parent.mkdir()
    main_cf.write_text(f"mail_owner = {user}\nmaillog_file = {log}\n")
    quickstart.own_log_file({"postfix": []}, main_cf)
    assert log.is_file() and log.stat().st_uid == os.getuid()
    log.write_text("kept\n")
    quickstart.own_log_file({"postfix": []}, main_cf)  # the next boot keeps what was logged
    assert log.read_text() == "kept\n"
    quickstart.own_log_file({"dovecot": []}, tmp_path / "none.cf")  # no Postfix: nothing to do


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


def _postfix_node(tmp_path, monkeypatch, postsuper_rc: int) -> tuple[Path, list[list[str]]]:
    """A node's queue and config for ``before_start``; records the commands it runs."""
    import os
    import pwd
    import subprocess

    user = pwd.getpwuid(os.getuid()).pw_name
    files = tmp_path / "postfix-files"
    files.write_text(f"$queue_directory/active:d:{user}:-:700:ucr\n")
    main_cf = tmp_path / "main.cf"
    main_cf.write_text(f"mail_owner = {user}\n")
    queue = tmp_path / "spool"
    queue.mkdir()
    monkeypatch.setattr(quickstart, "POSTFIX_FILES", files)
    monkeypatch.setattr(quickstart, "MAIN_CF", main_cf)
    ran: list[list[str]] = []

    def run(argv, **_kw):
        ran.append(list(argv))
        return subprocess.CompletedProcess(argv, postsuper_rc, b"", b"")

    monkeypatch.setattr(quickstart.subprocess, "run", run)
    return queue, ran


def test_a_first_boot_makes_the_queue_and_skips_the_checks_without_postsuper(tmp_path, monkeypatch) -> None:
    queue, ran = _postfix_node(tmp_path, monkeypatch, postsuper_rc=0)
    assert quickstart.before_start({"postfix": []}, crashed=False, queue=queue)
    assert (queue / "active").is_dir() and (queue / "quick-start").exists()
    assert ran == []  # a new queue has nothing to repair


def test_a_boot_after_a_crash_repairs_the_queue_before_skipping_the_scans(tmp_path, monkeypatch) -> None:
    queue, ran = _postfix_node(tmp_path, monkeypatch, postsuper_rc=0)
    assert quickstart.before_start({"postfix": []}, crashed=True, queue=queue)
    assert ran == [["postsuper"]]
    assert (queue / "active").is_dir() and (queue / "quick-start").exists()


def test_a_failed_queue_repair_leaves_postfix_its_own_full_checks(tmp_path, monkeypatch) -> None:
    queue, ran = _postfix_node(tmp_path, monkeypatch, postsuper_rc=1)
    assert not quickstart.before_start({"postfix": []}, crashed=True, queue=queue)
    assert ran == [["postsuper"]] and not (queue / "quick-start").exists()
    assert not quickstart.before_start({"dovecot": []}, crashed=True, queue=queue)  # no Postfix
