"""HandleChildCrash (spec §4.2): one child died badly, so every other child must go.

Only the first crash acts (take_action): it logs the exit, tells every other child to quit
with SIGQUIT and starts the SIGKILL stopwatch. Later crashes during the same cycle, and every
crash during an immediate shutdown, only update the bookkeeping.
"""

from __future__ import annotations

from .actions import SetQuitReason
from .machine import Machine, child_exit_message
from .vocabulary import (
    ChildKind,
    ExitStatus,
    LogLevel,
    PMState,
    QuitReason,
    Shutdown,
    Sig,
    StartupStatus,
)

# Step 6's auxiliary processes, in postmaster.c's order.
CRASH_QUIT_ORDER = (
    ChildKind.BGWRITER,
    ChildKind.CHECKPOINTER,
    ChildKind.WALWRITER,
    ChildKind.WALRECEIVER,
    ChildKind.AUTOVAC_LAUNCHER,
    ChildKind.ARCHIVER,
)

# Step 10: states a crash turns into WAIT_BACKENDS (14); SHUTDOWN_2 and later stay.
CRASH_WAIT_STATES = frozenset(
    {PMState.RECOVERY, PMState.HOT_STANDBY, PMState.RUN, PMState.STOP_BACKENDS, PMState.SHUTDOWN}
)


def handle_child_crash(
    m: Machine, pid: int, status: ExitStatus, name: str, query: str | None = None
) -> None:
    """HandleChildCrash(pid, status, name). The caller has already removed the dead child
    from the table (and set StartupStatus if it was the startup process)."""
    # 4.2 step 1: only the first crash acts, and an immediate shutdown never does.
    take_action = not m.s.fatal_error and m.s.shutdown != Shutdown.IMMEDIATE

    # 4.2 step 2: LogChildExit and the crash announcement.
    if take_action:
        detail = f"Failed process was running: {query}" if query else None
        m.log(LogLevel.LOG, child_exit_message(name, pid, status), detail=detail)
        m.log(LogLevel.LOG, "terminating any other active server processes")
        m.emit(SetQuitReason(QuitReason.CRASH))

    if take_action:
        # 4.2 step 3: every other running bgworker.
        for child in m.backend_list():
            if child.kind is ChildKind.BGWORKER:
                m.signal_child(child, Sig.QUIT)
        # 4.2 step 4: every other BackendList entry, dead_end children included.
        for child in m.backend_list():
            if child.kind is not ChildKind.BGWORKER:
                m.signal_child(child, Sig.QUIT)
        # 4.2 step 5: the startup process, which is now SIGNALED.
        startup = m.special(ChildKind.STARTUP)
        if startup is not None:
            m.signal_child(startup, Sig.QUIT)
            m.update(startup_status=StartupStatus.SIGNALED)
        # 4.2 step 6: the auxiliary processes.
        for kind in CRASH_QUIT_ORDER:
            m.signal_special(kind, Sig.QUIT)
        # 4.2 step 7 (14): power-cycle the stats collector and let it restart at once.
        stats = m.special(ChildKind.STATS)
        if stats is not None:
            m.signal_child(stats, Sig.QUIT)
            m.update(last_pgstat_start_time=0.0)
        # 4.2 step 8: the syslogger is never touched.

    # 4.2 step 9: a crash during an immediate shutdown is not a FatalError.
    if m.s.shutdown != Shutdown.IMMEDIATE:
        m.update(fatal_error=True)

    # 4.2 step 10: wait for everyone to die.
    if m.s.pm_state in CRASH_WAIT_STATES:
        m.set_pm_state(PMState.WAIT_BACKENDS, "HandleChildCrash")

    # 4.2 step 11: start the SIGKILL stopwatch (§4.3).
    if m.s.abort_start_time == 0:
        m.update(abort_start_time=m.now)
