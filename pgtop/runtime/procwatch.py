"""Noticing child deaths without polling: a pidfd per child, reaped by PID, never waitpid(-1).

A pidfd becomes readable the moment its process exits, so the supervisor puts them in its
selector next to the listen sockets. Reaping goes PID by PID with waitpid(pid, WNOHANG), so
nothing this process does not own (a subprocess.Popen elsewhere) is ever reaped by mistake.

As a child subreaper the postmaster also inherits processes it never started, e.g. the shell
of an archive_command whose archiver died. `reap_orphans` finds those among our children
(through psutil) and reaps the ones that are zombies.
"""

from __future__ import annotations

import os
from collections.abc import Collection

import psutil

from pgtop.core.vocabulary import ExitStatus


def exit_status(wait_status: int) -> ExitStatus:
    """A raw waitpid status as the reaper reads it: a code, or the killing signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    return ExitStatus.killed(-code) if code < 0 else ExitStatus.exited(code)


class ChildWatcher:
    """The registry of children the postmaster started, one pidfd each."""

    def __init__(self) -> None:
        self._pidfds: dict[int, int] = {}  # pid -> pidfd

    def watch(self, pid: int) -> int:
        """Register a child; return the fd that becomes readable when it exits."""
        if pid in self._pidfds:
            return self._pidfds[pid]
        pidfd = os.pidfd_open(pid)
        self._pidfds[pid] = pidfd
        return pidfd

    def unwatch(self, pid: int) -> None:
        """Forget a child without reaping it."""
        pidfd = self._pidfds.pop(pid, None)
        if pidfd is not None:
            os.close(pidfd)

    @property
    def watched(self) -> frozenset[int]:
        return frozenset(self._pidfds)

    def fds(self) -> dict[int, int]:
        """pidfd -> pid, for the supervisor's selector."""
        return {pidfd: pid for pid, pidfd in self._pidfds.items()}

    def reap(self, pid: int) -> tuple[int, ExitStatus] | None:
        """waitpid(pid, WNOHANG): the exit status if the child is dead (and stop watching
        it), None if it still runs."""
        try:
            reaped, wait_status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            self.unwatch(pid)
            raise ChildProcessError(f"PID {pid} is not a child of this process") from None
        if reaped == 0:
            return None
        self.unwatch(pid)
        return pid, exit_status(wait_status)

    def reap_ready(self) -> list[tuple[int, ExitStatus]]:
        """reaper's loop: every watched child that has exited, reaped."""
        exits = []
        for pid in list(self._pidfds):
            result = self.reap(pid)
            if result is not None:
                exits.append(result)
        return exits

    def reap_orphans(self, keep: Collection[int] = ()) -> list[tuple[int, ExitStatus]]:
        """Reap zombie children that are not registered and not in `keep` (pass the fork
        server's PID and any subprocess this process waits for itself)."""
        exits = []
        for child in psutil.Process().children(recursive=False):
            if child.pid in self._pidfds or child.pid in keep:
                continue
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    continue
                reaped, wait_status = os.waitpid(child.pid, os.WNOHANG)
            except (psutil.NoSuchProcess, ChildProcessError):
                continue  # already gone, or reaped by its owner meanwhile
            if reaped:
                exits.append((reaped, exit_status(wait_status)))
        return exits

    def close(self) -> None:
        """Close every pidfd (the children themselves are left alone)."""
        for pid in list(self._pidfds):
            self.unwatch(pid)
