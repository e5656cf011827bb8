"""What a real child's death meant, in the words the dashboard's lineage column uses.

A death is seen the moment it happens (pidfd), but how the child ended is only known when
the postmaster says so in the log (LogChildExit, at LOG level only for crashes and a few
kinds) or when the child wrote a FATAL line (it then exits with 1). Otherwise the status is
inferred from what was going on, and the verdict says "(inferred)".
"""

from __future__ import annotations

from dataclasses import dataclass

from pgtop.core.state import Child
from pgtop.core.vocabulary import ChildKind, ExitStatus, PMState, Shutdown

CRASH = "crash, everyone restarts"
CLEAN_RESTART = "clean exit, restart this one"
BY_SHUTDOWN = "ended by the shutdown"
CRASH_VICTIM = "quit in the crash cycle"
KILLED_BY_POSTMASTER = "SIGKILL to recalcitrant children"
BY_IMMEDIATE = "quit by the immediate shutdown"
INFERRED = " (inferred)"
LOGICAL_LAUNCHER = "logical replication launcher"
# A death seen this close before the log line that explains it still counts (the pidfd
# wakes us at once, the postmaster's log line is stamped a moment before it signals).
CLOCK_SLACK = 0.05


@dataclass(frozen=True, slots=True)
class Death:
    """A child seen gone, with the postmaster's state at that moment."""

    child: Child
    at: float
    pm_state: PMState
    shutdown: Shutdown


def reaper_verdict(kind: ChildKind, status: ExitStatus, pm_state: PMState, shutdown: Shutdown, bgworker: str | None = None) -> str:
    """What the postmaster does about this exit (spec §2.2), in a few words."""
    ok = status.is_0 or status.is_1
    if kind is ChildKind.STARTUP:
        if shutdown > Shutdown.NO and ok:
            return BY_SHUTDOWN
        if status.is_3:
            return "shutdown at recovery target"
        return "recovery finished" if status.is_0 else CRASH
    if kind is ChildKind.CHECKPOINTER:
        return "shutdown checkpoint done" if status.is_0 and pm_state == PMState.SHUTDOWN else CRASH
    if kind is ChildKind.WALRECEIVER:
        return "exit, restarted when the startup process asks" if ok else CRASH
    if kind is ChildKind.ARCHIVER:
        return "exit, restart throttled to one per 10 s" if ok else CRASH
    if kind is ChildKind.STATS:
        return "exit logged, restart throttled to one per 60 s"
    if kind is ChildKind.SYSLOGGER:
        return "restarted at once"
    if kind is ChildKind.BGWORKER:
        return _bgworker_verdict(status, shutdown, bgworker)
    if kind in (ChildKind.BGWRITER, ChildKind.WALWRITER, ChildKind.AUTOVAC_LAUNCHER):
        if not status.is_0:
            return CRASH
        return BY_SHUTDOWN if shutdown > Shutdown.NO else CLEAN_RESTART
    return ("exit" if shutdown == Shutdown.NO else BY_SHUTDOWN) if ok else CRASH


def _bgworker_verdict(status: ExitStatus, shutdown: Shutdown, name: str | None) -> str:
    if not (status.is_0 or status.is_1):
        return CRASH  # PostgreSQL 15: any other exit of any worker is a crash
    if shutdown > Shutdown.NO:
        return BY_SHUTDOWN
    if status.is_0:
        return "clean exit, never restarted"
    return "exit, restart after 5 s" if name == LOGICAL_LAUNCHER else "exit, restart after its bgw_restart_time"


@dataclass(slots=True)
class Happenings:
    """When the postmaster announced the things that end children (from the log)."""

    crashes: list[float]
    sigkills: list[float]
    immediate_at: float | None = None

    def covers(self, times: list[float], death: Death) -> bool:
        """The child lived when it was announced and died after it."""
        started = death.child.started_at or 0.0
        return any(started <= at <= death.at + CLOCK_SLACK for at in times)


def inferred_verdict(death: Death, happened: Happenings, *, log_followed: bool, victim: bool = False) -> tuple[ExitStatus, str] | None:
    """Status and verdict of a death the log did not explain (`victim`: it was waiting for
    its explanation when a crash was logged); None when nothing can be said (no log to
    rule out a crash)."""
    child = death.child
    if happened.covers(happened.sigkills, death):
        return ExitStatus.killed(9), KILLED_BY_POSTMASTER + INFERRED
    if victim or happened.covers(happened.crashes, death):
        return ExitStatus.exited(2), CRASH_VICTIM + INFERRED  # quickdie: _exit(2)
    if happened.immediate_at is not None and happened.covers([happened.immediate_at], death):
        return ExitStatus.exited(2), BY_IMMEDIATE + INFERRED
    if not log_followed:
        return None
    # Every abnormal exit that matters is logged at LOG, so an unlogged one was clean.
    status = ExitStatus.exited(0)
    return status, reaper_verdict(child.kind, status, death.pm_state, death.shutdown, child.bgworker) + INFERRED
