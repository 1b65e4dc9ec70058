"""The lab's folder, ``build/<lab>``, as a tmpfs of its own: mounted by ``up``, unmounted by ``down``.

Everything a lab writes lives there: rendered bundles, each node's writable layers (the
overlays' upper /etc and /var: Postfix's queue, the daemons' logs), the shared mail store,
control sockets, the record. A lab makes and deletes thousands of files per up and down.
On an ext4 without a journal (this machine kind's root file system), making a file skips
every inode deleted within the last minute or more (``recently_deleted`` reads each one's
inode-table block), so each lab made soon after another one's teardown paid for all the files
that teardown removed: 3 % of the lab suite's CPU went to finding free inodes. A tmpfs has
no such scan, and dropping it frees everything at once.

The mount's source is ``mr-<lab>`` (as the namespaces are named), and only a mount of that
name at that place is ever unmounted. It is private, so nothing mounted in it shows up in
another mount namespace, and it goes with the lab: its contents are gone after ``down``, as
before (``up`` saves failure logs to the run folder first).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mailring.drivers.lab.names import LabNames


def mounted(names: LabNames, mountinfo: str | None = None) -> bool:
    """Whether the lab's own tmpfs is mounted at its folder (per /proc/self/mountinfo)."""
    where = str(names.root.resolve())
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")  # optional fields end here; then fstype, source, options
        if _unescape(fields[4]) == where and fields[sep + 1] == "tmpfs" and fields[sep + 2] == names.tmpfs:
            return True
    return False


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def mount(names: LabNames) -> None:
    """Mount the lab's tmpfs at its folder (made if missing), private to this mount namespace."""
    root = names.root
    root.mkdir(parents=True, exist_ok=True)
    if mounted(names):
        return
    for argv in (["mount", "-t", "tmpfs", "-o", "mode=0755", names.tmpfs, str(root)],
                 ["mount", "--make-private", str(root)]):
        res = subprocess.run(argv, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")


def unmount(names: LabNames) -> str | None:
    """Unmount the lab's tmpfs from its folder if it is there; an error text instead of raising
    (teardown goes on)."""
    root = names.root
    while mounted(names):
        res = subprocess.run(["umount", str(root)], capture_output=True, text=True)
        if res.returncode != 0:  # a file still open in it: detach it now, freed when closed
            lazy = subprocess.run(["umount", "--lazy", str(root)], capture_output=True, text=True)
            if lazy.returncode != 0:
                return f"umount {root}: {res.stderr.strip()}; umount --lazy: {lazy.stderr.strip()}"
    return None
