"""Commanding a real server from the dashboard: the same keys, the real signals.

Reload is SIGHUP to the postmaster; smart / fast / immediate shutdown are SIGTERM / SIGINT /
SIGQUIT; a child gets the chosen signal only if it is still the process shown (PID and
kernel start time) and still a child of this postmaster. Promote and logrotate are what
pg_ctl does: a file in the data directory, then SIGUSR1. Only the server's owner (or root)
may do any of this; anyone else gets a one-line refusal, and nothing is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import psutil

from pgtop.attach.proctable import process_start_time
from pgtop.attach.watcher import AttachWatcher
from pgtop.core.vocabulary import ChildKind, Sig
from pgtop.runtime.snapshot import CommandRefused, ShutdownMode

START_TIME_TOLERANCE = 0.02  # both sides read the same kernel tick; allow for rounding


class AttachController:
    """The dashboard's Controller for a real server watched by `watcher`.

    `restart` (given for a throwaway cluster) starts the server again after it stopped;
    `on_close` runs when the dashboard closes (stopping and removing that cluster).
    """

    def __init__(
        self,
        watcher: AttachWatcher,
        *,
        restart: Callable[[], object] | None = None,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.watcher = watcher
        self._restart = restart
        self._on_close = on_close
        self._closed = False

    # -- the postmaster ------------------------------------------------------------------------

    def _running_postmaster(self) -> int:
        """The PID of the postmaster being watched, from the latest (immutable) snapshot:
        the model itself belongs to the watcher's thread."""
        latest = self.watcher.latest
        if latest is None or latest.state.exit_code is not None:
            raise CommandRefused("the postmaster is not running")
        return latest.postmaster_pid

    def _refusal(self, pid: int) -> CommandRefused:
        return CommandRefused(f"not allowed to signal process {pid}: run pgtop as the server's owner ({self.watcher.location.owner})")

    def _signal(self, pid: int, sig: Sig) -> None:
        try:
            os.kill(pid, int(sig))
        except ProcessLookupError:
            raise CommandRefused(f"process {pid} has already exited") from None
        except PermissionError:
            raise self._refusal(pid) from None

    def reload(self) -> None:
        self._signal(self._running_postmaster(), Sig.HUP)

    def shutdown(self, mode: ShutdownMode) -> None:
        self._signal(self._running_postmaster(), mode.signal)

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        """Signal a child only if it is still the one shown: PID, start time, parent."""
        postmaster = self._running_postmaster()
        try:
            parent = psutil.Process(pid).ppid()
            started = process_start_time(pid)
        except (psutil.NoSuchProcess, ProcessLookupError):
            raise CommandRefused(f"process {pid} has already exited") from None
        if parent != postmaster:
            raise CommandRefused(f"process {pid} is not a child of this postmaster")
        if abs(started - started_at) > START_TIME_TOLERANCE:
            raise CommandRefused(f"process {pid} is not the one shown any more (its PID was reused)")
        self._signal(pid, signal)

    def promote(self) -> None:
        postmaster = self._running_postmaster()
        latest = self.watcher.latest
        if latest is None or latest.state.special(ChildKind.STARTUP) is None:
            raise CommandRefused("cannot promote: the server is not in standby mode")
        self._touch("promote", postmaster)
        self._signal(postmaster, Sig.USR1)

    def logrotate(self) -> None:
        postmaster = self._running_postmaster()
        self._touch("logrotate", postmaster)
        self._signal(postmaster, Sig.USR1)

    def _touch(self, name: str, postmaster: int) -> None:
        """pg_ctl's signal files, owned by the server's owner so it can remove them."""
        data_dir = self.watcher.location.data_dir
        if data_dir is None:
            raise CommandRefused(f"cannot {name}: the data directory is not known (attach with -D)")
        path = Path(data_dir) / name
        try:
            path.touch()
            owner = os.stat(data_dir)
            if os.geteuid() == 0:
                os.chown(path, owner.st_uid, owner.st_gid)
        except PermissionError:
            raise self._refusal(postmaster) from None
        except OSError as error:
            raise CommandRefused(f"cannot {name}: {error.strerror}: {path}") from None

    def start(self) -> str:
        if self._restart is None:
            raise CommandRefused("pgtop attach does not start servers: start it as usual (pg_ctl start), pgtop follows the new postmaster")
        latest = self.watcher.latest
        if latest is not None and latest.state.exit_code is None:
            raise CommandRefused("the cluster is already running")
        self._restart()
        self.watcher.wake()
        return "throwaway cluster started again"

    # -- leaving -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop watching (and, for a throwaway cluster, stop it and delete it)."""
        if self._closed:
            return
        self._closed = True
        self.watcher.stop()
        if self._on_close is not None:
            self._on_close()
