"""ServerLoop's body and DetermineSleepTime (spec §8).

Keep-alives are level-triggered: after every wakeup the loop checks "what should run in this
state" and starts whatever is missing, instead of remembering to restart each child.
"""

from __future__ import annotations

from .actions import CheckLockFile, ReportAutovacWorkerFailed, TouchSocketFiles
from .bgworkers import maybe_start_bgworkers
from .connections import can_accept_connections
from .machine import Machine
from .state import State
from .vocabulary import CAC, ChildKind, LogLevel, PMState, Shutdown, Sig

SIGKILL_CHILDREN_AFTER_SECS = 5.0
PGARCH_RESTART_INTERVAL = 10.0
PGSTAT_RESTART_INTERVAL = 60.0
LOCKFILE_RECHECK_SECS = 60.0
TOUCH_SOCKET_FILES_SECS = 58 * 60.0
MAX_SLEEP_SECS = 60.0
WAIT_DEAD_END_SLEEP_SECS = 0.1

AUX_KEEPALIVE_STATES = frozenset({PMState.RUN, PMState.RECOVERY, PMState.HOT_STANDBY})
STATS_STATES = frozenset({PMState.RUN, PMState.HOT_STANDBY})
WALRECEIVER_STATES = frozenset({PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY})


def server_loop_body(m: Machine) -> None:
    """Steps 3-14 of a ServerLoop iteration, in order."""
    s = m.s
    # 3. If no syslogger is running and the collector is on, start one.
    if s.config.logging_collector and not m.running(ChildKind.SYSLOGGER):
        m.spawn(ChildKind.SYSLOGGER)
    # 4. Checkpointer and bgwriter, in the states that allow them.
    if s.pm_state in AUX_KEEPALIVE_STATES:
        if not m.running(ChildKind.CHECKPOINTER):
            m.spawn(ChildKind.CHECKPOINTER)
        if not m.running(ChildKind.BGWRITER):
            m.spawn(ChildKind.BGWRITER)
    # 5. The walwriter only in RUN: WAL is only written then.
    if s.pm_state == PMState.RUN and not m.running(ChildKind.WALWRITER):
        m.spawn(ChildKind.WALWRITER)
    # 6. The autovacuum launcher, if active or requested (near wraparound).
    if (
        not m.running(ChildKind.AUTOVAC_LAUNCHER)
        and (s.config.autovacuum_active or m.s.start_autovac_launcher)
        and m.s.pm_state == PMState.RUN
    ):
        m.spawn(ChildKind.AUTOVAC_LAUNCHER)  # ChildStarted clears start_autovac_launcher
    # 7. (14) The stats collector, throttled to one start a minute.
    if not m.running(ChildKind.STATS) and m.s.pm_state in STATS_STATES:
        pgstat_start(m)
    # 8. The archiver, if PgArchStartupAllowed() (10 s throttle).
    if not m.running(ChildKind.ARCHIVER) and pgarch_startup_allowed(m):
        m.spawn(ChildKind.ARCHIVER)
    # 9. Tell the autovacuum launcher a worker it asked for did not start.
    if m.s.avlauncher_needs_signal:
        m.update(avlauncher_needs_signal=False)
        m.signal_special(ChildKind.AUTOVAC_LAUNCHER, Sig.USR2)
    # 10. A walreceiver the startup process asked for.
    if m.s.walreceiver_requested:
        maybe_start_walreceiver(m)
    # 11. Background workers.
    if m.s.start_worker_needed or m.s.have_crashed_worker:
        maybe_start_bgworkers(m)
    # 12. SIGKILL escalation (§4.3).
    sigkill_escalation(m)
    # 13. Recheck the data-directory lock file once a minute.
    if m.now - m.s.last_lockfile_check >= LOCKFILE_RECHECK_SECS:
        m.update(last_lockfile_check=m.now)
        m.emit(CheckLockFile())
    # 14. Touch the socket and lock files every 58 minutes.
    if m.now - m.s.last_touch_time >= TOUCH_SOCKET_FILES_SECS:
        m.update(last_touch_time=m.now)
        m.emit(TouchSocketFiles())


def sigkill_escalation(m: Machine) -> None:
    s = m.s
    if (
        (s.shutdown >= Shutdown.IMMEDIATE or s.fatal_error)
        and s.abort_start_time != 0
        and m.now - s.abort_start_time >= SIGKILL_CHILDREN_AFTER_SECS
    ):
        # We were gentle with them before. Not any more.
        m.log(LogLevel.LOG, "issuing SIGKILL to recalcitrant children")
        m.terminate_children(Sig.KILL)
        m.update(abort_start_time=0.0)  # fire only once


def pgarch_startup_allowed(m: Machine) -> bool:
    """PgArchStartupAllowed(): the right state and archive mode, then PgArchCanRestart(),
    which records the time whenever it approves."""
    s = m.s
    cfg = s.config
    state_ok = (cfg.archiving_active and s.pm_state == PMState.RUN) or (
        cfg.archive_mode == "always" and s.pm_state in (PMState.RECOVERY, PMState.HOT_STANDBY)
    )
    if not state_ok:
        return False
    if m.now - s.last_pgarch_start_time < PGARCH_RESTART_INTERVAL:
        return False
    m.update(last_pgarch_start_time=m.now)
    return True


def pgstat_start(m: Machine) -> None:
    """pgstat_start() (14): refuses within 60 s of the last attempt."""
    if m.now - m.s.last_pgstat_start_time < PGSTAT_RESTART_INTERVAL:
        return
    m.update(last_pgstat_start_time=m.now)
    m.spawn(ChildKind.STATS)


def maybe_start_walreceiver(m: Machine) -> None:
    """MaybeStartWalReceiver(): the request stays pending until a fork succeeds."""
    if (
        not m.running(ChildKind.WALRECEIVER)
        and m.s.pm_state in WALRECEIVER_STATES
        and m.s.shutdown <= Shutdown.SMART
    ):
        m.spawn(ChildKind.WALRECEIVER)  # ChildStarted clears the request


def start_autovacuum_worker(m: Machine) -> None:
    """StartAutovacuumWorker(): only if a normal backend could start now; otherwise tell
    the launcher, and let ServerLoop signal it (no ping-pong)."""
    if can_accept_connections(m.s, ChildKind.AUTOVAC_WORKER) is CAC.OK:
        m.spawn(ChildKind.AUTOVAC_WORKER)
        return
    autovac_worker_failed(m)


def autovac_worker_failed(m: Machine) -> None:
    if m.running(ChildKind.AUTOVAC_LAUNCHER):
        m.emit(ReportAutovacWorkerFailed())
        m.update(avlauncher_needs_signal=True)


def next_deadline(state: State, now: float) -> float:
    """DetermineSleepTime(), as the absolute time ServerLoop should wake up at."""
    if state.exit_code is not None:
        return now
    if state.pm_state == PMState.WAIT_DEAD_END:
        # No select() on the sockets: sleep 100 ms a loop.
        return now + WAIT_DEAD_END_SLEEP_SECS
    timers = [state.last_lockfile_check + LOCKFILE_RECHECK_SECS, now + MAX_SLEEP_SECS]
    if state.shutdown > Shutdown.NO or not (state.start_worker_needed or state.have_crashed_worker):
        if state.abort_start_time != 0:
            timers.append(state.abort_start_time + SIGKILL_CHILDREN_AFTER_SECS)
        return max(now, min(timers))
    if state.start_worker_needed:
        return now
    # HaveCrashedWorker: wake when the first crashed worker may restart.
    for worker in state.bgworkers:
        if worker.child_id is None and worker.crashed_at is not None and not worker.never_restart:
            timers.append(worker.crashed_at + worker.restart_time)
    return max(now, min(timers))
