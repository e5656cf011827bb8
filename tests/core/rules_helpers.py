"""Shared helpers for the rule-by-rule tests of the postmaster model (spec §2 to §8).

Hand-built states give each test a precise starting point: every child's id is its PID (see
`PID`), so an expected `SignalChild` reads as `(PID[ChildKind.BGWRITER], Sig.QUIT)`. Children
the model spawns during a test get ids from `FIRST_NEW_ID` on. The clock stands at `T0`, and
the lock-file and touch timers were last run at `T0`, so the ServerLoop body that follows every
handler adds nothing the test did not ask for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pgtop.core import Config, State, step
from pgtop.core.actions import Action, Log, SignalChild, Spawn, WritePidStatus
from pgtop.core.events import ChildExit, ChildrenExited, ChildStarted, Event
from pgtop.core.state import BgWorker, Child
from pgtop.core.vocabulary import (
    BgWorkerStartTime,
    ChildKind,
    ExitStatus,
    LogLevel,
    PidStatus,
    PMState,
    Sig,
    StartupStatus,
)

T0 = 1_000_000.0
FIRST_NEW_ID = 1000

K = ChildKind

# The PID (and child id) of each special child in a hand-built state.
PID: dict[ChildKind, int] = {
    K.STARTUP: 101,
    K.BGWRITER: 102,
    K.CHECKPOINTER: 103,
    K.WALWRITER: 104,
    K.WALRECEIVER: 105,
    K.AUTOVAC_LAUNCHER: 106,
    K.ARCHIVER: 107,
    K.STATS: 108,
    K.SYSLOGGER: 109,
}
# First PID of each BackendList kind; the n-th child of a kind gets base + n.
BACKEND_BASE = 200
WALSENDER_BASE = 300
AUTOVAC_WORKER_BASE = 400
BGWORKER_BASE = 500
DEAD_END_BASE = 600

# The special children that normally run in each resting state (PostgreSQL 14, spec §1).
STARTUP_SET = (K.STARTUP,)
RECOVERY_SET = (K.STARTUP, K.CHECKPOINTER, K.BGWRITER)
HOT_STANDBY_SET = (K.STARTUP, K.CHECKPOINTER, K.BGWRITER, K.STATS)
RUN_SET = (K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER, K.STATS)
ALL_SPECIALS = tuple(PID)

GROUP_SIGNALS = {Sig.INT, Sig.TERM, Sig.QUIT, Sig.STOP, Sig.KILL}


def child(kind: ChildKind, pid: int, *, dead_end: bool = False, bgworker: str | None = None,
          cancel_key: int = 0) -> Child:
    return Child(
        id=pid,
        kind=kind,
        pid=pid,
        spawned_at=T0 - 100,
        started_at=T0 - 100,
        dead_end=dead_end,
        bgworker=bgworker,
        cancel_key=cancel_key,
    )


def worker(
    name: str = "test worker",
    start_time: BgWorkerStartTime = BgWorkerStartTime.RECOVERY_FINISHED,
    restart_time: int = 5,
    *,
    shmem_access: bool = True,
    crashed_at: float | None = None,
    notify_pid: int | None = None,
) -> BgWorker:
    """A registered, not running background worker."""
    return BgWorker(
        name=name,
        start_time=start_time,
        restart_time=restart_time,
        shmem_access=shmem_access,
        crashed_at=crashed_at,
        notify_pid=notify_pid,
    )


def backend_pid(n: int) -> int:
    """The n-th client backend's PID; past 99 they move out of the other kinds' range."""
    return BACKEND_BASE + n if n < 100 else 10_000 + n


def make_state(
    pm_state: PMState,
    specials: Iterable[ChildKind] = (),
    *,
    backends: int = 0,
    walsenders: int = 0,
    av_workers: int = 0,
    dead_ends: int = 0,
    running_workers: Sequence[BgWorker] = (),
    idle_workers: Sequence[BgWorker] = (),
    config: Config | None = None,
    **fields: Any,
) -> State:
    """A postmaster in `pm_state` with exactly these children running.

    Running workers get PIDs BGWORKER_BASE+1..., backends BACKEND_BASE+1..., and so on.
    `fields` override any other State field (shutdown, fatal_error, startup_status...).
    """
    kids: list[Child] = [child(kind, PID[kind]) for kind in specials]
    kids += [child(K.BACKEND, backend_pid(n), cancel_key=7000 + n) for n in range(1, backends + 1)]
    kids += [child(K.WALSENDER, WALSENDER_BASE + n) for n in range(1, walsenders + 1)]
    kids += [child(K.AUTOVAC_WORKER, AUTOVAC_WORKER_BASE + n) for n in range(1, av_workers + 1)]
    kids += [child(K.BACKEND, DEAD_END_BASE + n, dead_end=True) for n in range(1, dead_ends + 1)]
    workers: list[BgWorker] = []
    for n, w in enumerate(running_workers, start=1):
        pid = BGWORKER_BASE + n
        kids.append(child(K.BGWORKER, pid, bgworker=w.name))
        workers.append(replace(w, child_id=pid))
    workers += list(idle_workers)
    defaults: dict[str, Any] = {
        "start_worker_needed": False,
        "last_lockfile_check": T0,
        "last_touch_time": T0,
        "started_at": T0 - 1000,
        "next_child_id": FIRST_NEW_ID,
    }
    if K.STARTUP in specials:
        defaults["startup_status"] = StartupStatus.RUNNING
    defaults.update(fields)
    return State(
        config=config or Config(),
        pm_state=pm_state,
        children={c.id: c for c in kids},
        bgworkers=tuple(workers),
        **defaults,
    )


@dataclass
class Outcome:
    """What one or more steps did: the final state and every action, with views on them."""

    state: State
    actions: list[Action] = field(default_factory=list)

    @property
    def log_records(self) -> list[Log]:
        """Log actions at LOG level or above (what a default server log shows)."""
        return [a for a in self.actions if isinstance(a, Log) and a.level >= LogLevel.LOG]

    @property
    def logs(self) -> list[str]:
        return [a.message for a in self.log_records]

    def logs_at(self, level: LogLevel) -> list[str]:
        return [a.message for a in self.actions if isinstance(a, Log) and a.level == level]

    @property
    def spawn_actions(self) -> list[Spawn]:
        return [a for a in self.actions if isinstance(a, Spawn)]

    @property
    def spawns(self) -> list[ChildKind]:
        return [a.kind for a in self.spawn_actions]

    @property
    def signals(self) -> list[tuple[int, Sig]]:
        """(child id, signal) in the order sent."""
        return [(a.child_id, a.signal) for a in self.actions if isinstance(a, SignalChild)]

    @property
    def signal_set(self) -> set[tuple[int, Sig]]:
        return set(self.signals)

    @property
    def pid_statuses(self) -> list[PidStatus]:
        return [a.status for a in self.actions if isinstance(a, WritePidStatus)]

    @property
    def others(self) -> list[Action]:
        """Every action that is not a Log, Spawn, SignalChild or WritePidStatus."""
        plain = (Log, Spawn, SignalChild, WritePidStatus)
        return [a for a in self.actions if not isinstance(a, plain)]

    def of_type(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]


def run(state: State, *events: Event, now: float = T0) -> Outcome:
    """Feed events one after the other at time `now`; collect every action."""
    actions: list[Action] = []
    for event in events:
        state, step_actions = step(state, event, now)
        actions.extend(step_actions)
    return Outcome(state, actions)


def answered(outcome: Outcome, now: float = T0) -> Outcome:
    """The runtime's answer to each Spawn: ChildStarted, with the PID equal to the id."""
    state = outcome.state
    for action in outcome.actions:
        if isinstance(action, Spawn):
            state, _ = step(state, ChildStarted(action.child_id, action.child_id), now)
    return Outcome(state, outcome.actions)


def exited(pid: int, code: int | None = None, signal: int | None = None, *,
           slot_released: bool = True, query: str | None = None) -> ChildrenExited:
    """reaper input for one hand-built child (id == PID) that exited or was killed."""
    status = ExitStatus(code=code, signal=signal)
    return ChildrenExited((ChildExit(pid, pid, status, slot_released=slot_released, query=query),))


def unknown_exit(pid: int, code: int | None = None, signal: int | None = None) -> ChildrenExited:
    """A PID the postmaster never started."""
    return ChildrenExited((ChildExit(None, pid, ExitStatus(code=code, signal=signal)),))


def running_kinds(state: State) -> list[ChildKind]:
    """The kinds of the running non-dead_end children, sorted for comparison."""
    return sorted((c.kind for c in state.children.values() if not c.dead_end), key=lambda k: k.value)


def exit_line(name: str, pid: int, code: int | None = None, signal: int | None = None) -> str:
    """LogChildExit's text, written out from spec §7 (not from the model)."""
    texts = {9: "Killed", 11: "Segmentation fault", 6: "Aborted", 15: "Terminated", 3: "Quit"}
    if code is not None:
        return f"{name} (PID {pid}) exited with exit code {code}"
    return f"{name} (PID {pid}) was terminated by signal {signal}: {texts[signal]}"


# The three ways a child can end, as pytest parameters: (code, signal).
EXIT_0 = (0, None)
EXIT_1 = (1, None)
KILLED = (None, 9)
