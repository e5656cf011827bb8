"""Connection handling (spec §6): canAcceptConnections, dead_end children, refusal texts,
MaxLivePostmasterChildren and cancel requests."""

from __future__ import annotations

import pytest

from pgtop.core import (
    Config,
    accepting_connections,
    can_accept_connections,
    cancel_request_outcome,
    refusal,
)
from pgtop.core.actions import Spawn
from pgtop.core.connections import SUPERUSER_ONLY, SUPERUSER_ONLY_REPLICATION
from pgtop.core.events import ConnectionAccepted, ForkFailed
from pgtop.core.vocabulary import CAC, ConnsAllowed, PMState, Shutdown
from tests.core.rules_helpers import (
    BACKEND_BASE,
    FIRST_NEW_ID,
    RUN_SET,
    K,
    make_state,
    run,
    worker,
)

# canAcceptConnections(NORMAL) for each pmState with connsAllowed = all and few children:
# (no shutdown, no crash), (no shutdown, FatalError), (shutdown, no crash), (shutdown, FatalError)
EXPECTED_CAC = {
    PMState.INIT: (CAC.RECOVERY, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.STARTUP: (CAC.STARTUP, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.RECOVERY: (CAC.NOTCONSISTENT, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.HOT_STANDBY: (CAC.OK, CAC.OK, CAC.OK, CAC.OK),
    PMState.RUN: (CAC.OK, CAC.OK, CAC.OK, CAC.OK),
    PMState.STOP_BACKENDS: (CAC.RECOVERY, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.WAIT_BACKENDS: (CAC.RECOVERY, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.SHUTDOWN: (CAC.RECOVERY, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.SHUTDOWN_2: (CAC.RECOVERY, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.WAIT_DEAD_END: (CAC.RECOVERY, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
    PMState.NO_CHILDREN: (CAC.RECOVERY, CAC.RECOVERY, CAC.SHUTDOWN, CAC.SHUTDOWN),
}
FLAGS = [(Shutdown.NO, False), (Shutdown.NO, True), (Shutdown.FAST, False), (Shutdown.FAST, True)]
GRID = [(pm, sd, fe, EXPECTED_CAC[pm][i]) for pm in EXPECTED_CAC for i, (sd, fe) in enumerate(FLAGS)]


@pytest.mark.parametrize(("pm_state", "shutdown", "fatal_error", "expected"), GRID)
def test_can_accept_connections_by_state_shutdown_and_crash(pm_state, shutdown, fatal_error, expected) -> None:
    state = make_state(pm_state, shutdown=shutdown, fatal_error=fatal_error)
    assert can_accept_connections(state, K.BACKEND) is expected
    # Autovacuum workers go through the same state checks.
    assert can_accept_connections(state, K.AUTOVAC_WORKER) is expected


@pytest.mark.parametrize(("pm_state", "shutdown", "fatal_error", "expected"), GRID)
def test_can_accept_connections_bgworkers_skip_the_state_checks(pm_state, shutdown, fatal_error, expected) -> None:
    state = make_state(pm_state, shutdown=shutdown, fatal_error=fatal_error)
    assert can_accept_connections(state, K.BGWORKER) is CAC.OK


@pytest.mark.parametrize(
    ("conns", "kind", "expected"),
    [
        (ConnsAllowed.SUPERUSER, K.BACKEND, CAC.SUPERUSER),
        (ConnsAllowed.NONE, K.BACKEND, CAC.SHUTDOWN),
        (ConnsAllowed.SUPERUSER, K.AUTOVAC_WORKER, CAC.OK),
        (ConnsAllowed.NONE, K.AUTOVAC_WORKER, CAC.OK),
        (ConnsAllowed.NONE, K.BGWORKER, CAC.OK),
        (ConnsAllowed.ALL, K.BACKEND, CAC.OK),
    ],
)
@pytest.mark.parametrize("pm_state", [PMState.RUN, PMState.HOT_STANDBY])
def test_can_accept_connections_smart_shutdown_restricts_only_client_connections(pm_state, conns, kind, expected) -> None:
    state = make_state(pm_state, shutdown=Shutdown.SMART, conns_allowed=conns)
    assert can_accept_connections(state, kind) is expected


def full_state(n_children: int, conns=ConnsAllowed.ALL, pm_state=PMState.RUN, **fields):
    """n_children client backends, plus every special child (which do not count)."""
    return make_state(pm_state, RUN_SET, backends=n_children, conns_allowed=conns, **fields)


def test_max_live_postmaster_children_default_is_244() -> None:
    assert Config().max_live_children == 2 * (100 + 3 + 1 + 10 + 8) == 244


def test_max_live_postmaster_children_formula() -> None:
    config = Config(max_connections=20, autovacuum_max_workers=5, max_wal_senders=2, max_worker_processes=4)
    assert config.max_live_children == 2 * (20 + 5 + 1 + 2 + 4)


@pytest.mark.parametrize(("children", "expected"), [(243, CAC.OK), (244, CAC.TOOMANY), (300, CAC.TOOMANY)])
def test_can_accept_connections_too_many_children(children, expected) -> None:
    assert can_accept_connections(full_state(children), K.BACKEND) is expected


@pytest.mark.parametrize("kind", [K.AUTOVAC_WORKER, K.BGWORKER])
def test_can_accept_connections_too_many_applies_to_workers_too(kind) -> None:
    assert can_accept_connections(full_state(244), kind) is CAC.TOOMANY
    assert can_accept_connections(full_state(244, pm_state=PMState.STARTUP), K.BGWORKER) is CAC.TOOMANY


def test_can_accept_connections_too_many_overrides_superuser_but_not_shutdown() -> None:
    superuser = full_state(244, ConnsAllowed.SUPERUSER, shutdown=Shutdown.SMART)
    assert can_accept_connections(superuser, K.BACKEND) is CAC.TOOMANY
    nobody = full_state(244, ConnsAllowed.NONE, shutdown=Shutdown.SMART)
    assert can_accept_connections(nobody, K.BACKEND) is CAC.SHUTDOWN


def test_can_accept_connections_counts_every_backend_list_kind_but_never_dead_ends() -> None:
    mixed = make_state(PMState.RUN, RUN_SET, backends=240, walsenders=2, av_workers=1,
                       running_workers=(worker(),))
    assert can_accept_connections(mixed, K.BACKEND) is CAC.TOOMANY
    dead_ends = make_state(PMState.RUN, RUN_SET, backends=243, dead_ends=500)
    assert can_accept_connections(dead_ends, K.BACKEND) is CAC.OK


# -- the fork and the dead_end decision --------------------------------------------------------

SITUATIONS = {
    "running": ({"pm_state": PMState.RUN}, CAC.OK, False),
    "smart shutdown with exclusive backup": (
        {"pm_state": PMState.RUN, "shutdown": Shutdown.SMART, "conns_allowed": ConnsAllowed.SUPERUSER}, CAC.SUPERUSER, False),
    "starting up": ({"pm_state": PMState.STARTUP}, CAC.STARTUP, True),
    "recovery not consistent": ({"pm_state": PMState.RECOVERY}, CAC.NOTCONSISTENT, True),
    "crash cycle": ({"pm_state": PMState.WAIT_BACKENDS, "fatal_error": True}, CAC.RECOVERY, True),
    "shutting down": ({"pm_state": PMState.WAIT_BACKENDS, "shutdown": Shutdown.FAST}, CAC.SHUTDOWN, True),
    "smart shutdown, no more connections": (
        {"pm_state": PMState.RUN, "shutdown": Shutdown.SMART, "conns_allowed": ConnsAllowed.NONE}, CAC.SHUTDOWN, True),
    "too many": ({"pm_state": PMState.RUN, "backends": 244}, CAC.TOOMANY, True),
}


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_connection_always_forks_a_child_dead_end_unless_ok_or_superuser(situation) -> None:
    fields, cac, dead_end = SITUATIONS[situation]
    fields = dict(fields)
    pm_state = fields.pop("pm_state")
    specials = {PMState.RUN: RUN_SET, PMState.STARTUP: (K.STARTUP,),
                PMState.RECOVERY: (K.STARTUP, K.CHECKPOINTER, K.BGWRITER)}.get(pm_state, (K.CHECKPOINTER,))
    state = make_state(pm_state, specials, **fields)
    o = run(state, ConnectionAccepted(connection_id=7, cancel_key=12345, remote="127.0.0.1"))
    assert o.spawn_actions == [Spawn(FIRST_NEW_ID, K.BACKEND, connection_id=7, cac=cac,
                                     cancel_key=12345, dead_end=dead_end)]
    child = o.state.children[FIRST_NEW_ID]
    assert (child.kind, child.dead_end, child.remote) == (K.BACKEND, dead_end, "127.0.0.1")
    assert o.logs == []
    assert o.state.pm_state == pm_state


def test_connection_dead_end_children_are_not_counted() -> None:
    state = make_state(PMState.STARTUP, (K.STARTUP,))
    for n in range(3):
        state = run(state, ConnectionAccepted(connection_id=n, cancel_key=n)).state
    assert state.count_children() == 0
    assert len(state.backend_list()) == 3


def test_connection_fork_failure_is_logged_and_forgotten() -> None:
    state = make_state(PMState.RUN, RUN_SET)
    o = run(state, ConnectionAccepted(connection_id=1, cancel_key=1),
            ForkFailed(FIRST_NEW_ID, "Resource temporarily unavailable"))
    assert o.logs == ["could not fork new process for connection: Resource temporarily unavailable"]
    assert FIRST_NEW_ID not in o.state.children


@pytest.mark.parametrize("pm_state", list(PMState))
def test_connection_accepting_stops_only_in_wait_dead_end(pm_state) -> None:
    assert accepting_connections(make_state(pm_state)) is (pm_state != PMState.WAIT_DEAD_END)


def test_connection_accepting_stops_when_the_postmaster_exited() -> None:
    assert accepting_connections(make_state(PMState.NO_CHILDREN, exit_code=0)) is False


# -- refusal texts and SQLSTATEs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cac", "hot_standby", "sqlstate", "message", "detail"),
    [
        (CAC.STARTUP, True, "57P03", "the database system is starting up", None),
        (CAC.NOTCONSISTENT, True, "57P03", "the database system is not yet accepting connections",
         "Consistent recovery state has not been yet reached."),
        (CAC.NOTCONSISTENT, False, "57P03", "the database system is not accepting connections",
         "Hot standby mode is disabled."),
        (CAC.SHUTDOWN, True, "57P03", "the database system is shutting down", None),
        (CAC.RECOVERY, True, "57P03", "the database system is in recovery mode", None),
        (CAC.TOOMANY, True, "53300", "sorry, too many clients already", None),
    ],
)
def test_refusal_texts_and_sqlstates(cac, hot_standby, sqlstate, message, detail) -> None:
    verdict = refusal(cac, hot_standby)
    assert (verdict.sqlstate, verdict.message, verdict.detail) == (sqlstate, message, detail)


@pytest.mark.parametrize("cac", [CAC.OK, CAC.SUPERUSER])
def test_refusal_none_for_ok_and_superuser(cac) -> None:
    assert refusal(cac, True) is None


def test_refusal_superuser_check_after_authentication() -> None:
    assert (SUPERUSER_ONLY.sqlstate, SUPERUSER_ONLY.message) == (
        "42501", "must be superuser to connect during database shutdown")
    assert (SUPERUSER_ONLY_REPLICATION.sqlstate, SUPERUSER_ONLY_REPLICATION.message) == (
        "42501", "new replication connections are not allowed during database shutdown")


# -- cancel requests ---------------------------------------------------------------------------

BACKENDS = [(BACKEND_BASE + 1, 1111), (BACKEND_BASE + 2, 2222)]


def test_cancel_request_matching_pid_and_key_sigints_the_backend() -> None:
    outcome = cancel_request_outcome(BACKENDS, BACKEND_BASE + 2, 2222)
    assert (outcome.signal_pid, outcome.log) == (BACKEND_BASE + 2, None)


def test_cancel_request_wrong_key() -> None:
    outcome = cancel_request_outcome(BACKENDS, BACKEND_BASE + 1, 9999)
    assert (outcome.signal_pid, outcome.log) == (None, "wrong key in cancel request for process 201")


def test_cancel_request_unknown_pid() -> None:
    outcome = cancel_request_outcome(BACKENDS, 4242, 1111)
    assert (outcome.signal_pid, outcome.log) == (None, "PID 4242 in cancel request did not match any process")


def test_cancel_request_with_no_backends() -> None:
    assert cancel_request_outcome([], 4242, 1).log == "PID 4242 in cancel request did not match any process"
