"""Signals in a threaded process, the postmaster's way: blocked everywhere, taken in one place.

The postmaster keeps its signals blocked except where it chooses to take them. pgtop blocks
them in the main thread before any thread starts (so every thread inherits the mask) and one
small thread takes them with sigwaitinfo(), which also tells who sent each one: a terminal
hangup comes from the kernel (SI_KERNEL), a `kill -HUP` from a process (SI_USER, its PID).
SIGWINCH, SIGTSTP and SIGCONT stay with the terminal UI.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

POSTMASTER_SIGNALS = frozenset(
    {
        signal.SIGHUP,
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGCHLD,
    }
)
SI_USER = 0
SI_KERNEL = 0x80


@dataclass(frozen=True, slots=True)
class SignalInfo:
    signo: int
    code: int
    sender: int

    @property
    def from_kernel(self) -> bool:
        """A terminal hangup (or another kernel-generated signal), not a `kill`."""
        return self.code == SI_KERNEL


def block_postmaster_signals() -> None:
    """Call in the main thread before starting any thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, POSTMASTER_SIGNALS)


def unblock_postmaster_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, POSTMASTER_SIGNALS)


class SignalCatcher(threading.Thread):
    """Takes the postmaster's signals one at a time and hands each to `deliver`."""

    def __init__(self, deliver: Callable[[SignalInfo], None]) -> None:
        super().__init__(name="pgtop-signals", daemon=True)
        self._deliver = deliver
        self._stopping = False

    def run(self) -> None:
        while True:
            info = signal.sigwaitinfo(POSTMASTER_SIGNALS)
            if self._stopping:
                return
            self._deliver(SignalInfo(info.si_signo, info.si_code, info.si_pid))

    def stop(self) -> None:
        """Wake the thread with a signal only it can see, and let it end."""
        self._stopping = True
        if self.ident is not None and self.is_alive():
            signal.pthread_kill(self.ident, signal.SIGUSR2)
            self.join(timeout=5)
