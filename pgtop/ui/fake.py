"""Made-up but realistic snapshots and a recording controller, for tests and the demo.

`python -m pgtop.ui.fake` runs the dashboard against a small simulated cluster
(`pgtop.ui.fake_cluster`), no real processes involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pgtop.core.config import Config
from pgtop.core.state import (
    LOGICAL_REPLICATION_LAUNCHER,
    Child,
    ExitRecord,
    State,
    Transition,
)
from pgtop.core.vocabulary import (
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

# 2023-11-14 22:13:20 UTC: a fixed epoch so tests and screenshots never change.
EPOCH = 1_700_000_000.0
NOW = EPOCH + 3723.25
POSTMASTER_PID = 4242
DATA_DIR = "/tmp/pgtop-demo/data"

AUXILIARY = (
    (ChildKind.CHECKPOINTER, 4243),
    (ChildKind.BGWRITER, 4244),
    (ChildKind.WALWRITER, 4245),
    (ChildKind.AUTOVAC_LAUNCHER, 4246),
    (ChildKind.STATS, 4247),
)
BACKENDS = (
    (4301, "alice", "shop", "active", "UPDATE stock SET qty = qty - 1 WHERE item = $1"),
    (4302, "bob", "shop", "idle", "SELECT * FROM orders WHERE id = 42"),
    (4303, "postgres", "postgres", "idle in transaction", "BEGIN"),
)


@dataclass
class FakeController:
    """Records every command; raises `CommandRefused(refuse[name])` for names in `refuse`."""

    calls: list[tuple] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, *args))
        if name in self.refuse:
            raise CommandRefused(self.refuse[name])

    def reload(self) -> None:
        self._record("reload")

    def shutdown(self, mode: ShutdownMode) -> None:
        self._record("shutdown", mode)

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        self._record("signal_child", pid, started_at, signal)

    def promote(self) -> None:
        self._record("promote")

    def logrotate(self) -> None:
        self._record("logrotate")

    def start(self) -> None:
        self._record("start")

    def load_toggle(self) -> None:
        self._record("load_toggle")

    def open_session(self) -> None:
        self._record("open_session")

    def close(self) -> None:
        self._record("close")


# -- states -------------------------------------------------------------------------------


def running_state(now: float = NOW, started: float = EPOCH, **config: object) -> State:
    """PM_RUN with the usual auxiliary processes, the replication launcher and 3 backends."""
    children: dict[int, Child] = {}
    for child_id, (kind, pid) in enumerate(AUXILIARY, start=1):
        children[child_id] = Child(child_id, kind, pid, spawned_at=started + 0.9, started_at=started + 0.901 + child_id / 1000)
    launcher_id = len(children) + 1
    children[launcher_id] = Child(
        launcher_id, ChildKind.BGWORKER, 4248, spawned_at=started + 0.95, started_at=started + 0.951, bgworker=LOGICAL_REPLICATION_LAUNCHER.name
    )
    for offset, (pid, *_rest) in enumerate(BACKENDS):
        child_id = launcher_id + 1 + offset
        start = now - 600 + offset * 60
        children[child_id] = Child(child_id, ChildKind.BACKEND, pid, spawned_at=start, started_at=start + 0.001, cancel_key=pid * 7)
    return State(
        config=Config(**config),
        pm_state=PMState.RUN,
        startup_status=StartupStatus.NOT_RUNNING,
        reached_normal_running=True,
        started_at=started,
        children=children,
        bgworkers=(replace(LOGICAL_REPLICATION_LAUNCHER, child_id=launcher_id),),
        next_child_id=len(children) + 1,
        last_transition=Transition(PMState.STARTUP, PMState.RUN, "reaper S5: recovery finished", started + 0.9),
        last_pgstat_start_time=started + 0.9,
    )


def snapshot_of(state: State, now: float = NOW, **fields: object) -> Snapshot:
    """A snapshot with stats for every child and activity for every client backend."""
    stats = {
        child.pid: ProcessStats(cpu_percent=round((child.pid % 7) * 0.7, 1), rss=(8 + child.pid % 23) * 1024 * 1024)
        for child in state.children.values()
        if child.pid is not None
    }
    backends = {c.pid for c in state.children.values() if c.kind is ChildKind.BACKEND}
    activity = tuple(
        BackendActivity(pid, "client backend", user, db, "psql", "127.0.0.1", status, query, now - 600, now - (pid % 50))
        for pid, user, db, status, query in BACKENDS
        if pid in backends
    )
    values = {"postmaster_pid": POSTMASTER_PID, "data_dir": DATA_DIR, "port": 5432, "at": now, "stats": stats, "activity": activity}
    values.update(fields)
    return Snapshot(state=state, **values)


def without(state: State, *kinds: ChildKind) -> dict[int, Child]:
    return {i: c for i, c in state.children.items() if c.kind not in kinds}


def restarted(state: State, kind: ChildKind, new_pid: int, status: ExitStatus, verdict: str, back_in: float, now: float = NOW) -> State:
    """`kind` died `back_in` seconds before its successor `new_pid` started."""
    old = state.special(kind)
    record = ExitRecord(old.lineage_key, kind, old.pid, status, now - 2.0, verdict)
    children = without(state, kind)
    children[state.next_child_id] = Child(state.next_child_id, kind, new_pid, now - 2.0, now - 2.0 + back_in)
    restarts = {**state.restarts, old.lineage_key: state.restarts.get(old.lineage_key, 0) + 1}
    return replace(state, children=children, history=state.history + (record,), restarts=restarts, next_child_id=state.next_child_id + 1)


def crash_cycle_state(now: float = NOW) -> State:
    """The walwriter was SIGKILLed 2 s ago: FatalError, PM_WAIT_BACKENDS, SIGKILL stopwatch running."""
    state = running_state(now)
    walwriter = state.special(ChildKind.WALWRITER)
    record = ExitRecord(walwriter.lineage_key, ChildKind.WALWRITER, walwriter.pid, ExitStatus.killed(9), now - 2.0, "crash, everyone restarts")
    return replace(
        state,
        pm_state=PMState.WAIT_BACKENDS,
        fatal_error=True,
        abort_start_time=now - 2.0,
        children=without(state, ChildKind.WALWRITER),
        history=(record,),
        last_transition=Transition(PMState.RUN, PMState.WAIT_BACKENDS, "HandleChildCrash: WAL writer process was terminated by signal 9", now - 2.0),
    )


def shutdown_state(level: Shutdown, now: float = NOW) -> State:
    """Each shutdown level as it looks a moment after the request."""
    state = running_state(now)
    if level is Shutdown.SMART:
        return replace(state, shutdown=level, conns_allowed=ConnsAllowed.NONE)
    if level is Shutdown.FAST:
        backends = without(state, ChildKind.BACKEND, ChildKind.BGWORKER, ChildKind.AUTOVAC_LAUNCHER)
        return replace(
            state, shutdown=level, pm_state=PMState.SHUTDOWN, children=backends,
            last_transition=Transition(PMState.WAIT_BACKENDS, PMState.SHUTDOWN, "PostmasterStateMachine: SIGUSR2 to the checkpointer", now - 0.5),
        )
    return replace(
        state, shutdown=level, pm_state=PMState.WAIT_BACKENDS, abort_start_time=now - 1.2,
        last_transition=Transition(PMState.RUN, PMState.WAIT_BACKENDS, "pmdie: immediate shutdown", now - 1.2),
    )


def throttled_state(now: float = NOW) -> State:
    """Archiving on; the archiver and the replication launcher died and wait out their throttles."""
    state = running_state(now, archive_mode="on", archive_command="cp %p /tmp/archive/%f")
    launcher = next(c for c in state.children.values() if c.kind is ChildKind.BGWORKER)
    records = (
        ExitRecord("archiver", ChildKind.ARCHIVER, 4249, ExitStatus.exited(1), now - 3.0, "clean exit, restart this one"),
        ExitRecord(launcher.lineage_key, ChildKind.BGWORKER, launcher.pid, ExitStatus.exited(1), now - 2.0, "worker exit, restart after bgw_restart_time"),
    )
    return replace(
        state,
        children=without(state, ChildKind.BGWORKER),
        bgworkers=(replace(LOGICAL_REPLICATION_LAUNCHER, crashed_at=now - 2.0),),
        have_crashed_worker=True,
        last_pgarch_start_time=now - 3.0,
        history=records,
        restarts={"archiver": 2, launcher.lineage_key: 1},
    )


def recovery_state(now: float = NOW) -> State:
    """Crash recovery after a reinit: PM_STARTUP with the startup process replaying WAL."""
    state = running_state(now)
    startup = Child(40, ChildKind.STARTUP, 4400, now - 1.5, now - 1.499)
    return replace(
        state,
        pm_state=PMState.STARTUP,
        fatal_error=True,
        startup_status=StartupStatus.RUNNING,
        children={40: startup},
        last_transition=Transition(PMState.NO_CHILDREN, PMState.STARTUP, "T11: all server processes terminated; reinitializing", now - 1.5),
    )


def stopped_state(now: float = NOW) -> State:
    """After a clean fast shutdown: everything gone, exit code 0."""
    return replace(
        running_state(now), pm_state=PMState.NO_CHILDREN, shutdown=Shutdown.FAST, children={}, exit_code=0,
        last_transition=Transition(PMState.WAIT_DEAD_END, PMState.NO_CHILDREN, "PostmasterStateMachine: no children left", now - 0.2),
    )


RECOVERY = RecoveryProgress("0/1A2B3C8", "0/1F00A10", "0/2400000", 4180, 9000)


def many_backends(state: State, count: int, now: float = NOW) -> State:
    """The state plus `count` idle client backends (PIDs from 10000)."""
    children = dict(state.children)
    for n in range(count):
        child_id = state.next_child_id + n
        children[child_id] = Child(child_id, ChildKind.BACKEND, 10000 + n, now - 60, now - 59.999)
    return replace(state, children=children, next_child_id=state.next_child_id + count)


def log_record(level: LogLevel, message: str, pid: int = POSTMASTER_PID, at: float = NOW, **fields: object) -> LogRecord:
    stamp = "2023-11-14 23:15:23.250 UTC"
    lines = [f"{stamp} [{pid}] {level.name}:  {message}"]
    if fields.get("detail"):
        lines.append(f"{stamp} [{pid}] DETAIL:  {fields['detail']}")
    return LogRecord(at, pid, "postmaster", level, message, text="\n".join(lines), **fields)


def main() -> None:
    from pgtop.ui.fake_cluster import run_demo

    run_demo()


if __name__ == "__main__":
    main()
