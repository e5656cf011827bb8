"""Connection handling (spec §6): canAcceptConnections, dead_end children, refusal texts,
and the outcome of a cancel request.

The postmaster always forks a child for an accepted connection; when it may not run, the
child is a dead_end that only reports the verdict as a FATAL and exits 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .events import ConnectionAccepted
from .machine import Machine
from .state import BACKEND_LIST_KINDS, State
from .vocabulary import CAC, ChildKind, ConnsAllowed, PMState, Shutdown


def can_accept_connections(state: State, kind: ChildKind) -> CAC:
    """canAcceptConnections(backend_type). Autovacuum workers count as normal backends;
    bgworkers skip the state checks."""
    result = CAC.OK
    if state.pm_state not in (PMState.RUN, PMState.HOT_STANDBY) and kind is not ChildKind.BGWORKER:
        if state.shutdown > Shutdown.NO:
            return CAC.SHUTDOWN  # a shutdown is pending
        if not state.fatal_error and state.pm_state == PMState.STARTUP:
            return CAC.STARTUP  # normal startup
        if not state.fatal_error and state.pm_state == PMState.RECOVERY:
            return CAC.NOTCONSISTENT  # not yet at a consistent recovery state
        return CAC.RECOVERY  # else it must be crash recovery

    # Smart-shutdown restrictions apply only to client connections.
    if state.conns_allowed is not ConnsAllowed.ALL and kind is ChildKind.BACKEND:
        if state.conns_allowed is ConnsAllowed.SUPERUSER:
            result = CAC.SUPERUSER
        else:
            return CAC.SHUTDOWN

    # Too many children overrides both OK and SUPERUSER.
    if state.count_children(BACKEND_LIST_KINDS) >= state.config.max_live_children:
        result = CAC.TOOMANY
    return result


@dataclass(frozen=True, slots=True)
class Refusal:
    """The FATAL a dead_end child sends (and logs) after reading the startup packet."""

    sqlstate: str
    message: str
    detail: str | None = None


def refusal(cac: CAC, hot_standby: bool) -> Refusal | None:
    """ProcessStartupPacket's verdict for each CAC value; None means go on."""
    if cac is CAC.STARTUP:
        return Refusal("57P03", "the database system is starting up")
    if cac is CAC.NOTCONSISTENT:
        if hot_standby:
            return Refusal(
                "57P03",
                "the database system is not yet accepting connections",
                "Consistent recovery state has not been yet reached.",
            )
        return Refusal(
            "57P03",
            "the database system is not accepting connections",
            "Hot standby mode is disabled.",
        )
    if cac is CAC.SHUTDOWN:
        return Refusal("57P03", "the database system is shutting down")
    if cac is CAC.RECOVERY:
        return Refusal("57P03", "the database system is in recovery mode")
    if cac is CAC.TOOMANY:
        return Refusal("53300", "sorry, too many clients already")
    return None  # OK, or SUPERUSER (checked after authentication)


SUPERUSER_ONLY = Refusal("42501", "must be superuser to connect during database shutdown")
SUPERUSER_ONLY_REPLICATION = Refusal(
    "42501", "new replication connections are not allowed during database shutdown"
)


def accepting_connections(state: State) -> bool:
    """ServerLoop stops select()ing on the listen sockets in WAIT_DEAD_END (spec §6)."""
    return state.pm_state is not PMState.WAIT_DEAD_END and state.exit_code is None


def connection_accepted(m: Machine, event: ConnectionAccepted) -> None:
    """BackendStartup(): always fork; dead_end when the verdict is neither OK nor SUPERUSER."""
    cac = can_accept_connections(m.s, ChildKind.BACKEND)
    dead_end = cac not in (CAC.OK, CAC.SUPERUSER)
    m.spawn(
        ChildKind.BACKEND,
        connection_id=event.connection_id,
        cac=cac,
        cancel_key=event.cancel_key,
        dead_end=dead_end,
        remote=event.remote,
    )


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """processCancelRequest(): whom to SIGINT (pid and its group), or what to log."""

    signal_pid: int | None
    log: str | None


def cancel_request_outcome(
    backends: Iterable[tuple[int, int]], pid: int, key: int
) -> CancelOutcome:
    """Search the fork-time BackendList copy of (pid, cancel key) pairs."""
    for backend_pid, backend_key in backends:
        if backend_pid != pid:
            continue
        if backend_key == key:
            return CancelOutcome(signal_pid=pid, log=None)
        return CancelOutcome(None, f"wrong key in cancel request for process {pid}")
    return CancelOutcome(None, f"PID {pid} in cancel request did not match any process")
