"""PostmasterStateMachine, one test per transition T1-T11 of spec §5, plus chaining within one
call and the priority order of the NO_CHILDREN endings."""

from __future__ import annotations

import pytest

from pgtop.core import Config
from pgtop.core.actions import CancelBackup, Exit, ResetSharedMemory, SignalChild, Spawn
from pgtop.core.events import ForkFailed, PMSignalRaised, SignalReceived
from pgtop.core.state import LOGICAL_REPLICATION_LAUNCHER
from pgtop.core.vocabulary import (
    BGW_NEVER_RESTART,
    ConnsAllowed,
    PMSignalReason,
    PMState,
    Shutdown,
    Sig,
    StartupStatus,
)
from tests.core.rules_helpers import (
    AUTOVAC_WORKER_BASE,
    BACKEND_BASE,
    BGWORKER_BASE,
    DEAD_END_BASE,
    FIRST_NEW_ID,
    PID,
    RUN_SET,
    T0,
    WALSENDER_BASE,
    K,
    exited,
    make_state,
    run,
    worker,
)

ADVANCE = PMSignalRaised(frozenset({PMSignalReason.ADVANCE_STATE_MACHINE}))
LRL = LOGICAL_REPLICATION_LAUNCHER


# -- T1, T2: the smart-shutdown sub-states ---------------------------------------------------


def test_statemachine_T1_superuser_phase_ends_without_exclusive_backup() -> None:
    state = make_state(PMState.RUN, RUN_SET, backends=1, shutdown=Shutdown.SMART,
                       conns_allowed=ConnsAllowed.SUPERUSER)
    o = run(state, ADVANCE)
    assert o.state.conns_allowed is ConnsAllowed.NONE
    assert o.state.pm_state == PMState.RUN  # a client is still connected
    assert (o.logs, o.signals, o.spawns) == ([], [], [])


def test_statemachine_T1_superuser_phase_holds_while_an_exclusive_backup_runs() -> None:
    state = make_state(PMState.RUN, RUN_SET, shutdown=Shutdown.SMART,
                       conns_allowed=ConnsAllowed.SUPERUSER, exclusive_backup=True)
    o = run(state, ADVANCE)
    assert o.state.conns_allowed is ConnsAllowed.SUPERUSER
    assert o.state.pm_state == PMState.RUN


@pytest.mark.parametrize("pm_state", [PMState.RUN, PMState.HOT_STANDBY])
def test_statemachine_T2_last_normal_backend_gone_stops_backends(pm_state) -> None:
    specials = RUN_SET if pm_state == PMState.RUN else (K.STARTUP, K.CHECKPOINTER, K.BGWRITER, K.STATS)
    # Walsenders, autovacuum workers, bgworkers and dead_ends are not counted.
    state = make_state(pm_state, specials, backends=1, walsenders=1, av_workers=1, dead_ends=1,
                       running_workers=(LRL,), shutdown=Shutdown.SMART,
                       conns_allowed=ConnsAllowed.NONE)
    o = run(state, exited(BACKEND_BASE + 1, 0))
    assert o.state.pm_state == PMState.WAIT_BACKENDS  # T2 then T3 in the same call
    assert (AUTOVAC_WORKER_BASE + 1, Sig.TERM) in o.signal_set
    assert o.state.last_transition.rule == "T3"


@pytest.mark.parametrize("pm_state", [PMState.RUN, PMState.HOT_STANDBY])
def test_statemachine_T2_waits_for_every_normal_backend(pm_state) -> None:
    state = make_state(pm_state, RUN_SET, backends=2, shutdown=Shutdown.SMART,
                       conns_allowed=ConnsAllowed.NONE)
    o = run(state, exited(BACKEND_BASE + 1, 0))
    assert o.state.pm_state == pm_state
    assert o.signals == []


# -- T3: STOP_BACKENDS --------------------------------------------------------------------------


def stop_backends_state(**fields):
    return make_state(
        PMState.STOP_BACKENDS,
        (K.STARTUP, K.BGWRITER, K.CHECKPOINTER, K.WALWRITER, K.WALRECEIVER, K.AUTOVAC_LAUNCHER,
         K.ARCHIVER, K.STATS, K.SYSLOGGER),
        backends=1, walsenders=1, av_workers=1, dead_ends=1, running_workers=(LRL,),
        shutdown=Shutdown.FAST, config=Config(logging_collector=True, archive_mode="on"),
        **fields,
    )


def test_statemachine_T3_sigterm_to_all_but_walsenders_checkpointer_archiver_stats_logger() -> None:
    o = run(stop_backends_state(), ADVANCE)
    backend_list = {BACKEND_BASE + 1, AUTOVAC_WORKER_BASE + 1, BGWORKER_BASE + 1}
    n = len(backend_list)
    assert {pid for pid, _ in o.signals[:n]} == backend_list
    assert o.signals[n:] == [(PID[k], Sig.TERM) for k in (
        K.AUTOVAC_LAUNCHER, K.BGWRITER, K.WALWRITER, K.STARTUP, K.WALRECEIVER)]
    assert {sig for _, sig in o.signals} == {Sig.TERM}
    assert o.state.pm_state == PMState.WAIT_BACKENDS
    assert (o.logs, o.spawns) == ([], [])


def test_statemachine_T3_forgets_unstarted_bgworkers_that_have_a_registrant() -> None:
    waited_for = worker("waited for", notify_pid=BACKEND_BASE + 1)
    unwatched = worker("nobody waits")
    state = stop_backends_state(idle_workers=(waited_for, unwatched))
    o = run(state, ADVANCE)
    assert [w.name for w in o.state.bgworkers] == [LRL.name, "nobody waits"]


def test_statemachine_T3_tells_the_registrant_its_worker_is_forgotten() -> None:
    waited_for = worker("waited for", notify_pid=BACKEND_BASE + 1)
    o = run(stop_backends_state(idle_workers=(waited_for,)), ADVANCE)
    assert (BACKEND_BASE + 1, Sig.USR1) in o.signal_set


# -- T4: WAIT_BACKENDS ----------------------------------------------------------------------

T4_BLOCKERS = {
    "client backend": {"backends": 1},
    "autovacuum worker": {"av_workers": 1},
    "bgworker": {"running_workers": (LRL,)},
    "startup": {"specials": (K.STARTUP,)},
    "walreceiver": {"specials": (K.WALRECEIVER,)},
    "bgwriter": {"specials": (K.BGWRITER,)},
    "walwriter": {"specials": (K.WALWRITER,)},
    "autovacuum launcher": {"specials": (K.AUTOVAC_LAUNCHER,)},
}
T4_NON_BLOCKERS = {
    "walsender": {"walsenders": 1},
    "dead_end": {"dead_ends": 1},
    "archiver": {"specials": (K.ARCHIVER,)},
    "stats collector": {"specials": (K.STATS,)},
    "syslogger": {"specials": (K.SYSLOGGER,)},
}


def wait_backends(extra: dict, **fields):
    extra = dict(extra)
    specials = (K.CHECKPOINTER,) + tuple(extra.pop("specials", ()))
    fields.setdefault("shutdown", Shutdown.FAST)
    return make_state(PMState.WAIT_BACKENDS, specials, config=Config(archive_mode="on"),
                      **extra, **fields)


@pytest.mark.parametrize("blocker", list(T4_BLOCKERS))
def test_statemachine_T4_waits_for_backends_and_auxiliary_processes(blocker) -> None:
    o = run(wait_backends(T4_BLOCKERS[blocker]), ADVANCE)
    assert o.state.pm_state == PMState.WAIT_BACKENDS
    assert o.signals == []


@pytest.mark.parametrize("bystander", list(T4_NON_BLOCKERS))
def test_statemachine_T4_ignores_walsenders_dead_ends_archiver_stats_and_logger(bystander) -> None:
    o = run(wait_backends(T4_NON_BLOCKERS[bystander]), ADVANCE)
    assert o.state.pm_state == PMState.SHUTDOWN


@pytest.mark.parametrize(("fatal_error", "shutdown"), [(True, Shutdown.NO), (True, Shutdown.FAST),
                                                       (False, Shutdown.IMMEDIATE)])
def test_statemachine_T4_waits_for_the_checkpointer_in_a_crash_or_immediate_shutdown(fatal_error, shutdown) -> None:
    state = wait_backends({}, fatal_error=fatal_error, shutdown=shutdown, abort_start_time=T0 - 1)
    o = run(state, ADVANCE)
    assert o.state.pm_state == PMState.WAIT_BACKENDS
    assert o.signals == []


@pytest.mark.parametrize(("fatal_error", "shutdown"), [(True, Shutdown.NO), (True, Shutdown.FAST),
                                                       (False, Shutdown.IMMEDIATE)])
def test_statemachine_T4a_crash_or_immediate_goes_to_wait_dead_end(fatal_error, shutdown) -> None:
    state = make_state(PMState.WAIT_BACKENDS, (K.CHECKPOINTER,), dead_ends=1, fatal_error=fatal_error,
                       shutdown=shutdown, abort_start_time=T0 - 1)
    o = run(state, exited(PID[K.CHECKPOINTER], 2))
    assert o.state.pm_state == PMState.WAIT_DEAD_END  # the dead_end is still there
    assert (o.signals, o.spawns) == ([], [])
    assert o.state.last_transition.rule == "T4a"


def test_statemachine_T4b_normal_shutdown_asks_the_checkpointer_for_the_shutdown_checkpoint() -> None:
    state = wait_backends({"backends": 1, "walsenders": 1})
    o = run(state, exited(BACKEND_BASE + 1, 1))
    assert o.signals == [(PID[K.CHECKPOINTER], Sig.USR2)]
    assert o.spawns == []
    assert o.state.pm_state == PMState.SHUTDOWN
    assert o.logs == []


def test_statemachine_T4b_starts_a_missing_checkpointer_first() -> None:
    state = make_state(PMState.WAIT_BACKENDS, backends=1, shutdown=Shutdown.FAST)
    o = run(state, exited(BACKEND_BASE + 1, 1))
    ckpt = [a for a in o.actions if isinstance(a, (Spawn, SignalChild))]
    assert ckpt == [Spawn(FIRST_NEW_ID, K.CHECKPOINTER), SignalChild(FIRST_NEW_ID, Sig.USR2)]
    assert o.state.pm_state == PMState.SHUTDOWN


def test_statemachine_T4c_checkpointer_fork_failure_kills_walsenders_archiver_stats() -> None:
    state = make_state(PMState.WAIT_BACKENDS, (K.ARCHIVER, K.STATS), backends=1, walsenders=1,
                       dead_ends=1, shutdown=Shutdown.FAST, config=Config(archive_mode="on"))
    o = run(state, exited(BACKEND_BASE + 1, 1))
    assert o.spawns == [K.CHECKPOINTER]
    failed = run(o.state, ForkFailed(FIRST_NEW_ID, "Resource temporarily unavailable"))
    assert failed.logs == ["could not fork checkpointer process: Resource temporarily unavailable"]
    assert failed.state.fatal_error is True
    assert failed.state.pm_state == PMState.WAIT_DEAD_END
    assert failed.signal_set == {(WALSENDER_BASE + 1, Sig.QUIT), (PID[K.ARCHIVER], Sig.QUIT),
                                 (PID[K.STATS], Sig.QUIT)}
    # Once they are gone: "abnormal database system shutdown", exit 1.
    gone = run(failed.state, exited(WALSENDER_BASE + 1, 2), exited(PID[K.ARCHIVER], 2),
               exited(PID[K.STATS], 0), exited(DEAD_END_BASE + 1, 1))
    assert gone.logs == ["abnormal database system shutdown"]
    assert gone.of_type(Exit) == [Exit(1)]


def test_statemachine_T4c_with_nothing_left_exits_at_once() -> None:
    state = make_state(PMState.WAIT_BACKENDS, backends=1, shutdown=Shutdown.FAST)
    o = run(state, exited(BACKEND_BASE + 1, 1),
            ForkFailed(FIRST_NEW_ID, "Resource temporarily unavailable"))
    assert o.logs == ["could not fork checkpointer process: Resource temporarily unavailable",
                      "abnormal database system shutdown"]
    assert o.of_type(Exit) == [Exit(1)]


# -- T5, T6 --------------------------------------------------------------------------------


def shutdown_2(specials=(), **fields):
    return make_state(PMState.SHUTDOWN_2, specials, shutdown=Shutdown.FAST,
                      config=Config(archive_mode="on"), **fields)


def test_statemachine_T5_shutdown_2_ends_when_archiver_and_walsenders_are_gone() -> None:
    state = shutdown_2(walsenders=1, dead_ends=1)
    o = run(state, exited(WALSENDER_BASE + 1, 0))
    assert o.state.pm_state == PMState.WAIT_DEAD_END


def test_statemachine_T5_waits_for_the_archiver() -> None:
    o = run(shutdown_2((K.ARCHIVER,), walsenders=1), exited(WALSENDER_BASE + 1, 0))
    assert o.state.pm_state == PMState.SHUTDOWN_2


def test_statemachine_T5_waits_for_the_walsenders() -> None:
    o = run(shutdown_2((K.ARCHIVER,), walsenders=1), exited(PID[K.ARCHIVER], 0))
    assert o.state.pm_state == PMState.SHUTDOWN_2
    assert o.spawns == []  # and the archiver is not restarted in SHUTDOWN_2


@pytest.mark.parametrize("blocker", ["dead_end", "archiver", "stats collector"])
def test_statemachine_T6_wait_dead_end_waits_for_dead_ends_archiver_and_stats(blocker) -> None:
    extra = {"dead_end": {"dead_ends": 1}, "archiver": {"specials": (K.ARCHIVER,)},
             "stats collector": {"specials": (K.STATS,)}}[blocker]
    specials = (K.SYSLOGGER,) + tuple(extra.pop("specials", ()))
    state = make_state(PMState.WAIT_DEAD_END, specials, backends=0, walsenders=1,
                       shutdown=Shutdown.FAST, **extra)
    o = run(state, exited(WALSENDER_BASE + 1, 0))
    assert o.state.pm_state == PMState.WAIT_DEAD_END
    assert o.state.exit_code is None


def test_statemachine_T6_no_children_ignores_the_syslogger() -> None:
    state = make_state(PMState.WAIT_DEAD_END, (K.SYSLOGGER,), dead_ends=1, shutdown=Shutdown.FAST,
                       config=Config(logging_collector=True))
    o = run(state, exited(DEAD_END_BASE + 1, 1))
    assert o.state.pm_state == PMState.NO_CHILDREN
    assert o.of_type(Exit) == [Exit(0)]


# -- T7-T11: the endings at NO_CHILDREN --------------------------------------------------------


def last_dead_end(**fields):
    """WAIT_DEAD_END with one dead_end left; its exit reaches NO_CHILDREN."""
    return make_state(PMState.WAIT_DEAD_END, dead_ends=1, **fields)


def end_of(state):
    return run(state, exited(DEAD_END_BASE + 1, 1))


def test_statemachine_T7_shutdown_after_a_crash_is_abnormal() -> None:
    o = end_of(last_dead_end(shutdown=Shutdown.FAST, fatal_error=True))
    assert o.logs == ["abnormal database system shutdown"]
    assert o.of_type(Exit) == [Exit(1)]
    assert o.state.exit_code == 1


@pytest.mark.parametrize("shutdown", [Shutdown.SMART, Shutdown.FAST, Shutdown.IMMEDIATE])
def test_statemachine_T8_normal_exit_cancels_exclusive_backup_after_normal_running(shutdown) -> None:
    o = end_of(last_dead_end(shutdown=shutdown, reached_normal_running=True))
    assert o.logs == []
    assert o.others == [CancelBackup(), Exit(0)]
    assert o.state.exit_code == 0


def test_statemachine_T8_keeps_backup_label_if_normal_running_was_never_reached() -> None:
    o = end_of(last_dead_end(shutdown=Shutdown.FAST, reached_normal_running=False))
    assert o.others == [Exit(0)]


def test_statemachine_T9_startup_process_failure() -> None:
    o = end_of(last_dead_end(fatal_error=True, startup_status=StartupStatus.CRASHED))
    assert o.logs == ["shutting down due to startup process failure"]
    assert o.of_type(Exit) == [Exit(1)]


def test_statemachine_T10_restart_after_crash_off() -> None:
    o = end_of(last_dead_end(fatal_error=True, config=Config(restart_after_crash=False)))
    assert o.logs == ["shutting down because restart_after_crash is off"]
    assert o.of_type(Exit) == [Exit(1)]
    assert o.spawns == []


@pytest.mark.parametrize("remove_temp_files", [True, False])
def test_statemachine_T11_crash_reinit(remove_temp_files) -> None:
    never = worker("one-shot", restart_time=BGW_NEVER_RESTART, crashed_at=T0 - 1)
    crashed = worker("crashed", restart_time=60, crashed_at=T0 - 1)
    state = last_dead_end(
        fatal_error=True, abort_start_time=T0 - 2,
        idle_workers=(crashed, never),
        config=Config(remove_temp_files_after_crash=remove_temp_files),
    )
    o = end_of(state)
    assert o.logs == ["all server processes terminated; reinitializing"]
    assert o.of_type(ResetSharedMemory) == [ResetSharedMemory(remove_temp_files=remove_temp_files)]
    assert o.spawns == [K.STARTUP]
    # ResetSharedMemory comes before the new startup process.
    assert o.actions.index(o.of_type(ResetSharedMemory)[0]) < o.actions.index(o.spawn_actions[0])
    s = o.state
    assert (s.pm_state, s.startup_status, s.abort_start_time) == (PMState.STARTUP, StartupStatus.RUNNING, 0.0)
    assert s.fatal_error is True  # until RECOVERY_STARTED or the startup process exits 0
    # Restartable workers may start at once; BGW_NEVER_RESTART ones are forgotten.
    assert [(w.name, w.crashed_at) for w in s.bgworkers] == [("crashed", None)]
    assert o.pid_statuses == []  # postmaster.pid keeps saying "ready   "
    assert s.exit_code is None


@pytest.mark.parametrize(
    ("shutdown", "fatal_error", "startup_status", "restart_after_crash", "log", "code"),
    [
        (Shutdown.FAST, True, StartupStatus.CRASHED, False, "abnormal database system shutdown", 1),
        (Shutdown.FAST, False, StartupStatus.CRASHED, False, None, 0),
        (Shutdown.NO, True, StartupStatus.CRASHED, False, "shutting down due to startup process failure", 1),
        (Shutdown.NO, True, StartupStatus.NOT_RUNNING, False, "shutting down because restart_after_crash is off", 1),
        (Shutdown.NO, True, StartupStatus.NOT_RUNNING, True, "all server processes terminated; reinitializing", None),
    ],
)
def test_statemachine_T7_to_T11_first_matching_ending_wins(
    shutdown, fatal_error, startup_status, restart_after_crash, log, code
) -> None:
    state = last_dead_end(shutdown=shutdown, fatal_error=fatal_error, startup_status=startup_status,
                          config=Config(restart_after_crash=restart_after_crash))
    o = end_of(state)
    assert o.logs == ([log] if log else [])
    assert o.state.exit_code == code
    assert o.of_type(Exit) == ([Exit(code)] if code is not None else [])


# -- chaining ------------------------------------------------------------------------------


def test_statemachine_chains_run_stop_backends_wait_backends_shutdown_in_one_call() -> None:
    # Only the checkpointer, a walsender, the archiver and the stats collector are left.
    state = make_state(PMState.RUN, (K.CHECKPOINTER, K.ARCHIVER, K.STATS), walsenders=1,
                       config=Config(archive_mode="on"))
    o = run(state, SignalReceived(Sig.TERM))
    assert o.logs == ["received smart shutdown request"]
    assert o.signals == [(PID[K.CHECKPOINTER], Sig.USR2)]
    assert o.state.pm_state == PMState.SHUTDOWN
    assert o.state.conns_allowed is ConnsAllowed.NONE
    states = [a.message for a in o.actions if a.__class__.__name__ == "Log" and "PMState" in a.message]
    assert states == [
        "updating PMState from PM_RUN to PM_STOP_BACKENDS",
        "updating PMState from PM_STOP_BACKENDS to PM_WAIT_BACKENDS",
        "updating PMState from PM_WAIT_BACKENDS to PM_SHUTDOWN",
    ]


def test_statemachine_chains_to_the_exit_when_nothing_is_left() -> None:
    state = make_state(PMState.RUN, (), reached_normal_running=True)
    o = run(state, SignalReceived(Sig.INT))
    # T4b needs a checkpointer: it is forked and asked for the shutdown checkpoint.
    assert o.logs == ["received fast shutdown request", "aborting any active transactions"]
    assert o.spawns == [K.CHECKPOINTER]
    assert o.state.pm_state == PMState.SHUTDOWN
    done = run(o.state, exited(FIRST_NEW_ID, 0))
    assert done.state.pm_state == PMState.NO_CHILDREN  # SHUTDOWN_2 -> WAIT_DEAD_END -> NO_CHILDREN
    assert done.others == [CancelBackup(), Exit(0)]


def test_statemachine_T11_startup_fork_failure_at_reinit_is_fatal() -> None:
    o = end_of(last_dead_end(fatal_error=True))
    startup_id = o.spawn_actions[0].child_id
    failed = run(o.state, ForkFailed(startup_id, "Resource temporarily unavailable"))
    assert failed.logs == ["could not fork startup process: Resource temporarily unavailable"]
    assert failed.of_type(Exit) == [Exit(1)]
