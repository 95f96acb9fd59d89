"""Supervision of a local run's processes: signals in the main process, parent-death
watching in the fork server and the stage processes.

- ``mlpipe run`` (the owner) handles SIGINT, SIGTERM and SIGHUP: it kills the running stage
  processes (each its own process group), stops the fork server, marks the run
  ``Interrupted`` and exits with 128 + the signal number (130, 143, 129).
- The fork server and every stage process die with their parent: ``PR_SET_PDEATHSIG`` on
  Linux, plus the fork server sees its control socket close when the owner dies (even by
  SIGKILL) and kills the stage process groups before it exits. Nothing outlives the owner.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (SIGINT 130, SIGTERM 143, SIGHUP 129)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """A signal arrived before a run existed to record it. A BaseException (like
    KeyboardInterrupt), so no ``except Exception`` on the way swallows it; the command turns it
    into one line and exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal_name(signum)}")
        self.signum = signum
        self.exit_code = exit_code(signum)


@contextlib.contextmanager
def signals(on_signal: Callable[[int], None] | None) -> Iterator[None]:
    """While inside: SIGINT/SIGTERM/SIGHUP call ``on_signal(signum)`` (which must only set
    flags and kill processes: it runs between two bytecodes of the main thread), or, without
    one, raise ``Interrupted``. Only the main thread can own signals; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        if on_signal is None:
            raise Interrupted(signum)
        on_signal(signum)

    old = {}
    try:
        for sig in SIGNALS:
            old[sig] = signal.signal(sig, handle)
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent (strictly: the thread
    that created it) exits. Linux only; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
