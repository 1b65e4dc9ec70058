"""Ctrl-C and SIGTERM end a run through its ``finally`` blocks: faults healed, lab torn down.

Python turns SIGINT into KeyboardInterrupt but dies on SIGTERM without running
a single ``finally``, which would leave a lab's namespaces and daemons behind.
``install()`` (the CLI and the pytest plugin call it) makes both signals raise:
SIGINT ``KeyboardInterrupt``, SIGTERM ``Terminated`` (a KeyboardInterrupt, so
every handler of Ctrl-C handles it too).

``shielded()`` keeps a teardown or a heal whole: a signal that arrives inside
it is held and raised when the block ends, so a second Ctrl-C cannot leave
half a lab. It works with threads running (a held flag, not a signal mask).
A SIGKILL cannot be caught; the next ``up`` or ``down`` of the same lab name
removes what it left.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as a shell reports it


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program was, so ``finally`` blocks run."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_held: list[int] = []  # signals that arrived while shielded, raised when the outermost shield ends
_depth = [0]
# called with the signal number before it is raised (not while shielded): a pytest-xdist
# controller passes SIGTERM on to its workers here (mailring.pytest_plugin)
BEFORE_RAISE: list[Callable[[int], None]] = []


def _exception(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _depth[0] > 0:
        _held.append(signum)
        return
    for hook in BEFORE_RAISE:
        hook(signum)
    raise _exception(signum)


def install() -> bool:
    """Route SIGINT and SIGTERM through ``_handler``; only in the main thread, and only over
    Python's defaults (a caller that set its own handler keeps it). True when installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    done = False
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        if current is _handler:
            done = True
        elif current is defaults[signum]:
            signal.signal(signum, _handler)
            done = True
    return done


def sigint_default() -> None:
    """For ``preexec_fn``: the child gets SIGINT delivered as usual. A job started with ``&``
    by a non-interactive shell inherits SIGINT ignored, and Python then installs no handler,
    so a test that interrupts its child would wait in vain."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def exit_status(exc: BaseException) -> int:
    """The exit status for an interrupt: 130 after Ctrl-C, 143 after SIGTERM."""
    return EXIT_STATUS.get(getattr(exc, "signum", signal.SIGINT), 130)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the block runs; raise the first held one when it ends."""
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if _depth[0] == 0 and _held:
            signum = _held[0]
            _held.clear()
            raise _exception(signum)
