"""Signals in a threaded process, the postmaster's way: blocked everywhere, taken in one place.

The postmaster keeps its signals blocked except where it chooses to take them. pgtop blocks
them in the main thread before any thread starts (so every thread inherits the mask) and one
small thread takes them with sigwaitinfo(), which also tells who sent each one: a terminal
hangup comes from the kernel (SI_KERNEL), a `kill -HUP` from a process (SI_USER, its PID).
SIGWINCH, SIGTSTP and SIGCONT stay with the terminal UI.

SIGCHLD is the exception: it only ever means "look for orphans to reap", and the supervisor
thread is the one that reaps. So it goes to a signalfd in the supervisor's own selector, next
to the children's pidfds, as PostgreSQL 16's postmaster waits for its signals in one
WaitEventSet. A child's death then wakes one thread, not two contending for the GIL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable, Iterable
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
# What the signal thread takes; SIGCHLD stays blocked and goes to sigchld_fd().
CAUGHT_SIGNALS = POSTMASTER_SIGNALS - {signal.SIGCHLD}
SI_USER = 0
SI_KERNEL = 0x80
_SIGNALFD_SIGINFO_SIZE = 128  # struct signalfd_siginfo
_SIGSET_WORDS = 1024 // (8 * ctypes.sizeof(ctypes.c_ulong))  # glibc's sigset_t
_libc = ctypes.CDLL(None, use_errno=True)


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


def sigchld_fd() -> int:
    """A non-blocking signalfd that is readable while a SIGCHLD is pending, or -1 if SIGCHLD
    is not blocked in this thread: then block_postmaster_signals() was not called (a test's
    own supervisor, say) and nothing would hold the signal back for the fd."""
    if signal.SIGCHLD not in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        return -1
    return signal_fd([signal.SIGCHLD])


def signal_fd(signums: Iterable[int]) -> int:
    """A non-blocking, close-on-exec signalfd for `signums`, which the caller blocks."""
    fd = _libc.signalfd(-1, ctypes.byref(_sigset(frozenset(signums))), os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"could not create signalfd: {os.strerror(error)}")
    return fd


_SIGSETS: dict[frozenset[int], ctypes.Array[ctypes.c_ulong]] = {}


def _sigset(signums: frozenset[int]) -> ctypes.Array[ctypes.c_ulong]:
    """A sigset_t, made once per set of signals (a fork server's spares each make the same
    one: made in the server, it is every spare's already)."""
    mask = _SIGSETS.get(signums)
    if mask is None:
        mask = (ctypes.c_ulong * _SIGSET_WORDS)()
        bits = 8 * ctypes.sizeof(ctypes.c_ulong)
        for signum in signums:
            mask[(signum - 1) // bits] |= 1 << ((signum - 1) % bits)
        _SIGSETS[signums] = mask
    return mask


def drain_signalfd(fd: int) -> None:
    """Take every pending signal off the fd (several SIGCHLDs may have merged into one)."""
    while True:
        try:
            if len(os.read(fd, 16 * _SIGNALFD_SIGINFO_SIZE)) < 16 * _SIGNALFD_SIGINFO_SIZE:
                return
        except BlockingIOError:
            return


class SignalCatcher(threading.Thread):
    """Takes the postmaster's signals (but SIGCHLD) one at a time and hands each to `deliver`."""

    def __init__(self, deliver: Callable[[SignalInfo], None]) -> None:
        super().__init__(name="pgtop-signals", daemon=True)
        self._deliver = deliver
        self._stopping = False

    def run(self) -> None:
        while True:
            info = signal.sigwaitinfo(CAUGHT_SIGNALS)
            if self._stopping:
                return
            self._deliver(SignalInfo(info.si_signo, info.si_code, info.si_pid))

    def stop(self) -> None:
        """Wake the thread with a signal only it can see, and let it end."""
        self._stopping = True
        if self.ident is not None and self.is_alive():
            signal.pthread_kill(self.ident, signal.SIGUSR2)
            self.join(timeout=5)
