"""A real server as a source for the dashboard: snapshots and log records in, commands out.

`attach_source(args)` finds the server (or makes a throwaway one for `--spawn`) and returns
an `AttachSource`; `start(app)` feeds any object with `post_snapshot` and `post_log` (the
dashboard, a served viewer, a test recorder), `stop()` leaves everything as it was before
(a throwaway cluster is stopped and deleted). `pgtop attach` and `pgtop serve` both use it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pgtop.attach.control import AttachController
from pgtop.attach.locate import DEFAULT_SOCKET_DIRS, AttachError, ServerLocation, locate
from pgtop.attach.spawn import ThrowawayCluster
from pgtop.attach.watcher import AttachWatcher
from pgtop.runtime.snapshot import LogRecord, Snapshot


class Viewer(Protocol):
    def post_snapshot(self, snapshot: Snapshot) -> None: ...

    def post_log(self, record: LogRecord) -> None: ...


@dataclass
class AttachSource:
    """A watched real server, its controller, and what to say about it on screen."""

    controller: AttachController
    watcher: AttachWatcher
    title_note: str
    owns_cluster: bool  # a throwaway cluster pgtop made: quitting stops it
    cluster: ThrowawayCluster | None = None

    def start(self, viewer: Viewer) -> None:
        """Attach and start feeding `viewer` (raises AttachError if the server just went)."""
        self.watcher.log_sinks.append(viewer.post_log)
        self.watcher.subscribe(viewer.post_snapshot)
        self.watcher.start()

    def stop(self) -> None:
        self.controller.close()


def attach_source(args: argparse.Namespace) -> AttachSource:
    """From `pgtop attach` options; raises AttachError or SpawnError with a one-line message."""
    log_path = Path(args.log).absolute() if getattr(args, "log", None) else None
    if log_path is not None and not log_path.is_file():
        raise AttachError(f"--log {log_path}: no such file")
    if getattr(args, "spawn", False):
        return _spawned(log_path)
    host_dirs = tuple(Path(d) for d in getattr(args, "host_dir", None) or ()) or DEFAULT_SOCKET_DIRS
    pgdata = getattr(args, "pgdata", None)
    location = locate(
        data_dir=Path(pgdata).absolute() if pgdata else None,
        pid=getattr(args, "pid", None),
        port=getattr(args, "port", None),
        socket_dirs=host_dirs,
    )
    watcher = AttachWatcher(location, log_path=log_path)
    return AttachSource(AttachController(watcher), watcher, _note(location), owns_cluster=False)


def _spawned(log_path: Path | None) -> AttachSource:
    cluster = ThrowawayCluster()
    try:
        cluster.initdb()
        cluster.start()
        location = locate(data_dir=cluster.data_dir)
    except BaseException:  # a failure, or SIGTERM (SystemExit) while initdb runs
        cluster.close()
        raise
    watcher = AttachWatcher(location, log_path=log_path or cluster.log_path)
    controller = AttachController(watcher, restart=cluster.start, on_close=cluster.close)
    note = "throwaway PostgreSQL cluster, removed on quit"
    return AttachSource(controller, watcher, note, owns_cluster=True, cluster=cluster)


def _note(location: ServerLocation) -> str:
    version = f"PostgreSQL {location.major_version}" if location.major_version else "PostgreSQL"
    return f"{version}, owner {location.owner}"
