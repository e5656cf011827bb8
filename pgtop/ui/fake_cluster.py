"""A toy cluster for `python -m pgtop.ui.fake`: just enough postmaster to drive the dashboard.

It is not the model (that is `pgtop.core`); it plays a few well-known scenes with made-up
PIDs: a child killed (crash cycle and recovery), a child terminated (clean restart), the
three shutdown modes, a restart, a reload, client load.
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from pgtop.core.state import Child, ExitRecord, Transition
from pgtop.core.vocabulary import (
    EXIT_NAME,
    STRSIGNAL,
    ChildKind,
    ConnsAllowed,
    ExitStatus,
    LogLevel,
    PMState,
    Shutdown,
    Sig,
    StartupStatus,
)
from pgtop.runtime.snapshot import (
    BackendActivity,
    CommandRefused,
    LogRecord,
    ProcessStats,
    RecoveryProgress,
    ShutdownMode,
    Snapshot,
)
from pgtop.ui.fake import DATA_DIR, POSTMASTER_PID, running_state

TICK = 0.5
NO_CRASH = frozenset({ChildKind.STATS, ChildKind.SYSLOGGER})
CLEAN_ON_TERM = frozenset({ChildKind.BGWRITER, ChildKind.WALWRITER, ChildKind.AUTOVAC_LAUNCHER, ChildKind.STATS})
QUERIES = ("SELECT pg_sleep(1)", "UPDATE stock SET qty = qty - 1 WHERE item = 7", "INSERT INTO orders DEFAULT VALUES")


class FakeCluster:
    """A Controller whose commands are played out by a thread that posts to a sink."""

    def __init__(self, sink: object | None = None, pace: float = 1.0) -> None:
        self.sink = sink
        self.pace = pace  # tests play the scenes faster
        self.pids = itertools.count(5000)
        self.state = running_state(time.time(), started=time.time() - 3600)
        self.recovery: RecoveryProgress | None = None
        self.load = False
        self.timeline: list[tuple[float, Callable[[], None]]] = []
        self.commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-cluster", daemon=True)

    # -- the Controller protocol (called from the UI thread) ---------------------------------

    def reload(self) -> None:
        self.commands.put(lambda: self.log(LogLevel.LOG, "received SIGHUP, reloading configuration files"))

    def shutdown(self, mode: ShutdownMode) -> None:
        self.commands.put(lambda: self._shutdown(mode))

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        child = next((c for c in self.state.children.values() if c.pid == pid and c.started_at == started_at), None)
        if child is None:
            raise CommandRefused(f"PID {pid} is gone: nothing sent")
        self.commands.put(lambda: self._signal(child, signal))

    def promote(self) -> None:
        raise CommandRefused("promote ignored: the server is not in standby")

    def logrotate(self) -> None:
        pass

    def start(self) -> None:
        self.commands.put(self._start)

    def load_toggle(self) -> str:
        self.load = not self.load
        return f"client load {'on' if self.load else 'off'}"

    def open_session(self) -> str:
        self.commands.put(self._connect)
        return "psql session opened (simulated)"

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)

    # -- the simulation thread ----------------------------------------------------------------

    def run(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        self.log(LogLevel.LOG, "database system is ready to accept connections")
        while not self.stopping.is_set():
            try:
                self.commands.get(timeout=TICK * self.pace)()
            except queue.Empty:
                pass
            now = time.time()
            due = [step for step in self.timeline if step[0] <= now]
            self.timeline = [step for step in self.timeline if step[0] > now]
            for _, step in due:
                step()
            self.publish()

    def later(self, delay: float, step: Callable[[], None]) -> None:
        self.timeline.append((time.time() + delay * self.pace, step))

    def publish(self) -> None:
        now = time.time()
        stats = {c.pid: ProcessStats(random.uniform(0, 30 if self.load else 2), (10 + c.pid % 20) << 20) for c in self.state.children.values() if c.pid}
        backends = [c for c in self.state.children.values() if c.kind is ChildKind.BACKEND]
        activity = tuple(
            BackendActivity(c.pid, "client backend", "alice", "shop", "psql", "127.0.0.1",
                            "active" if self.load else "idle", random.choice(QUERIES), c.started_at, now - random.random())
            for c in backends
        )
        snapshot = Snapshot(self.state, POSTMASTER_PID, DATA_DIR, 5432, now, stats, activity, self.recovery)
        if self.sink is not None:
            self.sink.post_snapshot(snapshot)

    def log(self, level: LogLevel, message: str, pid: int = POSTMASTER_PID) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d} UTC"
        record = LogRecord(now, pid, "postmaster", level, message, text=f"{stamp} [{pid}] {level.name}:  {message}")
        if self.sink is not None:
            self.sink.post_log(record)

    def go(self, pm_state: PMState, rule: str, **changes: object) -> None:
        transition = Transition(self.state.pm_state, pm_state, rule, time.time())
        self.state = replace(self.state, pm_state=pm_state, last_transition=transition, **changes)

    def _exit(self, child: Child, status: ExitStatus, verdict: str) -> None:
        record = ExitRecord(child.lineage_key, child.kind, child.pid, status, time.time(), verdict)
        children = {i: c for i, c in self.state.children.items() if i != child.id}
        self.state = replace(self.state, children=children, history=(self.state.history + (record,))[-64:])

    def _spawn(self, kind: ChildKind, bgworker: str | None = None, counted: bool = True) -> None:
        state = self.state
        now = time.time()
        child = Child(state.next_child_id, kind, next(self.pids), now, now + 0.0049, bgworker=bgworker)
        restarts = dict(state.restarts)
        if counted and state.last_exit(child.lineage_key) is not None:
            restarts[child.lineage_key] = restarts.get(child.lineage_key, 0) + 1
        self.state = replace(state, children={**state.children, child.id: child}, next_child_id=child.id + 1, restarts=restarts)

    # -- scenes -------------------------------------------------------------------------------

    def _signal(self, child: Child, signal: Sig) -> None:
        if signal in (Sig.STOP, Sig.CONT) or child.id not in self.state.children:
            return
        name = EXIT_NAME.get(child.kind, f'background worker "{child.bgworker}"')
        if signal is Sig.TERM and child.kind in CLEAN_ON_TERM:
            self._exit(child, ExitStatus.exited(0), "clean exit, restart this one")
            self._spawn(child.kind)
        elif signal is Sig.TERM and child.kind is ChildKind.BACKEND:
            self.log(LogLevel.FATAL, "terminating connection due to administrator command", child.pid)
            self._exit(child, ExitStatus.exited(1), "backend exit, nothing to do")
        elif signal is Sig.TERM:
            self.log(LogLevel.LOG, f"{name} (PID {child.pid}) ignores SIGTERM", child.pid)
        elif child.kind in NO_CRASH:
            self.log(LogLevel.LOG, f"{name} (PID {child.pid}) was terminated by signal {signal.value}: {STRSIGNAL[signal.value]}")
            self._exit(child, ExitStatus.killed(signal.value), "logged, restart this one")
            self._spawn(child.kind)
        else:
            self._crash(child, signal, name)

    def _crash(self, child: Child, signal: Sig, name: str) -> None:
        self.log(LogLevel.LOG, f"{name} (PID {child.pid}) was terminated by signal {signal.value}: {STRSIGNAL[signal.value]}")
        self.log(LogLevel.LOG, "terminating any other active server processes")
        self._exit(child, ExitStatus.killed(signal.value), "crash, everyone restarts")
        rule = f"HandleChildCrash: {name} was terminated by signal {signal.value}"
        self.go(PMState.WAIT_BACKENDS, rule, fatal_error=True, abort_start_time=time.time())
        self.later(1.5, self._all_gone)

    def _all_gone(self) -> None:
        for child in list(self.state.children.values()):
            self._exit(child, ExitStatus.exited(2), "crash, everyone restarts")
        if self.state.shutdown > Shutdown.NO:
            self._stopped("abnormal database system shutdown", 1)
            return
        self.go(PMState.NO_CHILDREN, "PostmasterStateMachine: no children left", abort_start_time=0.0)
        self.log(LogLevel.LOG, "all server processes terminated; reinitializing")
        self._spawn(ChildKind.STARTUP, counted=False)
        self.go(PMState.STARTUP, "T11: reinitialise after the crash", startup_status=StartupStatus.RUNNING)
        self.recovery = RecoveryProgress("0/1A2B3C8", "0/1A2B3C8", "0/2400000", 0, 9000)
        for step in range(1, 6):
            self.later(step * 0.6, lambda step=step: self._replay(step * 1800))

    def _replay(self, done: int) -> None:
        if self.state.pm_state is not PMState.STARTUP:
            return
        if done < 9000:
            self.recovery = replace(self.recovery, records_done=done, replayed=f"0/{0x1A2B3C8 + done * 1200:X}")
            return
        startup = self.state.special(ChildKind.STARTUP)
        self._exit(startup, ExitStatus.exited(0), "recovery finished")
        self.recovery = None
        self.go(PMState.RUN, "reaper S5: recovery finished", fatal_error=False, startup_status=StartupStatus.NOT_RUNNING)
        for kind in (ChildKind.CHECKPOINTER, ChildKind.BGWRITER, ChildKind.WALWRITER, ChildKind.AUTOVAC_LAUNCHER, ChildKind.STATS):
            self._spawn(kind)
        self._spawn(ChildKind.BGWORKER, bgworker="logical replication launcher")
        self.log(LogLevel.LOG, "database system is ready to accept connections")

    def _shutdown(self, mode: ShutdownMode) -> None:
        level = Shutdown[mode.name]
        if level <= self.state.shutdown or self.state.exit_code is not None:
            return
        self.log(LogLevel.LOG, f"received {mode.value} shutdown request")
        self.state = replace(self.state, shutdown=level)
        if level is Shutdown.SMART:
            self.state = replace(self.state, conns_allowed=ConnsAllowed.NONE)
            self.later(3.0, lambda: self._shutdown_steps("smart shutdown: no client left"))
        elif level is Shutdown.FAST:
            self.log(LogLevel.LOG, "aborting any active transactions")
            self._shutdown_steps("pmdie: fast shutdown")
        else:
            self.go(PMState.WAIT_BACKENDS, "pmdie: immediate shutdown", abort_start_time=time.time())
            self.later(1.0, self._all_gone)

    def _shutdown_steps(self, rule: str) -> None:
        if self.state.pm_state is not PMState.RUN:
            return
        self.go(PMState.WAIT_BACKENDS, rule)
        for child in list(self.state.children.values()):
            if child.kind not in (ChildKind.CHECKPOINTER, ChildKind.STATS):
                self._exit(child, ExitStatus.exited(0 if child.kind.special else 1), "shutdown")
        self.later(0.8, lambda: self.go(PMState.SHUTDOWN, "PostmasterStateMachine: SIGUSR2 to the checkpointer"))
        self.later(1.2, lambda: self.log(LogLevel.LOG, "shutting down"))
        self.later(2.2, self._checkpoint_done)

    def _checkpoint_done(self) -> None:
        for child in list(self.state.children.values()):
            self._exit(child, ExitStatus.exited(0), "shutdown")
        self.go(PMState.SHUTDOWN_2, "reaper: checkpointer exited 0 in PM_SHUTDOWN")
        self.later(0.5, lambda: self.go(PMState.WAIT_DEAD_END, "PostmasterStateMachine: only dead-ends left"))
        self.later(1.0, lambda: self._stopped(None, 0))

    def _stopped(self, message: str | None, code: int) -> None:
        if message:
            self.log(LogLevel.LOG, message)
        self.go(PMState.NO_CHILDREN, "PostmasterStateMachine: no children left", exit_code=code, abort_start_time=0.0)
        self.log(LogLevel.LOG, "database system is shut down")

    def _start(self) -> None:
        if self.state.exit_code is None:
            return
        now = time.time()
        self.state = replace(running_state(now, started=now - 1), history=self.state.history, restarts=self.state.restarts)
        self.log(LogLevel.LOG, "database system is ready to accept connections")

    def _connect(self) -> None:
        if self.state.pm_state is PMState.RUN and self.state.conns_allowed is ConnsAllowed.ALL:
            self._spawn(ChildKind.BACKEND, counted=False)


def run_demo() -> None:
    from pgtop.ui.app import PgtopApp

    cluster = FakeCluster()
    app = PgtopApp(cluster, title_note="demo: a simulated cluster, no real processes")
    cluster.sink = app
    cluster.run()
    try:
        app.run()
    finally:
        cluster.stopping.set()
