"""Run a self-daemonizing program (libvirtd -d, virtlogd -d) under a child subreaper.

    python -m mailring.drivers.vagrant.reaper PROGRAM [ARGS...]

A daemon's double fork hands it, and every process it daemonizes in turn
(QEMU probes and VMs started by libvirtd), to the nearest subreaper, which is
PID 1 without this. On machines like ours PID 1 is a container's init that does
not reap, so those processes stay zombies: libvirt then waits out its kill
timeouts on every QEMU capabilities probe, counts the probe as failed, never
caches it and probes again (a minute) on every domain change. This process
marks itself a subreaper, starts PROGRAM, and reaps every process its tree
leaves until none is left.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m mailring.drivers.vagrant.reaper PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"reaper: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    rc = subprocess.call(argv)  # the daemon forks, its parent exits with the start-up status
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return rc
        except InterruptedError:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
