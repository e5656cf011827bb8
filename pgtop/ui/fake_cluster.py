"""The cluster behind `python -m pgtop.ui.fake`: the real postmaster model, no processes.

It drives `pgtop.core.simulation.SimulatedCluster` (the model against simulated children that
answer signals as PostgreSQL's do) in real time from one thread, so the dashboard can be
shown and tested without starting anything. Commands become the same signals the real
Controller sends; the startup process "replays" for a moment before it exits 0.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from pgtop.common.logformat import format_log_line
from pgtop.core.config import Config
from pgtop.core.simulation import LogLine, SimulatedCluster
from pgtop.core.vocabulary import ChildKind, LogLevel, Sig
from pgtop.runtime.snapshot import (
    BackendActivity,
    CommandRefused,
    LogRecord,
    ShutdownMode,
    Snapshot,
)
from pgtop.ui.fake import DATA_DIR, POSTMASTER_PID

TICK = 0.1
RECOVERY_SECS = 1.5


class FakeCluster:
    """A Controller whose commands are played by the model in a background thread."""

    def __init__(self, sink: object | None = None, pace: float = 1.0) -> None:
        self.sink = sink
        self.pace = pace  # tests play the scenes faster
        self.sim = SimulatedCluster(Config(), now=time.time(), first_pid=5000)
        self.commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-cluster", daemon=True)
        self._logged = 0
        self._startup_since: float | None = None

    # -- the Controller protocol (called from the UI thread) ---------------------------------

    def reload(self) -> None:
        self.commands.put(lambda: self.sim.signal(Sig.HUP))

    def shutdown(self, mode: ShutdownMode) -> None:
        self.commands.put(lambda: self.sim.signal(mode.signal))

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        if not any(c.pid == pid and c.started_at == started_at for c in self.sim.state.children.values()):
            raise CommandRefused(f"PID {pid} is gone: nothing sent")
        self.commands.put(lambda: self._kill(pid, signal))

    def promote(self) -> None:
        raise CommandRefused("promote ignored: the server is not in standby")

    def logrotate(self) -> None:
        pass

    def start(self) -> None:
        self.commands.put(self._start)

    def open_session(self) -> str:
        self.commands.put(lambda: self.sim.connect())
        return "client session opened (simulated)"

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)

    # -- the simulation thread ----------------------------------------------------------------

    def run(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        self.sim.boot()
        while not self.stopping.is_set():
            try:
                self.commands.get(timeout=TICK * self.pace)()
            except queue.Empty:
                pass
            self.sim.advance(time.time() - self.sim.now)
            self._play_startup()
            self.publish()

    def _play_startup(self) -> None:
        """The simulated startup process finishes its (pretend) redo after a moment."""
        if self.sim.exit_code is not None or not any(
            c.kind is ChildKind.STARTUP for c in self.sim.state.children.values()
        ):
            self._startup_since = None
            return
        self._startup_since = self._startup_since or time.time()
        if time.time() - self._startup_since >= RECOVERY_SECS * self.pace:
            self.sim.finish_startup()

    def _kill(self, pid: int, signal: Sig) -> None:
        proc = next((p for p in self.sim.procs.values() if p.pid == pid), None)
        if proc is not None:
            proc.pending.append(signal)
            self.sim.settle()

    def _start(self) -> None:
        if self.sim.exit_code is None:
            return
        self.sim = SimulatedCluster(Config(), now=time.time(), first_pid=self.sim.next_pid)
        self._logged = 0
        self.sim.boot()

    def publish(self) -> None:
        if self.sink is None:
            return
        for line in self.sim.log[self._logged :]:
            if not line.level.startswith("DEBUG"):
                self.sink.post_log(_record(line))  # type: ignore[attr-defined]
        self._logged = len(self.sim.log)
        now = time.time()
        activity = tuple(
            BackendActivity(c.pid, "client backend", "alice", "shop", "psql", c.remote, "idle", "", c.started_at or now, now)
            for c in self.sim.state.children.values()
            if c.kind is ChildKind.BACKEND and not c.dead_end and c.pid
        )
        state = self.sim.state
        self.sink.post_snapshot(Snapshot(state, POSTMASTER_PID, DATA_DIR, 5432, now, activity=activity))  # type: ignore[attr-defined]


def _record(line: LogLine) -> LogRecord:
    now, level = time.time(), LogLevel[line.level]
    text = format_log_line(
        "%m [%p] ", level, line.message, pid=POSTMASTER_PID, backend_type="postmaster", now=now,
        detail=line.detail, hint=line.hint,
    )
    return LogRecord(now, POSTMASTER_PID, "postmaster", level, line.message, line.detail, line.hint, text)


def run_demo() -> None:
    from pgtop.ui.app import PgtopApp

    cluster = FakeCluster()
    app = PgtopApp(cluster, title_note="demo: the postmaster model with simulated children, no real processes")
    cluster.sink = app
    cluster.run()
    try:
        app.run()
    finally:
        cluster.close()


__all__ = ["FakeCluster", "run_demo"]
