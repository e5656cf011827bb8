"""The postmaster's state: one immutable record that doubles as the snapshot the UI shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Config
from .vocabulary import (
    BGW_NEVER_RESTART,
    BgWorkerStartTime,
    ChildKind,
    ConnsAllowed,
    ExitStatus,
    PidStatus,
    PMState,
    Shutdown,
    StartupStatus,
)

# BackendList kinds counted by CountChildren (dead_end children never are).
BACKEND_LIST_KINDS = frozenset(
    {ChildKind.BACKEND, ChildKind.WALSENDER, ChildKind.AUTOVAC_WORKER, ChildKind.BGWORKER}
)

HISTORY_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Child:
    """One running child. `pid` is None between the Spawn and its ChildStarted."""

    id: int
    kind: ChildKind
    pid: int | None
    spawned_at: float
    started_at: float | None = None
    dead_end: bool = False
    bgworker: str | None = None
    cancel_key: int = 0
    remote: str | None = None

    @property
    def in_backend_list(self) -> bool:
        return self.dead_end or self.kind in BACKEND_LIST_KINDS

    @property
    def lineage_key(self) -> str:
        """What "the same child" means across restarts: its kind, or a worker's name."""
        if self.bgworker is not None:
            return f"background worker {self.bgworker}"
        return self.kind.value


@dataclass(frozen=True, slots=True)
class BgWorker:
    """A registered background worker (RegisteredBgWorker)."""

    name: str
    start_time: BgWorkerStartTime
    restart_time: int  # seconds, or BGW_NEVER_RESTART
    shmem_access: bool = True
    child_id: int | None = None
    crashed_at: float | None = None
    terminate: bool = False
    notify_pid: int | None = None

    @property
    def never_restart(self) -> bool:
        return self.restart_time == BGW_NEVER_RESTART


LOGICAL_REPLICATION_LAUNCHER = BgWorker(
    name="logical replication launcher",
    start_time=BgWorkerStartTime.RECOVERY_FINISHED,
    restart_time=5,
)


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """A child's death as the reaper judged it, for the dashboard's lineage column."""

    key: str
    kind: ChildKind
    pid: int
    status: ExitStatus | None  # None: unknown (attach mode, a death no log line explains)
    at: float
    verdict: str  # e.g. "clean exit, restart this one", "crash, everyone restarts"


@dataclass(frozen=True, slots=True)
class Transition:
    """The last pmState change and the rule that made it."""

    before: PMState
    after: PMState
    rule: str
    at: float


@dataclass(frozen=True)
class State:
    """Every postmaster variable of spec §0, the children, and the bookkeeping the UI shows."""

    config: Config
    pm_state: PMState = PMState.INIT
    shutdown: Shutdown = Shutdown.NO
    fatal_error: bool = False
    startup_status: StartupStatus = StartupStatus.NOT_RUNNING
    conns_allowed: ConnsAllowed = ConnsAllowed.ALL
    abort_start_time: float = 0.0
    reached_normal_running: bool = False
    start_worker_needed: bool = True
    have_crashed_worker: bool = False
    walreceiver_requested: bool = False
    start_autovac_launcher: bool = False
    avlauncher_needs_signal: bool = False
    exclusive_backup: bool = False
    # Throttles: PgArchStartupAllowed()'s last approval, pgstat_start()'s last attempt.
    last_pgarch_start_time: float = 0.0
    last_pgstat_start_time: float = 0.0
    last_lockfile_check: float = 0.0
    last_touch_time: float = 0.0
    started_at: float = 0.0
    pid_status: PidStatus | None = None
    exit_code: int | None = None
    children: dict[int, Child] = field(default_factory=dict)
    bgworkers: tuple[BgWorker, ...] = ()
    next_child_id: int = 1
    last_transition: Transition | None = None
    history: tuple[ExitRecord, ...] = ()
    restarts: dict[str, int] = field(default_factory=dict)

    # -- queries the postmaster and the UI both use -------------------------------------

    def special(self, kind: ChildKind) -> Child | None:
        """The single child of a special kind (StartupPID, BgWriterPID, ...), if running."""
        for child in self.children.values():
            if child.kind is kind and not child.dead_end:
                return child
        return None

    def backend_list(self) -> list[Child]:
        return [c for c in self.children.values() if c.in_backend_list]

    def count_children(self, kinds: frozenset[ChildKind] = BACKEND_LIST_KINDS) -> int:
        """CountChildren(): BackendList children of these kinds, never dead_ends."""
        return sum(
            1 for c in self.children.values() if not c.dead_end and c.kind in kinds
        )

    def last_exit(self, key: str) -> ExitRecord | None:
        for record in reversed(self.history):
            if record.key == key:
                return record
        return None


def initial_state(config: Config, now: float) -> State:
    """The state PostmasterMain starts from, with the built-in bgworkers registered."""
    workers = (LOGICAL_REPLICATION_LAUNCHER,) if config.max_logical_replication_workers > 0 else ()
    return State(config=config, bgworkers=workers, started_at=now, last_lockfile_check=now, last_touch_time=now)
