"""The postmaster's signal handlers: SIGHUP (§3.1), pmdie (§3.2) and sigusr1_handler (§3.3)."""

from __future__ import annotations

from dataclasses import replace

from .actions import (
    ReadConfigFile,
    ReloadHba,
    RemoveDataFile,
    SetQuitReason,
)
from .bgworkers import maybe_start_bgworkers
from .events import ConfigFileRead, PMSignalRaised, SignalReceived
from .guc import apply_config_file
from .machine import Machine
from .serverloop import maybe_start_walreceiver, pgstat_start, start_autovacuum_worker
from .statemachine import postmaster_state_machine
from .vocabulary import (
    ChildKind,
    ConnsAllowed,
    LogLevel,
    PidStatus,
    PMSignalReason,
    PMState,
    QuitReason,
    Shutdown,
    Sig,
)

# SIGHUP goes on to these special children (and every non-dead_end BackendList child).
SIGHUP_SPECIALS = (
    ChildKind.STARTUP,
    ChildKind.BGWRITER,
    ChildKind.CHECKPOINTER,
    ChildKind.WALWRITER,
    ChildKind.WALRECEIVER,
    ChildKind.AUTOVAC_LAUNCHER,
    ChildKind.ARCHIVER,
    ChildKind.SYSLOGGER,
    ChildKind.STATS,
)


def signal_received(m: Machine, event: SignalReceived) -> None:
    sig = event.signal
    if sig == Sig.HUP:
        sighup_handler(m)
    elif sig in (Sig.TERM, Sig.INT, Sig.QUIT):
        pmdie(m, sig)
    # Anything else is not the postmaster's business (SIGUSR1 arrives as PMSignalRaised).


def sighup_handler(m: Machine) -> None:
    """§3.1: ignored without a word once a fast or immediate shutdown has started."""
    if m.s.shutdown > Shutdown.SMART:
        return
    m.log(LogLevel.LOG, "received SIGHUP, reloading configuration files")
    m.emit(ReadConfigFile())  # ProcessConfigFile continues in config_file_read()


def config_file_read(m: Machine, event: ConfigFileRead) -> None:
    """The rest of the SIGHUP handler, once the runtime has read the file."""
    config, logs = apply_config_file(m.s.config, event, at_startup=False)
    m.update(config=config)
    for line in logs:
        m.emit(line)
    m.signal_children(Sig.HUP)
    for kind in SIGHUP_SPECIALS:
        m.signal_special(kind, Sig.HUP)
    m.emit(ReloadHba())


def pmdie(m: Machine, sig: Sig) -> None:
    """§3.2: a request takes effect only if it is stronger than the current Shutdown."""
    if sig == Sig.TERM:
        _smart(m)
    elif sig == Sig.INT:
        _fast(m)
    else:
        _immediate(m)
    postmaster_state_machine(m)


def _accept_request(m: Machine, level: Shutdown, name: str) -> bool:
    if m.s.shutdown >= level:
        return False  # repeated or weaker: ignored silently
    m.update(shutdown=level)
    m.log(LogLevel.LOG, f"received {name} shutdown request")
    m.write_pid_status(PidStatus.STOPPING)
    return True


def _smart(m: Machine) -> None:
    if not _accept_request(m, Shutdown.SMART, "smart"):
        return
    state = m.s.pm_state
    if state == PMState.RUN:
        m.update(conns_allowed=ConnsAllowed.SUPERUSER)  # 14: until no exclusive backup
    elif state == PMState.HOT_STANDBY:
        m.update(conns_allowed=ConnsAllowed.NONE)
    elif state in (PMState.STARTUP, PMState.RECOVERY):
        m.set_pm_state(PMState.STOP_BACKENDS, "pmdie: smart")


def _fast(m: Machine) -> None:
    if not _accept_request(m, Shutdown.FAST, "fast"):
        return
    state = m.s.pm_state
    if state in (PMState.STARTUP, PMState.RECOVERY):
        m.set_pm_state(PMState.STOP_BACKENDS, "pmdie: fast")
    elif state in (PMState.RUN, PMState.HOT_STANDBY):
        m.log(LogLevel.LOG, "aborting any active transactions")
        m.set_pm_state(PMState.STOP_BACKENDS, "pmdie: fast")


def _immediate(m: Machine) -> None:
    if not _accept_request(m, Shutdown.IMMEDIATE, "immediate"):
        return
    m.emit(SetQuitReason(QuitReason.STOP))
    m.terminate_children(Sig.QUIT)
    m.set_pm_state(PMState.WAIT_BACKENDS, "pmdie: immediate")
    m.update(abort_start_time=m.now)  # the SIGKILL stopwatch


def sigusr1_handler(m: Machine, event: PMSignalRaised) -> None:
    """§3.3: each reason in order. A reason whose guard fails is simply lost."""
    _relabel_walsenders(m, event.walsenders)
    reasons = event.reasons
    s = m.s
    # 1. RECOVERY_STARTED
    if PMSignalReason.RECOVERY_STARTED in reasons and s.pm_state == PMState.STARTUP and s.shutdown == Shutdown.NO:
        m.update(fatal_error=False, abort_start_time=0.0)
        # (14) Crank up the background tasks: we can do this now that we are in recovery.
        for kind in (ChildKind.CHECKPOINTER, ChildKind.BGWRITER):
            if not m.running(kind):
                m.spawn(kind)
        if m.s.config.archive_mode == "always" and not m.running(ChildKind.ARCHIVER):
            m.spawn(ChildKind.ARCHIVER)  # no throttle on this path
        if not m.s.config.hot_standby:
            m.write_pid_status(PidStatus.STANDBY)
        m.set_pm_state(PMState.RECOVERY, "sigusr1: RECOVERY_STARTED")
    # 2. BEGIN_HOT_STANDBY
    if PMSignalReason.BEGIN_HOT_STANDBY in reasons and m.s.pm_state == PMState.RECOVERY and m.s.shutdown == Shutdown.NO:
        if not m.running(ChildKind.STATS):
            pgstat_start(m)
        m.log(LogLevel.LOG, "database system is ready to accept read-only connections")
        m.write_pid_status(PidStatus.READY)
        m.set_pm_state(PMState.HOT_STANDBY, "sigusr1: BEGIN_HOT_STANDBY")
        m.update(conns_allowed=ConnsAllowed.ALL, start_worker_needed=True)
    # 3. BACKGROUND_WORKER_CHANGE: new registrations would be scanned here.
    if PMSignalReason.BACKGROUND_WORKER_CHANGE in reasons:
        m.update(start_worker_needed=True)
    # 4. Start any workers that are due.
    if m.s.start_worker_needed or m.s.have_crashed_worker:
        maybe_start_bgworkers(m)
    # 5. Log rotation: `pg_ctl logrotate` (the file) wins over pg_rotate_logfile().
    syslogger = m.special(ChildKind.SYSLOGGER)
    if syslogger is not None:
        if event.logrotate_file:
            m.signal_child(syslogger, Sig.USR1)
            m.emit(RemoveDataFile("logrotate"))
        elif PMSignalReason.ROTATE_LOGFILE in reasons:
            m.signal_child(syslogger, Sig.USR1)
    # 6, 7: autovacuum requests, while no shutdown beyond smart is under way.
    autovac_allowed = m.s.shutdown <= Shutdown.SMART and m.s.pm_state < PMState.STOP_BACKENDS
    if PMSignalReason.START_AUTOVAC_LAUNCHER in reasons and autovac_allowed:
        m.update(start_autovac_launcher=True)
    if PMSignalReason.START_AUTOVAC_WORKER in reasons and autovac_allowed:
        start_autovacuum_worker(m)
    # 8. START_WALRECEIVER: the startup process wants WAL streamed.
    if PMSignalReason.START_WALRECEIVER in reasons:
        m.update(walreceiver_requested=True)
        maybe_start_walreceiver(m)
    # 9. ADVANCE_STATE_MACHINE (a walsender marked itself).
    if PMSignalReason.ADVANCE_STATE_MACHINE in reasons:
        postmaster_state_machine(m)
    # 10. Promote: `pg_ctl promote` wrote the file; the startup process does the rest.
    startup = m.special(ChildKind.STARTUP)
    if (
        startup is not None
        and m.s.pm_state in (PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY)
        and event.promote_file
    ):
        m.signal_child(startup, Sig.USR2)


def _relabel_walsenders(m: Machine, walsenders: frozenset[int]) -> None:
    """A walsender starts as a normal backend; its PMChildFlags slot tells us otherwise."""
    for child_id in walsenders:
        child = m.children.get(child_id)
        if child is not None and child.kind is ChildKind.BACKEND and not child.dead_end:
            m.set_child(replace(child, kind=ChildKind.WALSENDER))
