"""A lab node's Postfix start without postfix-script's installation scans.

``postfix start`` first runs ``postfix-script check-fatal`` (``post-install
create-missing``, ``postsuper`` over the queue) and ``check-warn`` (find and
permission scans of the installation). Every lab node runs the host's one
Postfix installation, checked when the package was installed and changed by
no fault the lab injects; with five nodes starting on two cores the checks
held Postfix's ports closed for about 3.5 s, the longest wait of ``up``, and
each boot after a crash spent about 0.45 s of CPU on them. Postfix itself
skips them once when ``quick-start`` is in the queue directory
(postfix-script's own switch, set by ``postfix quick-stop``).

What a node's own state needs is done here, on every boot:

* ``create-missing``: every queue directory that ``postfix-files`` lists and
  the node lacks is made with its owner, group and mode (a host whose Postfix
  never ran has no ``hold`` or ``trace``; a crash test may wipe the spool);
* after a crash, ``postsuper``'s queue repair, the one check a crash makes
  matter (queue files whose names no longer match their inodes, files in the
  wrong place). If it fails, no ``quick-start``: Postfix's own full checks run
  and fail the start as on a real server.

A start asked for later (``mailring start postfix`` after a stop) runs the
full checks, as an operator's ``postfix start`` does.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

QUEUE = Path("/var/spool/postfix")
POSTFIX_FILES = Path("/etc/postfix/postfix-files")
MAIN_CF = Path("/etc/postfix/main.cf")
DEFAULTS = {"mail_owner": "postfix", "setgid_group": "postdrop", "maillog_file": ""}


@dataclass(frozen=True)
class QueueDir:
    name: str  # under the queue directory
    owner: str
    group: str | None  # None: postfix-files says "-", the creator's group
    mode: int


def settings(main_cf: str) -> dict[str, str]:
    """mail_owner, setgid_group and maillog_file: main.cf's value, else Postfix's default."""
    out = dict(DEFAULTS)
    for line in main_cf.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line[:1].isspace() and key.strip() in out and value.strip():
            out[key.strip()] = value.strip()
    return out


def queue_dirs(postfix_files: str, names: dict[str, str]) -> list[QueueDir]:
    """The directories under $queue_directory that postfix-files lists (type ``d``)."""
    def value(field: str) -> str:
        return names.get(field[1:], field) if field.startswith("$") else field

    dirs = []
    for line in postfix_files.splitlines():
        fields = line.split(":")
        if len(fields) < 5 or not fields[0].startswith("$queue_directory/") or fields[1] != "d":
            continue
        name = fields[0].removeprefix("$queue_directory/")
        group = None if fields[3] == "-" else value(fields[3])
        dirs.append(QueueDir(name, value(fields[2]), group, int(fields[4], 8)))
    return dirs


def missing(dirs: list[QueueDir], queue: Path) -> list[QueueDir]:
    return [d for d in dirs if not (queue / d.name).is_dir()]


def make(dirs: list[QueueDir], queue: Path) -> None:
    for d in dirs:
        path = queue / d.name
        path.mkdir(parents=True, exist_ok=True)
        gid = grp.getgrnam(d.group).gr_gid if d.group else -1
        os.chown(path, pwd.getpwnam(d.owner).pw_uid, gid)
        path.chmod(d.mode)


def own_log_file(services: dict, main_cf: Path = MAIN_CF) -> None:
    """Every boot: ``$maillog_file`` owned by the mail owner. While Postfix is down its start-up
    checks run postsuper, which logs as the mail owner straight to that file; a root-owned file
    made its first warning fatal ("open logfile ... Permission denied"), so a crash that left a
    half-written file in incoming/ ("bogus file name") kept the node's Postfix from starting."""
    if "postfix" not in services or not main_cf.is_file():
        return
    names = settings(main_cf.read_text())
    if not names["maillog_file"]:
        return
    log = Path(names["maillog_file"])
    log.touch(exist_ok=True)
    os.chown(log, pwd.getpwnam(names["mail_owner"]).pw_uid, -1)


def before_start(services: dict, crashed: bool, queue: Path = QUEUE) -> bool:
    """Before the boot's Postfix start: the queue directories postfix-files wants, after a crash
    postsuper's queue repair, then quick-start. True if Postfix will skip its own checks."""
    if "postfix" not in services or not queue.is_dir() or not POSTFIX_FILES.is_file():
        return False
    names = settings(MAIN_CF.read_text() if MAIN_CF.is_file() else "")
    make(missing(queue_dirs(POSTFIX_FILES.read_text(), names), queue), queue)
    if crashed and not _repaired():
        return False
    (queue / "quick-start").touch()
    return True


def _repaired() -> bool:
    """postsuper's queue repair (check-fatal's own call); False if it failed or is missing."""
    try:
        return subprocess.run(["postsuper"], capture_output=True).returncode == 0
    except OSError:
        return False
