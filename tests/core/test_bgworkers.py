"""Background worker scheduling, maybe_start_bgworkers (spec §2.3)."""

from __future__ import annotations

import pytest

from pgtop.core import Config, next_deadline
from pgtop.core.events import ForkFailed, Tick
from pgtop.core.state import LOGICAL_REPLICATION_LAUNCHER
from pgtop.core.vocabulary import (
    BGW_NEVER_RESTART,
    BgWorkerStartTime,
    PMState,
    Shutdown,
    Sig,
)
from tests.core.rules_helpers import (
    BACKEND_BASE,
    FIRST_NEW_ID,
    RUN_SET,
    T0,
    K,
    exited,
    make_state,
    run,
    worker,
)

S = BgWorkerStartTime
STARTS_IN = {
    S.POSTMASTER_START: {PMState.INIT, PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY, PMState.RUN},
    S.CONSISTENT_STATE: {PMState.HOT_STANDBY, PMState.RUN},
    S.RECOVERY_FINISHED: {PMState.RUN},
}
STATES = [s for s in PMState if s is not PMState.NO_CHILDREN]
GRID = [(start, pm_state, pm_state in STARTS_IN[start]) for start in S for pm_state in STATES]


def due(pm_state: PMState, *workers, **fields):
    """Workers registered and StartWorkerNeeded set; shutdown when the state implies one."""
    fields.setdefault("shutdown", Shutdown.NO if pm_state <= PMState.RUN else Shutdown.FAST)
    return make_state(pm_state, idle_workers=workers, start_worker_needed=True, **fields)


def worker_spawns(o) -> list[str | None]:
    return [a.bgworker for a in o.spawn_actions if a.kind is K.BGWORKER]


@pytest.mark.parametrize(("start_time", "pm_state", "starts"), GRID)
def test_bgworker_start_time_by_state(start_time, pm_state, starts) -> None:
    o = run(due(pm_state, worker("w", start_time)), Tick())
    assert worker_spawns(o) == (["w"] if starts else [])
    assert o.state.start_worker_needed is False


def test_bgworker_logical_replication_launcher_is_recovery_finished_with_5_s_restart() -> None:
    lrl = LOGICAL_REPLICATION_LAUNCHER
    assert (lrl.name, lrl.start_time, lrl.restart_time) == (
        "logical replication launcher", S.RECOVERY_FINISHED, 5)
    from pgtop.core import initial_state

    assert initial_state(Config(), T0).bgworkers == (lrl,)
    assert initial_state(Config(max_logical_replication_workers=0), T0).bgworkers == ()


@pytest.mark.parametrize(("since_crash", "starts"), [(4.999, False), (5.0, True), (60.0, True)])
def test_bgworker_crashed_worker_restarts_after_bgw_restart_time(since_crash, starts) -> None:
    crashed = worker("w", restart_time=5, crashed_at=T0 - since_crash)
    state = make_state(PMState.RUN, RUN_SET, idle_workers=(crashed,), have_crashed_worker=True)
    o = run(state, Tick())
    assert worker_spawns(o) == (["w"] if starts else [])
    assert o.state.have_crashed_worker is (not starts)
    if starts:
        (started,) = o.state.bgworkers
        assert (started.child_id, started.crashed_at) == (FIRST_NEW_ID, None)


def test_bgworker_logical_replication_launcher_restarts_5_s_after_exit_1() -> None:
    state = make_state(PMState.RUN, RUN_SET, running_workers=(LOGICAL_REPLICATION_LAUNCHER,))
    o = run(state, exited(501, 1))
    assert next_deadline(o.state, T0) == T0 + 5
    assert worker_spawns(run(o.state, Tick(), now=T0 + 5)) == ["logical replication launcher"]


def test_bgworker_never_restart_worker_is_forgotten_after_a_crash() -> None:
    one_shot = worker("one-shot", restart_time=BGW_NEVER_RESTART, crashed_at=T0 - 1)
    state = make_state(PMState.RUN, RUN_SET, idle_workers=(one_shot,), have_crashed_worker=True)
    o = run(state, Tick())
    assert worker_spawns(o) == []
    assert o.state.bgworkers == ()
    assert run(o.state, Tick(), now=T0 + 3600).spawns == []


def test_bgworker_never_restart_worker_notifies_its_registrant() -> None:
    one_shot = worker("one-shot", restart_time=BGW_NEVER_RESTART, crashed_at=T0 - 1,
                      notify_pid=BACKEND_BASE + 1)
    state = make_state(PMState.RUN, RUN_SET, backends=1, idle_workers=(one_shot,), have_crashed_worker=True)
    o = run(state, Tick())
    assert o.signals == [(BACKEND_BASE + 1, Sig.USR1)]


def test_bgworker_exit_notifies_its_registrant() -> None:
    watched = worker("watched", notify_pid=BACKEND_BASE + 1)
    state = make_state(PMState.RUN, RUN_SET, backends=1, running_workers=(watched,))
    o = run(state, exited(501, 1))
    assert (BACKEND_BASE + 1, Sig.USR1) in o.signal_set


def test_bgworker_terminated_worker_is_forgotten_at_the_next_scan() -> None:
    state = make_state(PMState.RUN, RUN_SET, running_workers=(worker("w"),))
    o = run(state, exited(501, 0))
    assert o.state.bgworkers == ()
    assert worker_spawns(o) == []


def test_bgworker_at_most_100_started_per_call() -> None:
    many = [worker(f"w{n}", S.POSTMASTER_START) for n in range(150)]
    state = make_state(PMState.RUN, RUN_SET, idle_workers=many, start_worker_needed=True)
    o = run(state, Tick())
    assert worker_spawns(o) == [f"w{n}" for n in range(100)]
    assert o.state.start_worker_needed is True
    assert next_deadline(o.state, T0) == T0  # come back at once for the rest
    o2 = run(o.state, Tick())
    assert worker_spawns(o2) == [f"w{n}" for n in range(100, 150)]
    assert o2.state.start_worker_needed is False


def test_bgworker_fatal_error_blocks_every_start_and_clears_both_flags() -> None:
    state = make_state(PMState.STARTUP, (K.STARTUP,), fatal_error=True, start_worker_needed=True,
                       have_crashed_worker=True,
                       idle_workers=(worker("early", S.POSTMASTER_START),
                                     worker("crashed", S.POSTMASTER_START, crashed_at=T0 - 60)))
    o = run(state, Tick())
    assert worker_spawns(o) == []
    assert (o.state.start_worker_needed, o.state.have_crashed_worker) == (False, False)


def test_bgworker_no_slot_available_when_too_many_children() -> None:
    state = make_state(PMState.RUN, RUN_SET, backends=244, start_worker_needed=True,
                       idle_workers=(worker("a"), worker("b")))
    o = run(state, Tick())
    # The first failure stops the scan: one line, not two.
    assert o.logs == ["no slot available for new worker process"]
    assert worker_spawns(o) == []
    a, b = o.state.bgworkers
    assert (a.crashed_at, b.crashed_at) == (T0, None)  # treated as a crash: it waits
    assert o.state.start_worker_needed is True
    again = run(o.state, Tick())
    assert again.logs == ["no slot available for new worker process"]  # "b" is tried now
    assert run(again.state, Tick()).logs == []  # both wait bgw_restart_time now


def test_bgworker_fork_failure_marks_the_worker_crashed() -> None:
    state = make_state(PMState.RUN, RUN_SET, idle_workers=(worker("w", restart_time=5),), start_worker_needed=True)
    o = run(state, Tick(), ForkFailed(FIRST_NEW_ID, "Resource temporarily unavailable"))
    assert o.logs == ["could not fork worker process: Resource temporarily unavailable"]
    (w,) = o.state.bgworkers
    assert (w.child_id, w.crashed_at) == (None, T0)
    assert o.state.start_worker_needed is True
    assert FIRST_NEW_ID not in o.state.children
    assert worker_spawns(run(o.state, Tick(), now=T0 + 4)) == []
    assert worker_spawns(run(o.state, Tick(), now=T0 + 5)) == ["w"]


def test_bgworker_running_worker_is_not_started_twice() -> None:
    state = make_state(PMState.RUN, RUN_SET, running_workers=(worker("w"),), start_worker_needed=True)
    assert worker_spawns(run(state, Tick())) == []
