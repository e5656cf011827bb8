"""Background worker scheduling (spec §2.3) and the reaper's rules for workers (§2.2)."""

from __future__ import annotations

from dataclasses import replace

from .connections import can_accept_connections
from .crash import handle_child_crash
from .machine import Machine, child_exit_message
from .state import BgWorker, Child
from .vocabulary import (
    CAC,
    BgWorkerStartTime,
    ChildKind,
    ExitStatus,
    LogLevel,
    PMState,
    Sig,
)

MAX_BGWORKERS_TO_LAUNCH = 100

_START_STATES: dict[BgWorkerStartTime, frozenset[PMState]] = {
    BgWorkerStartTime.POSTMASTER_START: frozenset(
        {PMState.INIT, PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY, PMState.RUN}
    ),
    BgWorkerStartTime.CONSISTENT_STATE: frozenset({PMState.HOT_STANDBY, PMState.RUN}),
    BgWorkerStartTime.RECOVERY_FINISHED: frozenset({PMState.RUN}),
}


def bgworker_should_start_now(pm_state: PMState, start_time: BgWorkerStartTime) -> bool:
    """Never in STOP_BACKENDS or any later state."""
    return pm_state in _START_STATES[start_time]


def bgworker_name(worker: BgWorker) -> str:
    return f'background worker "{worker.name}"'


def maybe_start_bgworkers(m: Machine) -> None:
    """Start every registered worker that should run now, at most 100 per call."""
    # During crash recovery there is nothing to do until the cycle ends.
    m.update(start_worker_needed=False, have_crashed_worker=False)
    if m.s.fatal_error:
        return

    workers = list(m.s.bgworkers)
    kept: list[BgWorker] = []
    launched = 0
    for index, worker in enumerate(workers):
        if worker.child_id is not None:
            kept.append(worker)
            continue
        if worker.terminate:
            continue  # ForgetBackgroundWorker
        if worker.crashed_at is not None:
            if worker.never_restart:
                _notify_registrant(m, worker)  # forgotten: its registrant is told
                continue
            if m.now - worker.crashed_at < worker.restart_time:
                m.update(have_crashed_worker=True)
                kept.append(worker)
                continue
        if not bgworker_should_start_now(m.s.pm_state, worker.start_time):
            kept.append(worker)
            continue
        started = _do_start_bgworker(m, replace(worker, crashed_at=None))
        kept.append(started)
        if started.child_id is None:
            # Could not start: try again later, leave the rest for then.
            m.update(start_worker_needed=True)
            kept.extend(workers[index + 1 :])
            break
        launched += 1
        if launched >= MAX_BGWORKERS_TO_LAUNCH:
            m.update(start_worker_needed=True)
            kept.extend(workers[index + 1 :])
            break
    m.set_bgworkers(kept)


def _do_start_bgworker(m: Machine, worker: BgWorker) -> BgWorker:
    """do_start_bgworker(): a failure is treated as a crash, so it waits before retrying."""
    if can_accept_connections(m.s, ChildKind.BGWORKER) is not CAC.OK:
        m.log(LogLevel.LOG, "no slot available for new worker process")
        return replace(worker, crashed_at=m.now)
    m.log(LogLevel.DEBUG1, f'starting background worker process "{worker.name}"')
    child = m.spawn(ChildKind.BGWORKER, bgworker=worker.name)
    return replace(worker, child_id=child.id)


def worker_fork_failed(m: Machine, child: Child) -> None:
    """The fork in do_start_bgworker failed: mark the worker crashed so it waits."""
    m.set_bgworkers(
        replace(w, child_id=None, crashed_at=m.now) if w.child_id == child.id else w
        for w in m.s.bgworkers
    )
    m.update(start_worker_needed=True)


def _notify_registrant(m: Machine, worker: BgWorker) -> None:
    """SIGUSR1 to bgw_notify_pid, the backend that registered the worker and waits on it."""
    if worker.notify_pid is None:
        return
    registrant = m.find_pid(worker.notify_pid)
    if registrant is not None:
        m.signal_child(registrant, Sig.USR1)


def forget_unstarted_background_workers(m: Machine) -> None:
    """ForgetUnstartedBackgroundWorkers() (T3): drop pending workers whose registrant
    waits for them, and tell it."""
    kept = []
    for worker in m.s.bgworkers:
        if worker.child_id is None and worker.notify_pid is not None:
            _notify_registrant(m, worker)
        else:
            kept.append(worker)
    m.set_bgworkers(kept)


def reset_background_worker_crash_times(m: Machine) -> None:
    """ResetBackgroundWorkerCrashTimes() (T11): restartable workers may start at once;
    BGW_NEVER_RESTART workers are forgotten."""
    m.set_bgworkers(
        replace(w, crashed_at=None) for w in m.s.bgworkers if not w.never_restart
    )


def cleanup_background_worker(
    m: Machine, child: Child, status: ExitStatus, slot_released: bool
) -> None:
    """CleanupBackgroundWorker(): exit 0 ends the worker for good; any other exit records
    the crash time; with shared-memory access, an exit other than 0 or 1 (or a slot that was
    not released) is a crash of the whole cluster (14)."""
    worker = next((w for w in m.s.bgworkers if w.child_id == child.id), None)
    m.remove_child(child)
    if worker is None:
        return
    name = bgworker_name(worker)
    if status.is_0:
        updated = replace(worker, child_id=None, crashed_at=None, terminate=True)
    else:
        updated = replace(worker, child_id=None, crashed_at=m.now)
    m.set_bgworkers(updated if w is worker else w for w in m.s.bgworkers)
    m.update(have_crashed_worker=True)

    crashed = worker.shmem_access and (
        not (status.is_0 or status.is_1) or not slot_released
    )
    if crashed:
        m.record_exit(child, child.pid or 0, status, "crash, everyone restarts")
        handle_child_crash(m, child.pid or 0, status, name)
        return
    _notify_registrant(m, worker)  # ReportBackgroundWorkerExit
    level = LogLevel.DEBUG1 if status.is_0 else LogLevel.LOG
    m.log(level, child_exit_message(name, child.pid or 0, status))
    if status.is_0:
        verdict = "clean exit, never restarted"
    elif worker.never_restart:
        verdict = "exit, never restarted"
    else:
        verdict = f"exit, restart after {worker.restart_time} s"
    m.record_exit(child, child.pid or 0, status, verdict)
