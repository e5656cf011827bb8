"""The working context of one step: the postmaster's variables, its children and its helpers.

A `Machine` holds the state being built and the actions emitted so far. Handlers read and
write it the way postmaster.c reads and writes its globals; at the end of the step the state
is frozen again. The helpers here are the postmaster's own: signal_child, SignalSomeChildren,
TerminateChildren, CountChildren, and the single funnel for pmState changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from .actions import Action, Log, SignalChild, Spawn, WritePidStatus
from .state import (
    BACKEND_LIST_KINDS,
    HISTORY_LENGTH,
    BgWorker,
    Child,
    ExitRecord,
    State,
    Transition,
)
from .vocabulary import (
    GROUP_SIGNALS,
    STRSIGNAL,
    ChildKind,
    ExitStatus,
    LogLevel,
    PidStatus,
    PMState,
    Sig,
    StartupStatus,
)

# TerminateChildren's special children, in postmaster.c's order (the syslogger never).
TERMINATE_ORDER = (
    ChildKind.STARTUP,
    ChildKind.BGWRITER,
    ChildKind.CHECKPOINTER,
    ChildKind.WALWRITER,
    ChildKind.WALRECEIVER,
    ChildKind.AUTOVAC_LAUNCHER,
    ChildKind.ARCHIVER,
    ChildKind.STATS,
)
STATE_FIELDS = frozenset(f.name for f in fields(State))


def child_exit_message(name: str, pid: int, status: ExitStatus) -> str:
    """LogChildExit's text (spec §7)."""
    if status.code is not None:
        return f"{name} (PID {pid}) exited with exit code {status.code}"
    text = STRSIGNAL.get(status.signal or 0, f"Unknown signal {status.signal}")
    return f"{name} (PID {pid}) was terminated by signal {status.signal}: {text}"


class Machine:
    """One step of the postmaster: mutable while the handlers run, frozen afterwards."""

    def __init__(self, state: State, now: float) -> None:
        self.s = state
        self.now = now
        self.actions: list[Action] = []
        self._children: dict[int, Child] | None = None

    # -- state ---------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """dataclasses.replace(self.s, **changes), without its round trip through __init__
        for every field: a step makes several updates, and those round trips were two
        thirds of a step, which sits between a child's death and its replacement."""
        if not changes.keys() <= STATE_FIELDS:
            raise TypeError(f"State has no field {', '.join(sorted(changes.keys() - STATE_FIELDS))}")
        new = object.__new__(State)
        new.__dict__.update(self.s.__dict__, **changes)  # frozen: filled before anyone sees it
        self.s = new

    def set_pm_state(self, new: PMState, rule: str) -> None:
        """Every pmState change goes through here, so each one is logged and recorded."""
        old = self.s.pm_state
        if new == old:
            return
        self.log(LogLevel.DEBUG1, f"updating PMState from {old.pg_name} to {new.pg_name}")
        self.update(pm_state=new, last_transition=Transition(old, new, rule, self.now))

    def write_pid_status(self, status: PidStatus) -> None:
        """AddToDataDirLockFile(LOCK_FILE_LINE_PM_STATUS, ...)."""
        self.update(pid_status=status)
        self.emit(WritePidStatus(status))

    def emit(self, action: Action) -> None:
        self.actions.append(action)

    def log(
        self,
        level: LogLevel,
        message: str,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.emit(Log(level, message, detail, hint))

    def result(self) -> tuple[State, list[Action]]:
        if self._children is not None:
            self.update(children=self._children)
            self._children = None
        return self.s, self.actions

    # -- the child table -----------------------------------------------------------------

    @property
    def children(self) -> dict[int, Child]:
        """The live child table (read it; change it through the methods below)."""
        return self._children if self._children is not None else self.s.children

    def _writable_children(self) -> dict[int, Child]:
        if self._children is None:
            self._children = dict(self.s.children)
        return self._children

    def special(self, kind: ChildKind) -> Child | None:
        """StartupPID, BgWriterPID, ...: the single running child of a special kind."""
        for child in self.children.values():
            if child.kind is kind and not child.dead_end:
                return child
        return None

    def running(self, kind: ChildKind) -> bool:
        return self.special(kind) is not None

    def find_pid(self, pid: int) -> Child | None:
        for child in self.children.values():
            if child.pid == pid:
                return child
        return None

    def spawn(self, kind: ChildKind, **extra: Any) -> Child:
        """Ask the runtime to fork a child; it answers with ChildStarted or ForkFailed."""
        child_id = self.s.next_child_id
        child = Child(
            id=child_id,
            kind=kind,
            pid=None,
            spawned_at=self.now,
            dead_end=extra.get("dead_end", False),
            bgworker=extra.get("bgworker"),
            cancel_key=extra.get("cancel_key", 0),
            remote=extra.get("remote"),
        )
        self._writable_children()[child_id] = child
        self.update(next_child_id=child_id + 1)
        if kind is not ChildKind.BACKEND:
            restarts = dict(self.s.restarts)
            restarts[child.lineage_key] = restarts.get(child.lineage_key, -1) + 1
            self.update(restarts=restarts)
        spawn_fields = {k: v for k, v in extra.items() if k != "remote"}
        self.emit(Spawn(child_id=child_id, kind=kind, **spawn_fields))
        return child

    def set_child(self, child: Child) -> None:
        self._writable_children()[child.id] = child

    def remove_child(self, child: Child) -> None:
        self._writable_children().pop(child.id, None)

    def record_exit(self, child: Child, pid: int, status: ExitStatus, verdict: str) -> None:
        record = ExitRecord(child.lineage_key, child.kind, pid, status, self.now, verdict)
        self.update(history=(self.s.history + (record,))[-HISTORY_LENGTH:])

    def set_bgworkers(self, workers: Iterable[BgWorker]) -> None:
        self.update(bgworkers=tuple(workers))

    # -- postmaster.c's signalling helpers (spec §4.1) -----------------------------------

    def signal_child(self, child: Child, sig: Sig) -> None:
        """signal_child(): INT, TERM, QUIT, STOP and KILL also hit the process group."""
        self.emit(SignalChild(child.id, sig, group=sig in GROUP_SIGNALS))

    def signal_special(self, kind: ChildKind, sig: Sig) -> None:
        child = self.special(kind)
        if child is not None:
            self.signal_child(child, sig)

    def backend_list(self) -> list[Child]:
        return [c for c in self.children.values() if c.in_backend_list]

    def signal_some_children(self, sig: Sig, kinds: frozenset[ChildKind]) -> None:
        """SignalSomeChildren(): BackendList children of these kinds, never dead_ends."""
        for child in self.backend_list():
            if not child.dead_end and child.kind in kinds:
                self.signal_child(child, sig)

    def signal_children(self, sig: Sig) -> None:
        """SignalChildren(): every non-dead_end BackendList child."""
        self.signal_some_children(sig, BACKEND_LIST_KINDS)

    def terminate_children(self, sig: Sig) -> None:
        """TerminateChildren(): all but dead_ends and the syslogger; SIGQUIT or SIGKILL
        marks the startup process SIGNALED."""
        self.signal_children(sig)
        for kind in TERMINATE_ORDER:
            child = self.special(kind)
            if child is None:
                continue
            self.signal_child(child, sig)
            if kind is ChildKind.STARTUP and sig in (Sig.QUIT, Sig.KILL):
                self.update(startup_status=StartupStatus.SIGNALED)

    def count_children(self, kinds: frozenset[ChildKind] = BACKEND_LIST_KINDS) -> int:
        """CountChildren(): never counts dead_end children."""
        return sum(1 for c in self.children.values() if not c.dead_end and c.kind in kinds)
