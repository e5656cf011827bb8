"""PostmasterStateMachine (spec §5): the shutdown and crash-cycle transitions T1-T11.

The blocks run in order within one call, so a single call can chain several transitions
(RUN -> STOP_BACKENDS -> WAIT_BACKENDS -> SHUTDOWN). It runs at the end of the reaper, of each
pmdie case, and on ADVANCE_STATE_MACHINE.
"""

from __future__ import annotations

from .actions import CancelBackup, Exit, ResetSharedMemory
from .bgworkers import (
    forget_unstarted_background_workers,
    reset_background_worker_crash_times,
)
from .machine import Machine
from .state import BACKEND_LIST_KINDS
from .vocabulary import (
    ChildKind,
    ConnsAllowed,
    LogLevel,
    PMState,
    Shutdown,
    Sig,
    StartupStatus,
)

NON_WALSENDER_KINDS = BACKEND_LIST_KINDS - {ChildKind.WALSENDER}
NORMAL_KINDS = frozenset({ChildKind.BACKEND})

# T4: the children that must be gone before the shutdown checkpoint (or the dead-end wait).
T4_MUST_BE_GONE = (
    ChildKind.STARTUP,
    ChildKind.WALRECEIVER,
    ChildKind.BGWRITER,
    ChildKind.WALWRITER,
    ChildKind.AUTOVAC_LAUNCHER,
)


def postmaster_state_machine(m: Machine) -> None:
    """PostmasterStateMachine(): advance as far as the children allow."""
    _smart_shutdown_substates(m)
    if m.s.pm_state == PMState.STOP_BACKENDS:
        _stop_backends(m)
    if m.s.pm_state == PMState.WAIT_BACKENDS:
        _wait_backends(m)
    # T5: SHUTDOWN_2 ends when the archiver and walsenders are gone.
    if (
        m.s.pm_state == PMState.SHUTDOWN_2
        and not m.running(ChildKind.ARCHIVER)
        and m.count_children() == 0
    ):
        m.set_pm_state(PMState.WAIT_DEAD_END, "T5")
    # T6: WAIT_DEAD_END ends when BackendList is empty (dead_ends included) and the
    # archiver and stats collector are gone; the syslogger is not considered.
    if (
        m.s.pm_state == PMState.WAIT_DEAD_END
        and not m.backend_list()
        and not m.running(ChildKind.ARCHIVER)
        and not m.running(ChildKind.STATS)
    ):
        m.set_pm_state(PMState.NO_CHILDREN, "T6")
    if m.s.pm_state == PMState.NO_CHILDREN:
        _no_children(m)


def _smart_shutdown_substates(m: Machine) -> None:
    if m.s.pm_state not in (PMState.RUN, PMState.HOT_STANDBY):
        return
    # T1 (14): the superuser-only phase ends once no exclusive backup is active.
    if m.s.conns_allowed is ConnsAllowed.SUPERUSER and not m.s.exclusive_backup:
        m.update(conns_allowed=ConnsAllowed.NONE)
    # T2: no new connections, and the last normal backend has left.
    if m.s.conns_allowed is ConnsAllowed.NONE and m.count_children(NORMAL_KINDS) == 0:
        m.set_pm_state(PMState.STOP_BACKENDS, "T2")


def _stop_backends(m: Machine) -> None:
    """T3: SIGTERM everything but walsenders, checkpointer, archiver, stats and logger."""
    forget_unstarted_background_workers(m)
    m.signal_some_children(Sig.TERM, NON_WALSENDER_KINDS)
    for kind in (
        ChildKind.AUTOVAC_LAUNCHER,
        ChildKind.BGWRITER,
        ChildKind.WALWRITER,
        ChildKind.STARTUP,
        ChildKind.WALRECEIVER,
    ):
        m.signal_special(kind, Sig.TERM)
    m.set_pm_state(PMState.WAIT_BACKENDS, "T3")


def _wait_backends(m: Machine) -> None:
    s = m.s
    checkpointer = m.special(ChildKind.CHECKPOINTER)
    if m.count_children(NON_WALSENDER_KINDS) != 0:
        return
    if any(m.running(kind) for kind in T4_MUST_BE_GONE):
        return
    if checkpointer is not None and (s.fatal_error or s.shutdown >= Shutdown.IMMEDIATE):
        return
    if s.shutdown >= Shutdown.IMMEDIATE or s.fatal_error:
        # T4a: archiver and stats were already SIGQUIT'd; wait for the dead_ends.
        m.set_pm_state(PMState.WAIT_DEAD_END, "T4a")
        return
    # T4b: normal shutdown: the shutdown checkpoint. A failed fork of the checkpointer
    # arrives later as ForkFailed and takes the T4c path (see step.fork_failed).
    if checkpointer is None:
        checkpointer = m.spawn(ChildKind.CHECKPOINTER)
    m.signal_child(checkpointer, Sig.USR2)
    m.set_pm_state(PMState.SHUTDOWN, "T4b")


def shutdown_checkpointer_fork_failed(m: Machine) -> None:
    """T4c: no checkpointer could be forked for the shutdown checkpoint: just shut down,
    and have "abnormal database system shutdown" logged."""
    m.update(fatal_error=True)
    m.set_pm_state(PMState.WAIT_DEAD_END, "T4c")
    m.signal_children(Sig.QUIT)
    m.signal_special(ChildKind.ARCHIVER, Sig.QUIT)
    m.signal_special(ChildKind.STATS, Sig.QUIT)


def _no_children(m: Machine) -> None:
    s = m.s
    if s.shutdown > Shutdown.NO:
        if s.fatal_error:
            # T7: a shutdown that finishes a crash cycle.
            m.log(LogLevel.LOG, "abnormal database system shutdown")
            exit_postmaster(m, 1)
            return
        # T8: the normal exit (immediate shutdown included).
        if s.reached_normal_running:
            m.emit(CancelBackup())
        exit_postmaster(m, 0)
        return
    if s.startup_status is StartupStatus.CRASHED:
        # T9: the startup process failed; restarting would likely fail again.
        m.log(LogLevel.LOG, "shutting down due to startup process failure")
        exit_postmaster(m, 1)
        return
    if not s.config.restart_after_crash:
        # T10
        m.log(LogLevel.LOG, "shutting down because restart_after_crash is off")
        exit_postmaster(m, 1)
        return
    if s.fatal_error:
        _crash_reinit(m)


def _crash_reinit(m: Machine) -> None:
    """T11: everything is gone: reset shared memory and start recovery."""
    m.log(LogLevel.LOG, "all server processes terminated; reinitializing")
    reset_background_worker_crash_times(m)
    m.emit(ResetSharedMemory(remove_temp_files=m.s.config.remove_temp_files_after_crash))
    m.spawn(ChildKind.STARTUP)
    m.update(startup_status=StartupStatus.RUNNING, abort_start_time=0.0)
    m.set_pm_state(PMState.STARTUP, "T11")


def exit_postmaster(m: Machine, code: int) -> None:
    """ExitPostmaster(): the runtime removes the lock file, which logs
    "database system is shut down"."""
    m.update(exit_code=code)
    m.emit(Exit(code))

