"""`step`: feed one event to the postmaster, get the new state and the actions to execute.

Every wakeup of the real postmaster runs a handler (a signal handler, the accept of a
connection, or nothing when the wait timed out) and then the body of ServerLoop, which
starts whatever should be running. `step` does the same, so keep-alives happen right after
the reaper, as they do in PostgreSQL (spec §0, "Event model").
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from .actions import Action, OpenListenSockets, ResetSharedMemory
from .bgworkers import maybe_start_bgworkers, worker_fork_failed
from .connections import connection_accepted
from .events import (
    ChildrenExited,
    ChildStarted,
    ConfigFileRead,
    ConnectionAccepted,
    Event,
    ForkFailed,
    PMSignalRaised,
    PostmasterStarted,
    SignalReceived,
    Tick,
)
from .machine import Machine
from .reaper import reaper
from .serverloop import autovac_worker_failed, server_loop_body
from .signals import config_file_read, signal_received, sigusr1_handler
from .state import State
from .statemachine import (
    exit_postmaster,
    postmaster_state_machine,
    shutdown_checkpointer_fork_failed,
)
from .vocabulary import (
    FORK_NAME,
    ChildKind,
    LogLevel,
    PidStatus,
    PMState,
    StartupStatus,
)


def step(state: State, event: Event, now: float) -> tuple[State, list[Action]]:
    """Apply one event at time `now` (seconds). A postmaster that has exited ignores
    everything."""
    if state.exit_code is not None:
        return state, []
    m = Machine(state, now)
    match event:
        case ChildStarted():
            _child_started(m, event)
            return m.result()  # bookkeeping only: not a ServerLoop wakeup
        case ForkFailed():
            _fork_failed(m, event)
            return m.result()  # the next wakeup retries, as in PostgreSQL
        case PostmasterStarted():
            _postmaster_main(m, event)
        case ChildrenExited():
            reaper(m, event)
        case SignalReceived():
            signal_received(m, event)
        case PMSignalRaised():
            sigusr1_handler(m, event)
        case ConfigFileRead():
            config_file_read(m, event)
        case ConnectionAccepted():
            connection_accepted(m, event)
        case Tick():
            pass
        case _:
            assert_never(event)
    if m.s.exit_code is None:
        server_loop_body(m)
    return m.result()


def _postmaster_main(m: Machine, event: PostmasterStarted) -> None:
    """PostmasterMain, from the syslogger to the first maybe_start_bgworkers()."""
    if m.s.pm_state is not PMState.INIT:
        return
    if m.s.config.logging_collector:
        m.spawn(ChildKind.SYSLOGGER)  # the first child, before "starting ..."
    m.log(LogLevel.LOG, f"starting {event.version}")
    m.emit(OpenListenSockets())
    m.emit(ResetSharedMemory(remove_temp_files=True))
    m.write_pid_status(PidStatus.STARTING)
    m.spawn(ChildKind.STARTUP)
    m.update(startup_status=StartupStatus.RUNNING)
    m.set_pm_state(PMState.STARTUP, "PostmasterMain")
    maybe_start_bgworkers(m)


def _child_started(m: Machine, event: ChildStarted) -> None:
    child = m.children.get(event.child_id)
    if child is None:
        return
    m.set_child(replace(child, pid=event.pid, started_at=m.now))
    # Requests are cleared only once the fork succeeded; a failed one stays pending.
    if child.kind is ChildKind.AUTOVAC_LAUNCHER:
        m.update(start_autovac_launcher=False)
    elif child.kind is ChildKind.WALRECEIVER:
        m.update(walreceiver_requested=False)


def _fork_failed(m: Machine, event: ForkFailed) -> None:
    """A fork failed: log it as the postmaster does; most kinds are simply retried by a
    later ServerLoop iteration, a few have rules of their own."""
    child = m.children.get(event.child_id)
    if child is None:
        return
    m.remove_child(child)
    m.log(LogLevel.LOG, f"could not fork {FORK_NAME[child.kind]}: {event.error}")
    kind = child.kind
    if kind is ChildKind.STARTUP:
        exit_postmaster(m, 1)  # fatal, at PostmasterMain and at crash reinit alike
    elif kind is ChildKind.CHECKPOINTER and m.s.pm_state == PMState.SHUTDOWN:
        shutdown_checkpointer_fork_failed(m)
        postmaster_state_machine(m)  # T4c falls through to T6 and T7 in the same call
    elif kind is ChildKind.AUTOVAC_WORKER:
        autovac_worker_failed(m)
    elif kind is ChildKind.BGWORKER:
        worker_fork_failed(m, child)


__all__ = ["step"]
