"""reaper (spec §2.2): what the postmaster does when each kind of child exits.

reaper collects every dead child, then calls PostmasterStateMachine once at the end. The PID is
tested in postmaster.c's order: startup, bgwriter, checkpointer, walwriter, walreceiver,
autovacuum launcher, archiver, stats collector, syslogger, bgworkers, then backends.
"""

from __future__ import annotations

from .bgworkers import cleanup_background_worker, maybe_start_bgworkers
from .crash import handle_child_crash
from .events import ChildExit, ChildrenExited
from .machine import Machine, child_exit_message
from .serverloop import pgarch_startup_allowed, pgstat_start
from .state import Child
from .statemachine import exit_postmaster, postmaster_state_machine
from .vocabulary import (
    EXIT_NAME,
    ChildKind,
    ConnsAllowed,
    ExitStatus,
    LogLevel,
    PidStatus,
    PMState,
    Shutdown,
    Sig,
    StartupStatus,
)

CRASH = "crash, everyone restarts"
CLEAN_RESTART = "clean exit, restart this one"


def reaper(m: Machine, event: ChildrenExited) -> None:
    for exit_ in event.exits:
        if m.s.exit_code is not None:
            return  # S3 ended the postmaster in the middle of the batch
        child = m.children.get(exit_.child_id) if exit_.child_id is not None else None
        if child is None:
            child = m.find_pid(exit_.pid)
        if child is None:
            _unknown_child(m, exit_)
            continue
        _reap_one(m, child, exit_)
    if m.s.exit_code is None:
        postmaster_state_machine(m)


def _unknown_child(m: Machine, exit_: ChildExit) -> None:
    """A PID that matches nothing: silent if 0 or 1, otherwise a crash."""
    if exit_.status.is_0 or exit_.status.is_1:
        return
    handle_child_crash(m, exit_.pid, exit_.status, "server process")


def _reap_one(m: Machine, child: Child, exit_: ChildExit) -> None:
    if child.dead_end or child.kind in (ChildKind.BACKEND, ChildKind.WALSENDER, ChildKind.AUTOVAC_WORKER):
        _cleanup_backend(m, child, exit_)
    elif child.kind is ChildKind.BGWORKER:
        cleanup_background_worker(m, child, exit_.status, exit_.slot_released)
    else:
        # A special child: its PID variable is cleared first, then its kind's rule applies.
        m.remove_child(child)
        _SPECIAL_RULES.get(child.kind, _aux_exited)(m, child, exit_.pid, exit_.status)


def _crash(m: Machine, child: Child, pid: int, status: ExitStatus, query: str | None = None) -> None:
    m.record_exit(child, pid, status, CRASH)
    handle_child_crash(m, pid, status, EXIT_NAME[child.kind], query)


def _aux_exited(m: Machine, child: Child, pid: int, status: ExitStatus) -> None:
    """bgwriter, walwriter, autovacuum launcher: exit 0 is benign (ServerLoop restarts
    them when the state allows); walreceiver: 0 and 1 are benign and it is not restarted
    until the startup process asks again; anything else is a crash."""
    if child.kind is ChildKind.WALRECEIVER:
        if status.is_0 or status.is_1:
            m.record_exit(child, pid, status, "exit, restarted when the startup process asks")
            return
    elif status.is_0:
        m.record_exit(child, pid, status, CLEAN_RESTART)
        return
    _crash(m, child, pid, status)


def _startup_exited(m: Machine, child: Child, pid: int, status: ExitStatus) -> None:
    s = m.s
    # S1: the startup process ended because of a shutdown request (or finished anyway).
    if s.shutdown > Shutdown.NO and (status.is_0 or status.is_1):
        m.record_exit(child, pid, status, "ended by the shutdown")
        m.update(startup_status=StartupStatus.NOT_RUNNING)
        m.set_pm_state(PMState.WAIT_BACKENDS, "reaper S1")
        return
    # S2: a recovery target was reached with recovery_target_action=shutdown.
    if status.is_3:
        m.record_exit(child, pid, status, "shutdown at recovery target")
        m.log(LogLevel.LOG, "shutdown at recovery target")
        m.update(startup_status=StartupStatus.NOT_RUNNING, shutdown=max(s.shutdown, Shutdown.SMART))
        m.terminate_children(Sig.TERM)
        m.set_pm_state(PMState.WAIT_BACKENDS, "reaper S2")
        return
    # S3 (14): an unexpected exit during PM_STARTUP is catastrophic: exit at once.
    if s.pm_state == PMState.STARTUP and s.startup_status is not StartupStatus.SIGNALED and not status.is_0:
        m.record_exit(child, pid, status, "startup failed, postmaster exits")
        m.log(LogLevel.LOG, child_exit_message("startup process", pid, status))
        m.log(LogLevel.LOG, "aborting startup due to startup process failure")
        exit_postmaster(m, 1)
        return
    # S4: any other failure: restart only if we killed it ourselves.
    if not status.is_0:
        if s.startup_status is StartupStatus.SIGNALED:
            m.update(startup_status=StartupStatus.NOT_RUNNING)
            if s.pm_state == PMState.STARTUP:
                m.set_pm_state(PMState.WAIT_BACKENDS, "reaper S4")
        else:
            m.update(startup_status=StartupStatus.CRASHED)
        _crash(m, child, pid, status)
        return
    # S5: recovery finished: commence normal operations.
    m.record_exit(child, pid, status, "recovery finished")
    _recovery_finished(m)


def _recovery_finished(m: Machine) -> None:
    """reaper S5."""
    m.update(
        startup_status=StartupStatus.NOT_RUNNING,
        fatal_error=False,
        abort_start_time=0.0,
        reached_normal_running=True,
        conns_allowed=ConnsAllowed.ALL,
    )
    m.set_pm_state(PMState.RUN, "reaper S5")
    # Crank up the background tasks, if we did not already at consistency.
    for kind in (ChildKind.CHECKPOINTER, ChildKind.BGWRITER, ChildKind.WALWRITER):
        if not m.running(kind):
            m.spawn(kind)
    if m.s.config.autovacuum_active and not m.running(ChildKind.AUTOVAC_LAUNCHER):
        m.spawn(ChildKind.AUTOVAC_LAUNCHER)
    # Note the order: the throttle is consulted (and recorded) before the PID test.
    if pgarch_startup_allowed(m) and not m.running(ChildKind.ARCHIVER):
        m.spawn(ChildKind.ARCHIVER)
    if not m.running(ChildKind.STATS):
        pgstat_start(m)
    maybe_start_bgworkers(m)
    m.log(LogLevel.LOG, "database system is ready to accept connections")
    m.write_pid_status(PidStatus.READY)


def _checkpointer_exited(m: Machine, child: Child, pid: int, status: ExitStatus) -> None:
    """Exit 0 is only valid after the shutdown checkpoint; anything else is a crash."""
    if status.is_0 and m.s.pm_state == PMState.SHUTDOWN:
        m.record_exit(child, pid, status, "shutdown checkpoint done")
        m.signal_special(ChildKind.ARCHIVER, Sig.USR2)  # waken the archiver a last time
        m.signal_children(Sig.USR2)  # and the walsenders
        m.set_pm_state(PMState.SHUTDOWN_2, "reaper: checkpointer exited 0 in PM_SHUTDOWN")
        m.signal_special(ChildKind.STATS, Sig.QUIT)  # (14) nothing left for it to do
        return
    _crash(m, child, pid, status)


def _archiver_exited(m: Machine, child: Child, pid: int, status: ExitStatus) -> None:
    """Exit 0 or 1 is benign; in every case try to restart (throttled)."""
    if status.is_0 or status.is_1:
        m.record_exit(child, pid, status, "exit, restart throttled to one per 10 s")
    else:
        _crash(m, child, pid, status)
    if pgarch_startup_allowed(m):
        m.spawn(ChildKind.ARCHIVER)


def _stats_exited(m: Machine, child: Child, pid: int, status: ExitStatus) -> None:
    """(14) Never a crash: log a bad exit, restart in RUN/HOT_STANDBY (60 s throttle)."""
    m.record_exit(child, pid, status, "exit logged, restart throttled to one per 60 s")
    if not status.is_0:
        m.log(LogLevel.LOG, child_exit_message(EXIT_NAME[child.kind], pid, status))
    if m.s.pm_state in (PMState.RUN, PMState.HOT_STANDBY):
        pgstat_start(m)


def _syslogger_exited(m: Machine, child: Child, pid: int, status: ExitStatus) -> None:
    """Launch a new logger *first*, then log; never a crash, never throttled."""
    m.record_exit(child, pid, status, "restarted at once")
    if m.s.config.logging_collector:
        m.spawn(ChildKind.SYSLOGGER)
    if not status.is_0:
        m.log(LogLevel.LOG, child_exit_message(EXIT_NAME[child.kind], pid, status))


def _cleanup_backend(m: Machine, child: Child, exit_: ChildExit) -> None:
    """CleanupBackend(): 0 and 1 are normal (1 = FATAL); a child that did not release its
    slot is a crash all the same (the dead-man switch)."""
    status = exit_.status
    m.log(LogLevel.DEBUG2, child_exit_message("server process", exit_.pid, status))
    m.remove_child(child)
    if not (status.is_0 or status.is_1) or (not child.dead_end and not exit_.slot_released):
        _crash(m, child, exit_.pid, status, exit_.query)
        return
    if child.kind is not ChildKind.BACKEND:
        m.record_exit(child, exit_.pid, status, "exit")


_SPECIAL_RULES = {
    ChildKind.STARTUP: _startup_exited,
    ChildKind.CHECKPOINTER: _checkpointer_exited,
    ChildKind.ARCHIVER: _archiver_exited,
    ChildKind.STATS: _stats_exited,
    ChildKind.SYSLOGGER: _syslogger_exited,
}  # bgwriter, walwriter, walreceiver, autovacuum launcher: _aux_exited
