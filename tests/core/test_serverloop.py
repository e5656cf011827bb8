"""Start sites (spec §2.1) and ServerLoop's timing (§8): who is started in which state, the
throttles, the order of one loop iteration, and how long the loop sleeps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgtop.core import Config, initial_state, next_deadline
from pgtop.core.actions import (
    CheckLockFile,
    Exit,
    Log,
    SignalChild,
    TouchSocketFiles,
)
from pgtop.core.events import ForkFailed, PostmasterStarted, Tick
from pgtop.core.state import LOGICAL_REPLICATION_LAUNCHER
from pgtop.core.vocabulary import (
    BGW_NEVER_RESTART,
    BgWorkerStartTime,
    LogLevel,
    PidStatus,
    PMState,
    Shutdown,
    Sig,
    StartupStatus,
)
from tests.core.rules_helpers import (
    answered,
    FIRST_NEW_ID,
    PID,
    RUN_SET,
    T0,
    K,
    make_state,
    run,
    worker,
)

FORK_ERROR = "Resource temporarily unavailable"

# Shutdown levels that make a hand-built state plausible for each pmState.
RESTING_SHUTDOWN = {
    PMState.INIT: Shutdown.NO,
    PMState.STARTUP: Shutdown.NO,
    PMState.RECOVERY: Shutdown.NO,
    PMState.HOT_STANDBY: Shutdown.NO,
    PMState.RUN: Shutdown.NO,
    PMState.WAIT_BACKENDS: Shutdown.FAST,
    PMState.SHUTDOWN: Shutdown.FAST,
    PMState.SHUTDOWN_2: Shutdown.FAST,
    PMState.WAIT_DEAD_END: Shutdown.FAST,
}


def empty(pm_state: PMState, config: Config | None = None, **fields):
    """Nothing runs: what does one ServerLoop iteration start?"""
    fields.setdefault("shutdown", RESTING_SHUTDOWN[pm_state])
    return make_state(pm_state, config=config, **fields)


# -- §2.1 keep-alives by state --------------------------------------------------------------

DEFAULT_KEEPALIVES = {
    PMState.INIT: [],
    PMState.STARTUP: [],  # the startup process is never a keep-alive
    PMState.RECOVERY: [K.CHECKPOINTER, K.BGWRITER],
    PMState.HOT_STANDBY: [K.CHECKPOINTER, K.BGWRITER, K.STATS],
    PMState.RUN: [K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER, K.STATS],
    PMState.WAIT_BACKENDS: [],
    PMState.SHUTDOWN: [],
    PMState.SHUTDOWN_2: [],
    PMState.WAIT_DEAD_END: [],
}


@pytest.mark.parametrize("pm_state", list(DEFAULT_KEEPALIVES))
def test_start_sites_server_loop_keepalives_by_state(pm_state) -> None:
    o = run(empty(pm_state), Tick())
    assert o.spawns == DEFAULT_KEEPALIVES[pm_state]
    assert o.state.pm_state == pm_state
    assert o.logs == []


FULL_CONFIG = Config(logging_collector=True, archive_mode="always")
FULL_KEEPALIVES = {
    PMState.INIT: [K.SYSLOGGER],
    PMState.STARTUP: [K.SYSLOGGER],
    PMState.RECOVERY: [K.SYSLOGGER, K.CHECKPOINTER, K.BGWRITER, K.ARCHIVER],
    PMState.HOT_STANDBY: [K.SYSLOGGER, K.CHECKPOINTER, K.BGWRITER, K.STATS, K.ARCHIVER],
    PMState.RUN: [K.SYSLOGGER, K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER,
                  K.STATS, K.ARCHIVER],
    PMState.WAIT_BACKENDS: [K.SYSLOGGER],
    PMState.SHUTDOWN: [K.SYSLOGGER],
    PMState.SHUTDOWN_2: [K.SYSLOGGER],
    PMState.WAIT_DEAD_END: [K.SYSLOGGER],
}


@pytest.mark.parametrize("pm_state", list(FULL_KEEPALIVES))
def test_start_sites_with_logging_collector_and_archive_mode_always_in_loop_order(pm_state) -> None:
    o = run(empty(pm_state, FULL_CONFIG), Tick())
    assert o.spawns == FULL_KEEPALIVES[pm_state]


@pytest.mark.parametrize("pm_state", list(DEFAULT_KEEPALIVES))
def test_start_walwriter_only_in_run(pm_state) -> None:
    o = run(empty(pm_state), Tick())
    assert (K.WALWRITER in o.spawns) is (pm_state == PMState.RUN)


@pytest.mark.parametrize("pm_state", list(DEFAULT_KEEPALIVES))
def test_start_bgwriter_and_checkpointer_in_run_recovery_and_hot_standby(pm_state) -> None:
    o = run(empty(pm_state), Tick())
    expected = pm_state in (PMState.RUN, PMState.RECOVERY, PMState.HOT_STANDBY)
    assert (K.CHECKPOINTER in o.spawns, K.BGWRITER in o.spawns) == (expected, expected)


@pytest.mark.parametrize("kind", [K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.STATS, K.AUTOVAC_LAUNCHER])
def test_start_failed_fork_is_retried_on_the_next_loop(kind) -> None:
    others = tuple(k for k in RUN_SET if k is not kind)
    o = run(make_state(PMState.RUN, others), Tick())
    assert o.spawns == [kind]
    failed = run(o.state, ForkFailed(FIRST_NEW_ID, FORK_ERROR))
    names = {K.CHECKPOINTER: "checkpointer process", K.BGWRITER: "background writer process",
             K.WALWRITER: "WAL writer process", K.STATS: "statistics collector",
             K.AUTOVAC_LAUNCHER: "autovacuum launcher process"}
    assert failed.logs == [f"could not fork {names[kind]}: {FORK_ERROR}"]
    assert failed.state.pm_state == PMState.RUN
    # The stats collector's 60 s throttle counts the failed attempt (pgstat_start records it).
    later = T0 + (60 if kind is K.STATS else 0.001)
    assert run(failed.state, Tick(), now=later).spawns == [kind]


# -- autovacuum launcher ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pm_state", "config", "requested", "spawned", "flag_after"),
    [
        (PMState.RUN, Config(), False, True, False),
        (PMState.RUN, Config(autovacuum=False), False, False, False),
        (PMState.RUN, Config(track_counts=False), False, False, False),
        (PMState.RUN, Config(autovacuum=False), True, True, False),  # wraparound request
        (PMState.HOT_STANDBY, Config(), False, False, False),
        (PMState.HOT_STANDBY, Config(autovacuum=False), True, False, True),
        (PMState.RECOVERY, Config(), True, False, True),
    ],
)
def test_start_autovacuum_launcher_only_in_run_if_active_or_requested(
    pm_state, config, requested, spawned, flag_after
) -> None:
    others = {PMState.RUN: (K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.STATS),
              PMState.HOT_STANDBY: (K.STARTUP, K.CHECKPOINTER, K.BGWRITER, K.STATS),
              PMState.RECOVERY: (K.STARTUP, K.CHECKPOINTER, K.BGWRITER)}[pm_state]
    state = make_state(pm_state, others, config=config, start_autovac_launcher=requested)
    o = answered(run(state, Tick()))
    assert o.spawns == ([K.AUTOVAC_LAUNCHER] if spawned else [])
    assert o.state.start_autovac_launcher is flag_after


def test_start_autovacuum_launcher_request_is_kept_when_the_fork_fails() -> None:
    # §2.1: "On success clear start_autovac_launcher" -- a failed fork leaves it set.
    state = make_state(PMState.RUN, (K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.STATS),
                       start_autovac_launcher=True)
    o = run(state, Tick(), ForkFailed(FIRST_NEW_ID, FORK_ERROR))
    assert o.logs == [f"could not fork autovacuum launcher process: {FORK_ERROR}"]
    assert o.state.start_autovac_launcher is True


def test_start_autovacuum_launcher_forced_request_survives_a_failed_fork_when_autovacuum_is_off() -> None:
    state = make_state(PMState.RUN, (K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.STATS),
                       config=Config(autovacuum=False), start_autovac_launcher=True)
    o = run(state, Tick(), ForkFailed(FIRST_NEW_ID, FORK_ERROR))
    assert o.state.start_autovac_launcher is True
    assert run(o.state, Tick(), now=T0 + 1).spawns == [K.AUTOVAC_LAUNCHER]


# -- archiver: PgArchStartupAllowed() and its 10 s throttle ------------------------------------


@pytest.mark.parametrize(
    ("archive_mode", "wal_level", "pm_state", "allowed"),
    [
        ("on", "replica", PMState.RUN, True),
        ("on", "logical", PMState.RUN, True),
        ("on", "minimal", PMState.RUN, False),  # archiving is not active
        ("off", "replica", PMState.RUN, False),
        ("on", "replica", PMState.RECOVERY, False),
        ("on", "replica", PMState.HOT_STANDBY, False),
        ("always", "replica", PMState.RECOVERY, True),
        ("always", "replica", PMState.HOT_STANDBY, True),
        ("always", "replica", PMState.RUN, True),
        ("always", "replica", PMState.STARTUP, False),
        ("always", "replica", PMState.WAIT_BACKENDS, False),
        ("always", "replica", PMState.SHUTDOWN_2, False),
    ],
)
def test_start_archiver_when_pgarch_startup_allowed(archive_mode, wal_level, pm_state, allowed) -> None:
    config = Config(archive_mode=archive_mode, wal_level=wal_level)
    o = run(empty(pm_state, config), Tick())
    assert (K.ARCHIVER in o.spawns) is allowed
    assert o.state.last_pgarch_start_time == (T0 if allowed else 0.0)


@pytest.mark.parametrize(("since_last", "started"), [(9.999, False), (10.0, True), (600.0, True)])
def test_start_archiver_throttled_to_one_start_per_10_s(since_last, started) -> None:
    state = make_state(PMState.RUN, RUN_SET, config=Config(archive_mode="on"),
                       last_pgarch_start_time=T0 - since_last)
    o = run(state, Tick())
    assert o.spawns == ([K.ARCHIVER] if started else [])
    # The check records the time only when it approves.
    assert o.state.last_pgarch_start_time == (T0 if started else T0 - since_last)


# -- stats collector (14) -----------------------------------------------------------------------


@pytest.mark.parametrize(("since_last", "started"), [(59.999, False), (60.0, True)])
@pytest.mark.parametrize("pm_state", [PMState.RUN, PMState.HOT_STANDBY])
def test_start_stats_collector_in_run_and_hot_standby_throttled_to_60_s(pm_state, since_last, started) -> None:
    others = {PMState.RUN: (K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER),
              PMState.HOT_STANDBY: (K.STARTUP, K.CHECKPOINTER, K.BGWRITER)}[pm_state]
    state = make_state(pm_state, others, last_pgstat_start_time=T0 - since_last)
    o = run(state, Tick())
    assert o.spawns == ([K.STATS] if started else [])
    assert o.state.last_pgstat_start_time == (T0 if started else T0 - since_last)


# -- syslogger --------------------------------------------------------------------------------


@pytest.mark.parametrize("collector", [True, False])
def test_start_syslogger_only_with_logging_collector(collector) -> None:
    o = run(empty(PMState.WAIT_DEAD_END, Config(logging_collector=collector)), Tick())
    assert o.spawns == ([K.SYSLOGGER] if collector else [])


# -- walreceiver: MaybeStartWalReceiver() -------------------------------------------------------


@pytest.mark.parametrize(
    ("pm_state", "shutdown", "requested", "spawned"),
    [
        (PMState.STARTUP, Shutdown.NO, True, True),
        (PMState.RECOVERY, Shutdown.NO, True, True),
        (PMState.HOT_STANDBY, Shutdown.NO, True, True),
        (PMState.HOT_STANDBY, Shutdown.SMART, True, True),
        (PMState.HOT_STANDBY, Shutdown.FAST, True, False),
        (PMState.RUN, Shutdown.NO, True, False),
        (PMState.WAIT_BACKENDS, Shutdown.FAST, True, False),
        (PMState.RECOVERY, Shutdown.NO, False, False),  # not a keep-alive
    ],
)
def test_start_walreceiver_only_on_request_in_startup_recovery_hot_standby(
    pm_state, shutdown, requested, spawned
) -> None:
    specials = {PMState.STARTUP: (K.STARTUP,), PMState.RUN: RUN_SET,
                PMState.WAIT_BACKENDS: (K.CHECKPOINTER,)}.get(pm_state, (K.STARTUP, K.CHECKPOINTER, K.BGWRITER, K.STATS))
    state = make_state(pm_state, specials, shutdown=shutdown, walreceiver_requested=requested)
    o = answered(run(state, Tick()))
    assert o.spawns == ([K.WALRECEIVER] if spawned else [])
    # The request is cleared only by a successful start.
    assert o.state.walreceiver_requested is (requested and not spawned)


def test_start_walreceiver_request_kept_when_the_fork_fails() -> None:
    state = make_state(PMState.RECOVERY, (K.STARTUP, K.CHECKPOINTER, K.BGWRITER),
                       walreceiver_requested=True)
    o = run(state, Tick(), ForkFailed(FIRST_NEW_ID, FORK_ERROR))
    assert o.logs == [f"could not fork WAL receiver process: {FORK_ERROR}"]
    assert o.state.walreceiver_requested is True
    retry = answered(run(o.state, Tick(), now=T0 + 1))
    assert retry.spawns == [K.WALRECEIVER]
    assert retry.state.walreceiver_requested is False


def test_start_walreceiver_request_stays_pending_while_one_runs() -> None:
    state = make_state(PMState.RECOVERY, (K.STARTUP, K.CHECKPOINTER, K.BGWRITER, K.WALRECEIVER),
                       walreceiver_requested=True)
    o = run(state, Tick())
    assert o.spawns == []
    assert o.state.walreceiver_requested is True


# -- PostmasterMain --------------------------------------------------------------------------


def test_start_postmaster_main_forks_logger_first_then_startup() -> None:
    postmaster_start_worker = worker("early", BgWorkerStartTime.POSTMASTER_START)
    state = initial_state(Config(logging_collector=True), T0)
    state = replace(state, bgworkers=state.bgworkers + (postmaster_start_worker,))
    o = run(state, PostmasterStarted())
    visible = [a for a in o.actions if not (isinstance(a, Log) and a.level < LogLevel.LOG)]
    assert [type(a).__name__ for a in visible] == [
        "Spawn", "Log", "OpenListenSockets", "ResetSharedMemory", "WritePidStatus", "Spawn", "Spawn",
    ]
    assert [a.kind for a in o.spawn_actions] == [K.SYSLOGGER, K.STARTUP, K.BGWORKER]
    assert o.spawn_actions[2].bgworker == "early"  # PostmasterStart workers start now
    assert o.logs == ["starting PostgreSQL 14.13 (pgtop) on x86_64-pc-linux-gnu, 64-bit"]
    assert o.pid_statuses == [PidStatus.STARTING]
    assert (o.state.pm_state, o.state.startup_status) == (PMState.STARTUP, StartupStatus.RUNNING)


def test_start_postmaster_main_without_logging_collector_forks_no_logger() -> None:
    o = run(initial_state(Config(), T0), PostmasterStarted())
    assert o.spawns == [K.STARTUP]  # the logical replication launcher waits for PM_RUN


def test_start_startup_fork_failure_is_fatal() -> None:
    o = run(initial_state(Config(), T0), PostmasterStarted())
    startup_id = o.spawn_actions[0].child_id
    failed = run(o.state, ForkFailed(startup_id, FORK_ERROR))
    assert failed.logs == [f"could not fork startup process: {FORK_ERROR}"]
    assert failed.of_type(Exit) == [Exit(1)]
    assert failed.state.exit_code == 1


# -- §8 one ServerLoop iteration, in order -------------------------------------------------------


def test_server_loop_iteration_order() -> None:
    lrl = LOGICAL_REPLICATION_LAUNCHER
    state = make_state(
        PMState.RUN,
        (K.AUTOVAC_LAUNCHER,),
        config=Config(logging_collector=True, archive_mode="on"),
        avlauncher_needs_signal=True,
        start_worker_needed=True,
        idle_workers=(lrl,),
        last_lockfile_check=T0 - 60,
        last_touch_time=T0 - 58 * 60,
    )
    o = run(state, Tick())
    visible = [a for a in o.actions if not isinstance(a, Log)]
    launcher = PID[K.AUTOVAC_LAUNCHER]
    assert [(type(a).__name__, getattr(a, "kind", None)) for a in visible] == [
        ("Spawn", K.SYSLOGGER),
        ("Spawn", K.CHECKPOINTER),
        ("Spawn", K.BGWRITER),
        ("Spawn", K.WALWRITER),
        ("Spawn", K.STATS),
        ("Spawn", K.ARCHIVER),
        ("SignalChild", None),
        ("Spawn", K.BGWORKER),
        ("CheckLockFile", None),
        ("TouchSocketFiles", None),
    ]
    assert visible[6] == SignalChild(launcher, Sig.USR2, group=False)


def test_server_loop_signals_the_autovacuum_launcher_once_when_asked() -> None:
    state = make_state(PMState.RUN, RUN_SET, avlauncher_needs_signal=True)
    o = run(state, Tick())
    assert o.signals == [(PID[K.AUTOVAC_LAUNCHER], Sig.USR2)]
    assert o.state.avlauncher_needs_signal is False
    assert run(o.state, Tick(), now=T0 + 1).signals == []


def test_server_loop_rechecks_the_lock_file_every_60_s() -> None:
    state = make_state(PMState.RUN, RUN_SET)
    assert run(state, Tick(), now=T0 + 59.999).of_type(CheckLockFile) == []
    o = run(state, Tick(), now=T0 + 60)
    assert o.of_type(CheckLockFile) == [CheckLockFile()]
    assert o.state.last_lockfile_check == T0 + 60


def test_server_loop_touches_socket_and_lock_files_every_58_minutes() -> None:
    state = make_state(PMState.RUN, RUN_SET, last_lockfile_check=T0 + 3600)
    assert run(state, Tick(), now=T0 + 58 * 60 - 0.001).of_type(TouchSocketFiles) == []
    o = run(state, Tick(), now=T0 + 58 * 60)
    assert o.of_type(TouchSocketFiles) == [TouchSocketFiles()]


# -- §8 DetermineSleepTime -------------------------------------------------------------------


def test_timing_idle_loop_sleeps_60_s() -> None:
    assert next_deadline(make_state(PMState.RUN, RUN_SET), T0) == T0 + 60


def test_timing_no_sleep_when_start_worker_needed() -> None:
    state = make_state(PMState.RUN, RUN_SET, start_worker_needed=True)
    assert next_deadline(state, T0) == T0


@pytest.mark.parametrize("shutdown", [Shutdown.SMART, Shutdown.FAST])
def test_timing_shutdown_ignores_start_worker_needed(shutdown) -> None:
    state = make_state(PMState.WAIT_BACKENDS, (K.CHECKPOINTER,), shutdown=shutdown,
                       start_worker_needed=True, have_crashed_worker=True)
    assert next_deadline(state, T0) == T0 + 60


def test_timing_wakes_for_the_next_bgworker_restart() -> None:
    workers = (worker("a", restart_time=5, crashed_at=T0 - 2), worker("b", restart_time=30, crashed_at=T0 - 2))
    state = make_state(PMState.RUN, RUN_SET, idle_workers=workers, have_crashed_worker=True)
    assert next_deadline(state, T0) == T0 + 3


def test_timing_bgworker_restart_wait_is_capped_at_60_s() -> None:
    state = make_state(PMState.RUN, RUN_SET, idle_workers=(worker(restart_time=300, crashed_at=T0),),
                       have_crashed_worker=True)
    assert next_deadline(state, T0) == T0 + 60


def test_timing_never_restart_workers_do_not_wake_the_loop() -> None:
    state = make_state(PMState.RUN, RUN_SET, have_crashed_worker=True,
                       idle_workers=(worker(restart_time=BGW_NEVER_RESTART, crashed_at=T0 - 1),))
    assert next_deadline(state, T0) == T0 + 60


@pytest.mark.parametrize(("started_ago", "remaining"), [(0.0, 5.0), (2.0, 3.0), (5.0, 0.0), (30.0, 0.0)])
def test_timing_sigkill_stopwatch_cuts_the_wait(started_ago, remaining) -> None:
    state = make_state(PMState.WAIT_BACKENDS, (K.CHECKPOINTER,), fatal_error=True,
                       abort_start_time=T0 - started_ago)
    assert next_deadline(state, T0) == T0 + remaining


def test_timing_wait_dead_end_sleeps_100_ms() -> None:
    state = make_state(PMState.WAIT_DEAD_END, dead_ends=1, shutdown=Shutdown.FAST)
    assert next_deadline(state, T0) == pytest.approx(T0 + 0.1)


def test_start_syslogger_failed_fork_is_retried_without_throttle() -> None:
    state = make_state(PMState.RUN, RUN_SET, config=Config(logging_collector=True))
    o = run(state, Tick(), ForkFailed(FIRST_NEW_ID, FORK_ERROR))
    assert o.logs == [f"could not fork system logger: {FORK_ERROR}"]
    assert run(o.state, Tick(), now=T0 + 0.001).spawns == [K.SYSLOGGER]
