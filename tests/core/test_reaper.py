"""reaper, one test per row of spec §2.2: what the postmaster does when each kind of child exits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgtop.core import Config
from pgtop.core.actions import Exit, SetQuitReason, Spawn
from pgtop.core.events import Tick
from pgtop.core.state import LOGICAL_REPLICATION_LAUNCHER
from pgtop.core.vocabulary import (
    ConnsAllowed,
    LogLevel,
    PidStatus,
    PMState,
    QuitReason,
    Shutdown,
    Sig,
    StartupStatus,
)
from tests.core.rules_helpers import (
    AUTOVAC_WORKER_BASE,
    BACKEND_BASE,
    BGWORKER_BASE,
    DEAD_END_BASE,
    EXIT_0,
    EXIT_1,
    HOT_STANDBY_SET,
    KILLED,
    PID,
    RECOVERY_SET,
    RUN_SET,
    STARTUP_SET,
    T0,
    WALSENDER_BASE,
    K,
    exit_line,
    exited,
    make_state,
    run,
    unknown_exit,
    worker,
)

TERMINATING = "terminating any other active server processes"
LRL = LOGICAL_REPLICATION_LAUNCHER
LRL_PID = BGWORKER_BASE + 1


def quits(*pids: int) -> set[tuple[int, Sig]]:
    return {(pid, Sig.QUIT) for pid in pids}


def busy_run_state(**fields):
    """PM_RUN with the usual children, one client, one walsender, one autovacuum worker,
    one dead_end, the logical replication launcher and the logger."""
    return make_state(
        PMState.RUN,
        RUN_SET + (K.SYSLOGGER,),
        backends=1,
        walsenders=1,
        av_workers=1,
        dead_ends=1,
        running_workers=(LRL,),
        last_pgstat_start_time=T0 - 3600,
        reached_normal_running=True,
        config=fields.pop("config", Config(logging_collector=True)),
        **fields,
    )


# Everyone in busy_run_state except the syslogger (never touched) and the dead_end
# (which HandleChildCrash does SIGQUIT).
BUSY_RUN_PIDS = (
    [PID[k] for k in RUN_SET]
    + [BACKEND_BASE + 1, WALSENDER_BASE + 1, AUTOVAC_WORKER_BASE + 1, LRL_PID, DEAD_END_BASE + 1]
)


def assert_first_crash(o, name: str, pid: int, code, signal, *, survivors,
                       pm_state: PMState = PMState.WAIT_BACKENDS) -> None:
    """The whole outcome of a first crash (spec §4.2)."""
    assert o.logs == [exit_line(name, pid, code, signal), TERMINATING]
    assert o.of_type(SetQuitReason) == [SetQuitReason(QuitReason.CRASH)]
    assert o.signal_set == quits(*survivors)
    assert len(o.signals) == len(survivors)
    assert o.spawns == []
    assert o.state.pm_state == pm_state
    assert o.state.fatal_error is True
    assert o.state.abort_start_time == T0
    assert pid not in o.state.children


# -- the startup process ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shutdown", "code", "status_before"),
    [
        (Shutdown.SMART, 0, StartupStatus.RUNNING),
        (Shutdown.SMART, 1, StartupStatus.RUNNING),
        (Shutdown.FAST, 1, StartupStatus.RUNNING),
        (Shutdown.IMMEDIATE, 0, StartupStatus.SIGNALED),
        (Shutdown.IMMEDIATE, 1, StartupStatus.SIGNALED),
    ],
)
def test_reaper_S1_startup_ends_because_of_a_shutdown(shutdown, code, status_before) -> None:
    # A shutdown requested during recovery: T3 sent SIGTERM; the bgwriter is still exiting.
    state = make_state(
        PMState.WAIT_BACKENDS, RECOVERY_SET, shutdown=shutdown, startup_status=status_before
    )
    o = run(state, exited(PID[K.STARTUP], code))
    assert o.state.startup_status is StartupStatus.NOT_RUNNING
    assert o.state.pm_state == PMState.WAIT_BACKENDS
    assert PID[K.STARTUP] not in o.state.children
    assert o.state.shutdown == shutdown
    assert (o.logs, o.spawns, o.signals, o.pid_statuses) == ([], [], [], [])
    assert o.state.fatal_error is False


@pytest.mark.parametrize(
    ("pm_state", "shutdown_before", "shutdown_after"),
    [
        (PMState.HOT_STANDBY, Shutdown.NO, Shutdown.SMART),
        (PMState.RECOVERY, Shutdown.NO, Shutdown.SMART),
        (PMState.WAIT_BACKENDS, Shutdown.FAST, Shutdown.FAST),
    ],
)
def test_reaper_S2_exit_3_is_shutdown_at_recovery_target(pm_state, shutdown_before, shutdown_after) -> None:
    state = make_state(
        pm_state,
        HOT_STANDBY_SET + (K.WALRECEIVER, K.ARCHIVER, K.SYSLOGGER),
        backends=1,
        walsenders=1,
        dead_ends=1,
        shutdown=shutdown_before,
        config=Config(archive_mode="always", logging_collector=True),
    )
    o = run(state, exited(PID[K.STARTUP], 3))
    assert o.logs == ["shutdown at recovery target"]
    assert o.state.startup_status is StartupStatus.NOT_RUNNING
    assert o.state.shutdown == shutdown_after
    # TerminateChildren(SIGTERM): everyone but the syslogger and the dead_end.
    terminated = [PID[k] for k in (K.BGWRITER, K.CHECKPOINTER, K.WALRECEIVER, K.ARCHIVER, K.STATS)]
    terminated += [BACKEND_BASE + 1, WALSENDER_BASE + 1]
    assert o.signal_set == {(pid, Sig.TERM) for pid in terminated}
    assert len(o.signals) == len(terminated)
    assert o.state.pm_state == PMState.WAIT_BACKENDS  # the client is still there
    # Not a pmdie: no "stopping" in postmaster.pid and no "received ... request".
    assert o.pid_statuses == []
    assert o.spawns == []


@pytest.mark.parametrize(("code", "signal"), [(1, None), (2, None), (None, 11), (None, 9)])
def test_reaper_S3_startup_failure_in_pm_startup_exits_at_once(code, signal) -> None:
    state = make_state(
        PMState.STARTUP, STARTUP_SET + (K.SYSLOGGER,), dead_ends=1,
        config=Config(logging_collector=True),
    )
    o = run(state, exited(PID[K.STARTUP], code, signal))
    assert o.logs == [
        exit_line("startup process", PID[K.STARTUP], code, signal),
        "aborting startup due to startup process failure",
    ]
    assert o.of_type(Exit) == [Exit(1)]
    assert o.state.exit_code == 1
    # Other children are not waited for, nor signalled.
    assert (o.signals, o.spawns, o.pid_statuses) == ([], [], [])


@pytest.mark.parametrize("pm_state", [PMState.RECOVERY, PMState.HOT_STANDBY])
@pytest.mark.parametrize(("code", "signal"), [EXIT_1, KILLED])
def test_reaper_S4_startup_failure_after_pm_startup_is_a_crash_without_restart(pm_state, code, signal) -> None:
    specials = (RECOVERY_SET if pm_state == PMState.RECOVERY else HOT_STANDBY_SET) + (K.WALRECEIVER, K.SYSLOGGER)
    state = make_state(pm_state, specials, config=Config(logging_collector=True))
    o = run(state, exited(PID[K.STARTUP], code, signal))
    survivors = [PID[k] for k in specials if k not in (K.STARTUP, K.SYSLOGGER)]
    assert_first_crash(o, "startup process", PID[K.STARTUP], code, signal, survivors=survivors)
    assert o.state.startup_status is StartupStatus.CRASHED


def test_reaper_S4_crashed_startup_ends_with_startup_process_failure() -> None:
    state = make_state(PMState.RECOVERY, RECOVERY_SET)
    o = run(state, exited(PID[K.STARTUP], 1))
    # The others die of the SIGQUIT, then the postmaster gives up instead of restarting.
    o2 = run(o.state, exited(PID[K.BGWRITER], 2))
    o3 = run(o2.state, exited(PID[K.CHECKPOINTER], 2))
    assert o2.logs == []
    assert o3.logs == ["shutting down due to startup process failure"]
    assert o3.of_type(Exit) == [Exit(1)]
    assert K.STARTUP not in o3.spawns


def test_reaper_S4_signaled_startup_in_pm_startup_is_restarted_by_the_crash_cycle() -> None:
    # A dead_end crashed during crash recovery: HandleChildCrash SIGQUIT'd the startup process.
    state = make_state(
        PMState.STARTUP, STARTUP_SET, dead_ends=1, fatal_error=True,
        startup_status=StartupStatus.SIGNALED, abort_start_time=T0 - 1,
    )
    o = run(state, exited(PID[K.STARTUP], 2))
    assert o.state.startup_status is StartupStatus.NOT_RUNNING
    assert o.logs == []  # not the first crash: bookkeeping only
    assert o.signals == []
    # WAIT_BACKENDS, then (nothing left but the dead_end) WAIT_DEAD_END.
    assert o.state.pm_state == PMState.WAIT_DEAD_END
    assert o.state.exit_code is None
    o2 = run(o.state, exited(DEAD_END_BASE + 1, 1))
    assert o2.logs == ["all server processes terminated; reinitializing"]
    assert o2.spawns == [K.STARTUP]
    assert o2.state.pm_state == PMState.STARTUP


def test_reaper_S4_signaled_startup_outside_pm_startup_keeps_pm_state() -> None:
    # A crash during recovery already moved the postmaster to WAIT_BACKENDS.
    state = make_state(
        PMState.WAIT_BACKENDS, RECOVERY_SET, fatal_error=True,
        startup_status=StartupStatus.SIGNALED, abort_start_time=T0 - 1,
    )
    o = run(state, exited(PID[K.STARTUP], 2))
    assert o.state.startup_status is StartupStatus.NOT_RUNNING
    assert o.state.pm_state == PMState.WAIT_BACKENDS
    assert (o.logs, o.signals, o.spawns) == ([], [], [])


def test_reaper_S5_recovery_finished_from_pm_startup() -> None:
    state = make_state(PMState.STARTUP, STARTUP_SET, idle_workers=(LRL,))
    o = run(state, exited(PID[K.STARTUP], 0))
    s = o.state
    assert s.pm_state == PMState.RUN
    assert s.startup_status is StartupStatus.NOT_RUNNING
    assert (s.fatal_error, s.abort_start_time, s.reached_normal_running) == (False, 0.0, True)
    assert s.conns_allowed is ConnsAllowed.ALL
    assert o.spawns == [K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER, K.STATS, K.BGWORKER]
    assert o.spawn_actions[-1].bgworker == "logical replication launcher"
    assert o.logs == ["database system is ready to accept connections"]
    assert o.pid_statuses == [PidStatus.READY]
    # Children first, then the log line, then the status.
    kinds = [type(a).__name__ for a in o.actions if type(a).__name__ != "Log" or a.level >= LogLevel.LOG]
    assert kinds == ["Spawn"] * 6 + ["Log", "WritePidStatus"]


def test_reaper_S5_after_crash_recovery_clears_fatal_error_and_stopwatch() -> None:
    state = make_state(
        PMState.STARTUP, STARTUP_SET, fatal_error=True, abort_start_time=T0 - 3,
        conns_allowed=ConnsAllowed.NONE,
    )
    o = run(state, exited(PID[K.STARTUP], 0))
    assert (o.state.pm_state, o.state.fatal_error, o.state.abort_start_time) == (PMState.RUN, False, 0.0)
    assert o.state.conns_allowed is ConnsAllowed.ALL
    assert o.logs == ["database system is ready to accept connections"]


def test_reaper_S5_from_hot_standby_starts_only_what_is_missing() -> None:
    state = make_state(
        PMState.HOT_STANDBY, HOT_STANDBY_SET + (K.WALRECEIVER,), backends=1,
        last_pgstat_start_time=T0 - 600,
    )
    o = run(state, exited(PID[K.STARTUP], 0))
    assert o.spawns == [K.WALWRITER, K.AUTOVAC_LAUNCHER]
    assert o.state.pm_state == PMState.RUN
    assert o.pid_statuses == [PidStatus.READY]


@pytest.mark.parametrize(
    ("autovacuum", "track_counts", "launcher"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_reaper_S5_autovacuum_launcher_only_if_autovacuum_active(autovacuum, track_counts, launcher) -> None:
    config = Config(autovacuum=autovacuum, track_counts=track_counts)
    o = run(make_state(PMState.STARTUP, STARTUP_SET, config=config), exited(PID[K.STARTUP], 0))
    assert (K.AUTOVAC_LAUNCHER in o.spawns) is launcher


def test_reaper_S5_starts_the_archiver_when_allowed() -> None:
    state = make_state(PMState.STARTUP, STARTUP_SET, config=Config(archive_mode="on"))
    o = run(state, exited(PID[K.STARTUP], 0))
    assert o.spawns == [K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER, K.ARCHIVER, K.STATS]
    assert o.state.last_pgarch_start_time == T0


def test_reaper_S5_consumes_the_archiver_throttle_even_if_the_archiver_runs() -> None:
    # archive_mode=always: the archiver already runs on the standby when it is promoted.
    state = make_state(
        PMState.HOT_STANDBY, HOT_STANDBY_SET + (K.ARCHIVER,),
        config=Config(archive_mode="always"), last_pgarch_start_time=T0 - 60,
    )
    o = run(state, exited(PID[K.STARTUP], 0))
    assert K.ARCHIVER not in o.spawns
    assert o.state.last_pgarch_start_time == T0  # PgArchStartupAllowed() ran and approved
    # So an archiver that dies 5 s later is not restarted at once.
    o2 = run(o.state, exited(PID[K.ARCHIVER], 0), now=T0 + 5)
    assert o2.spawns == []
    o3 = run(o2.state, Tick(), now=T0 + 10)
    assert o3.spawns == [K.ARCHIVER]


# -- bgwriter, walwriter, autovacuum launcher: exit 0 benign, anything else a crash ------

AUX_NAMES = {
    K.BGWRITER: "background writer process",
    K.WALWRITER: "WAL writer process",
    K.AUTOVAC_LAUNCHER: "autovacuum launcher process",
    K.CHECKPOINTER: "checkpointer process",
}


@pytest.mark.parametrize("kind", [K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER])
def test_reaper_aux_exit_0_clears_pid_and_server_loop_restarts_it(kind) -> None:
    state = busy_run_state()
    o = run(state, exited(PID[kind], 0))
    assert o.spawns == [kind]
    assert (o.logs, o.signals) == ([], [])
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)


@pytest.mark.parametrize("kind", [K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER, K.CHECKPOINTER])
@pytest.mark.parametrize(("code", "signal"), [EXIT_1, KILLED])
def test_reaper_aux_exit_1_or_signal_is_a_crash(kind, code, signal) -> None:
    o = run(busy_run_state(), exited(PID[kind], code, signal))
    survivors = [p for p in BUSY_RUN_PIDS if p != PID[kind]]
    assert_first_crash(o, AUX_NAMES[kind], PID[kind], code, signal, survivors=survivors)


# -- checkpointer ---------------------------------------------------------------------------


def shutdown_state(pm_state=PMState.SHUTDOWN, **fields):
    return make_state(
        pm_state,
        (K.CHECKPOINTER, K.ARCHIVER, K.STATS, K.SYSLOGGER),
        walsenders=2,
        dead_ends=1,
        shutdown=Shutdown.FAST,
        config=Config(archive_mode="on", logging_collector=True),
        **fields,
    )


def test_reaper_checkpointer_exit_0_in_shutdown_goes_to_shutdown_2() -> None:
    o = run(shutdown_state(), exited(PID[K.CHECKPOINTER], 0))
    assert o.signals[0] == (PID[K.ARCHIVER], Sig.USR2)  # the archiver's last cycle
    assert set(o.signals[1:3]) == {(WALSENDER_BASE + 1, Sig.USR2), (WALSENDER_BASE + 2, Sig.USR2)}
    assert o.signals[3:] == [(PID[K.STATS], Sig.QUIT)]  # (14) nothing left for it to do
    assert o.state.pm_state == PMState.SHUTDOWN_2  # the archiver and walsenders still run
    assert (o.logs, o.spawns) == ([], [])
    assert o.state.fatal_error is False


def test_reaper_checkpointer_exit_0_in_run_is_a_crash() -> None:
    o = run(busy_run_state(), exited(PID[K.CHECKPOINTER], 0))
    survivors = [p for p in BUSY_RUN_PIDS if p != PID[K.CHECKPOINTER]]
    assert_first_crash(o, "checkpointer process", PID[K.CHECKPOINTER], 0, None, survivors=survivors)


def test_reaper_checkpointer_exit_0_before_the_shutdown_checkpoint_is_a_crash() -> None:
    # Fast shutdown, still waiting for a backend: the checkpointer was not asked to stop.
    state = replace(shutdown_state(PMState.WAIT_BACKENDS), children={
        **shutdown_state().children, BACKEND_BASE + 1: busy_run_state().children[BACKEND_BASE + 1],
    })
    o = run(state, exited(PID[K.CHECKPOINTER], 0))
    survivors = [PID[K.ARCHIVER], PID[K.STATS], WALSENDER_BASE + 1, WALSENDER_BASE + 2,
                 DEAD_END_BASE + 1, BACKEND_BASE + 1]
    assert_first_crash(o, "checkpointer process", PID[K.CHECKPOINTER], 0, None, survivors=survivors)


@pytest.mark.parametrize(("code", "signal"), [EXIT_1, KILLED])
def test_reaper_checkpointer_failure_in_shutdown_is_a_crash(code, signal) -> None:
    o = run(shutdown_state(), exited(PID[K.CHECKPOINTER], code, signal))
    survivors = [PID[K.ARCHIVER], PID[K.STATS], WALSENDER_BASE + 1, WALSENDER_BASE + 2, DEAD_END_BASE + 1]
    # SHUTDOWN -> WAIT_BACKENDS (§4.2 step 10); with only walsenders, archiver, stats and
    # a dead_end left, T4a moves on to WAIT_DEAD_END in the same reaper call.
    assert_first_crash(o, "checkpointer process", PID[K.CHECKPOINTER], code, signal,
                       survivors=survivors, pm_state=PMState.WAIT_DEAD_END)


# -- walreceiver ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1])
def test_reaper_walreceiver_exit_0_or_1_is_not_restarted_until_requested(code) -> None:
    state = make_state(PMState.RECOVERY, RECOVERY_SET + (K.WALRECEIVER,))
    o = run(state, exited(PID[K.WALRECEIVER], code))
    assert (o.logs, o.spawns, o.signals) == ([], [], [])
    assert o.state.pm_state == PMState.RECOVERY
    assert o.state.walreceiver_requested is False
    assert run(o.state, Tick(), now=T0 + 120).spawns == []


def test_reaper_walreceiver_killed_is_a_crash() -> None:
    state = make_state(PMState.RECOVERY, RECOVERY_SET + (K.WALRECEIVER,))
    o = run(state, exited(PID[K.WALRECEIVER], None, 9))
    survivors = [PID[k] for k in RECOVERY_SET]
    assert_first_crash(o, "WAL receiver process", PID[K.WALRECEIVER], None, 9, survivors=survivors)


# -- archiver ------------------------------------------------------------------------------


def archiving_run_state(last_start: float, **fields):
    return make_state(
        PMState.RUN, RUN_SET + (K.ARCHIVER,), config=Config(archive_mode="on"),
        last_pgarch_start_time=last_start, **fields,
    )


@pytest.mark.parametrize("code", [0, 1])
def test_reaper_archiver_exit_0_or_1_is_restarted_at_once_when_allowed(code) -> None:
    o = run(archiving_run_state(T0 - 60), exited(PID[K.ARCHIVER], code))
    assert o.spawns == [K.ARCHIVER]
    assert (o.logs, o.signals) == ([], [])
    assert o.state.last_pgarch_start_time == T0
    assert o.state.fatal_error is False


def test_reaper_archiver_restart_is_throttled_to_one_per_10_s() -> None:
    o = run(archiving_run_state(T0 - 5), exited(PID[K.ARCHIVER], 0))
    assert o.spawns == []
    assert run(o.state, Tick(), now=T0 + 4.999).spawns == []
    assert run(o.state, Tick(), now=T0 + 5).spawns == [K.ARCHIVER]


@pytest.mark.parametrize(("code", "signal"), [(2, None), KILLED])
def test_reaper_archiver_crash_restarts_everything_but_not_the_archiver(code, signal) -> None:
    o = run(archiving_run_state(T0 - 60), exited(PID[K.ARCHIVER], code, signal))
    assert_first_crash(o, "archiver process", PID[K.ARCHIVER], code, signal,
                       survivors=[PID[k] for k in RUN_SET])
    assert o.state.last_pgarch_start_time == T0 - 60  # not even considered in WAIT_BACKENDS


def test_reaper_archiver_not_restarted_in_recovery_with_archive_mode_on() -> None:
    state = make_state(
        PMState.RECOVERY, RECOVERY_SET + (K.ARCHIVER,), config=Config(archive_mode="on"),
    )
    o = run(state, exited(PID[K.ARCHIVER], 0))
    assert o.spawns == []


# -- stats collector (14) ------------------------------------------------------------------


@pytest.mark.parametrize("pm_state", [PMState.RUN, PMState.HOT_STANDBY])
def test_reaper_stats_exit_0_is_restarted_in_run_and_hot_standby(pm_state) -> None:
    specials = RUN_SET if pm_state == PMState.RUN else HOT_STANDBY_SET
    state = make_state(pm_state, specials, last_pgstat_start_time=T0 - 600)
    o = run(state, exited(PID[K.STATS], 0))
    assert o.spawns == [K.STATS]
    assert (o.logs, o.signals) == ([], [])


@pytest.mark.parametrize(("code", "signal"), [EXIT_1, KILLED, (2, None)])
def test_reaper_stats_bad_exit_is_logged_but_never_a_crash(code, signal) -> None:
    state = make_state(PMState.RUN, RUN_SET, backends=1, last_pgstat_start_time=T0 - 600)
    o = run(state, exited(PID[K.STATS], code, signal))
    assert o.logs == [exit_line("statistics collector process", PID[K.STATS], code, signal)]
    assert o.signals == []
    assert o.spawns == [K.STATS]
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)


def test_reaper_stats_restart_is_throttled_to_one_per_60_s() -> None:
    state = make_state(PMState.RUN, RUN_SET, last_pgstat_start_time=T0 - 30)
    o = run(state, exited(PID[K.STATS], 1))
    assert o.spawns == []
    assert run(o.state, Tick(), now=T0 + 29.999).spawns == []
    assert run(o.state, Tick(), now=T0 + 30).spawns == [K.STATS]


@pytest.mark.parametrize("pm_state", [PMState.WAIT_BACKENDS, PMState.SHUTDOWN_2])
def test_reaper_stats_not_restarted_outside_run_and_hot_standby(pm_state) -> None:
    state = make_state(
        pm_state, (K.STATS, K.ARCHIVER, K.BGWRITER), shutdown=Shutdown.FAST,
        config=Config(archive_mode="on"),
    )
    o = run(state, exited(PID[K.STATS], 0))
    assert o.spawns == []
    assert o.state.pm_state == pm_state


# -- syslogger -------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "signal"), [EXIT_0, EXIT_1, KILLED])
def test_reaper_syslogger_is_restarted_first_then_logged_never_a_crash(code, signal) -> None:
    o = run(busy_run_state(), exited(PID[K.SYSLOGGER], code, signal))
    assert o.spawns == [K.SYSLOGGER]
    expected_logs = [] if code == 0 else [exit_line("system logger process", PID[K.SYSLOGGER], code, signal)]
    assert o.logs == expected_logs
    if expected_logs:
        spawn_at = next(i for i, a in enumerate(o.actions) if isinstance(a, Spawn))
        log_at = next(i for i, a in enumerate(o.actions) if a in o.log_records)
        assert spawn_at < log_at  # "launch new logger *first*"
    assert o.signals == []
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)


# -- background workers ----------------------------------------------------------------------


def test_reaper_bgworker_exit_0_is_terminated_and_never_restarted() -> None:
    o = run(busy_run_state(), exited(LRL_PID, 0))
    assert o.logs == []
    assert o.logs_at(LogLevel.DEBUG1)[:1] == [
        exit_line('background worker "logical replication launcher"', LRL_PID, 0)
    ]
    assert o.spawns == []
    assert o.state.bgworkers == ()  # forgotten at the scan that follows
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)
    assert run(o.state, Tick(), now=T0 + 3600).spawns == []


def test_reaper_bgworker_exit_1_is_restarted_after_bgw_restart_time() -> None:
    o = run(busy_run_state(), exited(LRL_PID, 1))
    assert o.logs == [exit_line('background worker "logical replication launcher"', LRL_PID, 1)]
    assert (o.spawns, o.signals) == ([], [])
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)
    assert o.state.have_crashed_worker is True
    (lrl,) = o.state.bgworkers
    assert (lrl.child_id, lrl.crashed_at) == (None, T0)
    assert run(o.state, Tick(), now=T0 + 4.999).spawns == []
    later = run(o.state, Tick(), now=T0 + 5)
    assert later.spawns == [K.BGWORKER]
    assert later.spawn_actions[0].bgworker == "logical replication launcher"


@pytest.mark.parametrize(("code", "signal"), [(2, None), KILLED])
def test_reaper_bgworker_other_exit_with_shmem_access_is_a_crash(code, signal) -> None:
    o = run(busy_run_state(), exited(LRL_PID, code, signal))
    survivors = [p for p in BUSY_RUN_PIDS if p != LRL_PID]
    assert_first_crash(o, 'background worker "logical replication launcher"', LRL_PID, code, signal,
                       survivors=survivors)
    (lrl,) = o.state.bgworkers
    assert (lrl.child_id, lrl.crashed_at) == (None, T0)  # crash time kept for the restart


def test_reaper_bgworker_signal_without_shmem_access_is_like_exit_1() -> None:
    plain = worker("plain worker", shmem_access=False, restart_time=10)
    state = make_state(PMState.RUN, RUN_SET, running_workers=(plain,))
    o = run(state, exited(BGWORKER_BASE + 1, None, 9))
    assert o.logs == [exit_line('background worker "plain worker"', BGWORKER_BASE + 1, None, 9)]
    assert (o.state.pm_state, o.state.fatal_error, o.signals) == (PMState.RUN, False, [])
    assert run(o.state, Tick(), now=T0 + 10).spawns == [K.BGWORKER]


@pytest.mark.parametrize("code", [0, 1])
def test_reaper_bgworker_unreleased_slot_with_shmem_access_is_a_crash(code) -> None:
    o = run(busy_run_state(), exited(LRL_PID, code, slot_released=False))
    survivors = [p for p in BUSY_RUN_PIDS if p != LRL_PID]
    assert_first_crash(o, 'background worker "logical replication launcher"', LRL_PID, code, None,
                       survivors=survivors)


def test_reaper_bgworker_unreleased_slot_without_shmem_access_is_not_a_crash() -> None:
    plain = worker("plain worker", shmem_access=False)
    state = make_state(PMState.RUN, RUN_SET, running_workers=(plain,))
    o = run(state, exited(BGWORKER_BASE + 1, 1, slot_released=False))
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)
    assert o.logs == [exit_line('background worker "plain worker"', BGWORKER_BASE + 1, 1)]


# -- client backends, walsenders, autovacuum workers, dead_ends (CleanupBackend) --------------

BACKEND_PIDS = {
    "backend": BACKEND_BASE + 1,
    "walsender": WALSENDER_BASE + 1,
    "autovacuum worker": AUTOVAC_WORKER_BASE + 1,
    "dead_end": DEAD_END_BASE + 1,
}


@pytest.mark.parametrize("who", list(BACKEND_PIDS))
@pytest.mark.parametrize("code", [0, 1])
def test_reaper_backend_exit_0_or_1_is_normal(who, code) -> None:
    pid = BACKEND_PIDS[who]
    o = run(busy_run_state(), exited(pid, code))
    assert pid not in o.state.children
    assert (o.logs, o.signals, o.spawns) == ([], [], [])
    assert o.logs_at(LogLevel.DEBUG2) == [exit_line("server process", pid, code)]
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)


@pytest.mark.parametrize("who", list(BACKEND_PIDS))
@pytest.mark.parametrize(("code", "signal"), [(2, None), KILLED, (None, 11)])
def test_reaper_backend_other_exit_is_a_crash(who, code, signal) -> None:
    pid = BACKEND_PIDS[who]
    o = run(busy_run_state(), exited(pid, code, signal))
    survivors = [p for p in BUSY_RUN_PIDS if p != pid]
    assert_first_crash(o, "server process", pid, code, signal, survivors=survivors)


def test_reaper_backend_crash_names_the_failed_query() -> None:
    o = run(busy_run_state(), exited(BACKEND_BASE + 1, None, 9, query="select pg_sleep(30)"))
    first = o.log_records[0]
    assert first.message == "server process (PID 201) was terminated by signal 9: Killed"
    assert first.detail == "Failed process was running: select pg_sleep(30)"


@pytest.mark.parametrize("who", ["backend", "walsender", "autovacuum worker"])
@pytest.mark.parametrize("code", [0, 1])
def test_reaper_dead_man_switch_unreleased_slot_is_a_crash(who, code) -> None:
    pid = BACKEND_PIDS[who]
    o = run(busy_run_state(), exited(pid, code, slot_released=False))
    survivors = [p for p in BUSY_RUN_PIDS if p != pid]
    assert_first_crash(o, "server process", pid, code, None, survivors=survivors)


def test_reaper_dead_man_switch_ignores_dead_ends_which_hold_no_slot() -> None:
    o = run(busy_run_state(), exited(DEAD_END_BASE + 1, 1, slot_released=False))
    assert (o.logs, o.signals) == ([], [])
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)


# -- a PID that matches nothing ---------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1])
def test_reaper_unknown_pid_exit_0_or_1_is_dropped_silently(code) -> None:
    state = busy_run_state()
    o = run(state, unknown_exit(9999, code))
    assert o.logs == []
    assert o.state == state


@pytest.mark.parametrize(("code", "signal"), [(2, None), KILLED])
def test_reaper_unknown_pid_other_exit_is_a_server_process_crash(code, signal) -> None:
    o = run(busy_run_state(), unknown_exit(9999, code, signal))
    assert_first_crash(o, "server process", 9999, code, signal, survivors=BUSY_RUN_PIDS)


def test_reaper_checks_the_pid_not_only_the_child_id() -> None:
    # The runtime may report a child by PID alone (child_id None): it is still recognised.
    state = busy_run_state()
    o = run(state, unknown_exit(PID[K.BGWRITER], 0))
    assert o.spawns == [K.BGWRITER]
    assert o.logs == []


def test_reaper_handles_every_exit_of_a_batch_then_runs_the_state_machine_once() -> None:
    # Crash cycle: the last two children die in the same wakeup; only then is
    # everything gone, so the cycle restarts in the same reaper call.
    state = make_state(
        PMState.WAIT_BACKENDS, (K.CHECKPOINTER, K.STATS), fatal_error=True,
        abort_start_time=T0 - 1,
    )
    from pgtop.core.events import ChildExit, ChildrenExited
    from pgtop.core.vocabulary import ExitStatus

    batch = ChildrenExited((
        ChildExit(PID[K.CHECKPOINTER], PID[K.CHECKPOINTER], ExitStatus.exited(2)),
        ChildExit(PID[K.STATS], PID[K.STATS], ExitStatus.exited(0)),
    ))
    o = run(state, batch)
    assert o.logs == ["all server processes terminated; reinitializing"]
    assert o.spawns == [K.STARTUP]
    assert o.state.pm_state == PMState.STARTUP
    assert o.state.fatal_error is True  # stays until RECOVERY_STARTED or startup exit 0
