"""What a real child's death meant, in the words the dashboard's lineage column uses.

A death is seen the moment it happens (pidfd), but how the child ended is only known when
the postmaster says so in the log (LogChildExit, at LOG level only for crashes and a few
kinds) or when the child wrote a FATAL line (it then exits with 1). Otherwise the verdict is
inferred from what was going on, and says "(inferred)"; the exit status is inferred only
where PostgreSQL's logging rules leave one possibility, else it is None: unknown (the
dashboard shows "unknown", never a guessed code).
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
NO_LOG = "exit seen in ps only (no log to say how)"
LOGICAL_LAUNCHER = "logical replication launcher"
# Kinds whose exit 0 and exit 1 both go unlogged at LOG (the reaper takes either as a
# normal exit, LogChildExit at DEBUG2): an unexplained death of one has an unknown status.
# Every other kind logs any exit but 0 (a crash, or a bgworker's exit 1).
EITHER_UNLOGGED = frozenset({ChildKind.WALRECEIVER, ChildKind.ARCHIVER, ChildKind.BACKEND, ChildKind.WALSENDER, ChildKind.AUTOVAC_WORKER})
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


def inferred_verdict(death: Death, happened: Happenings, *, log_followed: bool, victim: bool = False) -> tuple[ExitStatus | None, str]:
    """Status (None: unknown) and verdict of a death no log line explained (`victim`: it was
    waiting for its explanation when a crash was logged)."""
    child = death.child
    if happened.covers(happened.sigkills, death):  # logged: "issuing SIGKILL to recalcitrant children"
        return ExitStatus.killed(9), KILLED_BY_POSTMASTER + INFERRED
    if victim or happened.covers(happened.crashes, death):
        # quickdie: _exit(2), when the crash was logged; a crash inferred from ps alone may
        # not have been one, so how the others ended is not known either.
        return (ExitStatus.exited(2) if log_followed else None), CRASH_VICTIM + INFERRED
    if happened.immediate_at is not None and happened.covers([happened.immediate_at], death):
        return ExitStatus.exited(2), BY_IMMEDIATE + INFERRED
    clean = ExitStatus.exited(0)
    if not log_followed:
        if death.shutdown == Shutdown.NO:
            return None, NO_LOG  # nothing rules out a crash, nor a clean exit
        return None, reaper_verdict(child.kind, clean, death.pm_state, death.shutdown, child.bgworker) + INFERRED
    # Every other exit is logged at LOG, so an unlogged one was an exit 0 (or 1, for some).
    either = child.kind in EITHER_UNLOGGED or (child.kind is ChildKind.STARTUP and death.shutdown > Shutdown.NO)
    verdict = reaper_verdict(child.kind, clean, death.pm_state, death.shutdown, child.bgworker) + INFERRED
    return (None if either else clean), verdict
