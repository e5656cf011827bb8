"""The postmaster's signal handlers: SIGHUP (spec §3.1), pmdie (§3.2) and sigusr1 (§3.3)."""

from __future__ import annotations

import pytest

from pgtop.core import Config
from pgtop.core.actions import (
    ReadConfigFile,
    ReloadHba,
    RemoveDataFile,
    ReportAutovacWorkerFailed,
    SetQuitReason,
    SignalChild,
)
from pgtop.core.events import (
    ConfigFileRead,
    ForkFailed,
    PMSignalRaised,
    SignalReceived,
    Tick,
)
from pgtop.core.state import LOGICAL_REPLICATION_LAUNCHER
from pgtop.core.vocabulary import (
    BgWorkerStartTime,
    ConnsAllowed,
    PidStatus,
    PMSignalReason,
    PMState,
    QuitReason,
    Shutdown,
    Sig,
    StartupStatus,
)
from tests.core.rules_helpers import (
    answered,
    ALL_SPECIALS,
    AUTOVAC_WORKER_BASE,
    BACKEND_BASE,
    BGWORKER_BASE,
    DEAD_END_BASE,
    FIRST_NEW_ID,
    HOT_STANDBY_SET,
    PID,
    RECOVERY_SET,
    RUN_SET,
    STARTUP_SET,
    T0,
    WALSENDER_BASE,
    K,
    make_state,
    run,
    worker,
)

R = PMSignalReason
LRL = LOGICAL_REPLICATION_LAUNCHER
COLLECTOR = Config(logging_collector=True)


def everyone(pm_state=PMState.RUN, **fields):
    fields.setdefault("config", COLLECTOR)
    return make_state(pm_state, ALL_SPECIALS, backends=1, walsenders=1, av_workers=1, dead_ends=1,
                      running_workers=(LRL,), startup_status=StartupStatus.RUNNING, **fields)


def usr1(*reasons: PMSignalReason, **extra) -> PMSignalRaised:
    return PMSignalRaised(frozenset(reasons), **extra)


NON_DEAD_END_BACKENDS = [BACKEND_BASE + 1, WALSENDER_BASE + 1, AUTOVAC_WORKER_BASE + 1, BGWORKER_BASE + 1]


# -- §3.1 SIGHUP -----------------------------------------------------------------------------


@pytest.mark.parametrize("shutdown", [Shutdown.FAST, Shutdown.IMMEDIATE])
def test_sighup_ignored_silently_after_a_fast_or_immediate_shutdown(shutdown) -> None:
    state = everyone(pm_state=PMState.WAIT_BACKENDS, shutdown=shutdown, abort_start_time=T0)
    o = run(state, SignalReceived(Sig.HUP))
    assert o.actions == []
    assert o.state == state


@pytest.mark.parametrize(("pm_state", "shutdown"), [(PMState.RUN, Shutdown.NO), (PMState.RUN, Shutdown.SMART)])
def test_sighup_logs_and_rereads_the_configuration(pm_state, shutdown) -> None:
    o = run(everyone(pm_state=pm_state, shutdown=shutdown), SignalReceived(Sig.HUP))
    assert o.logs == ["received SIGHUP, reloading configuration files"]
    assert o.others == [ReadConfigFile()]
    assert o.signals == []  # the children hear about it once the file is read


def test_sighup_signals_every_child_but_dead_ends_then_reloads_hba() -> None:
    o = run(everyone(), ConfigFileRead("postgresql.conf", {}))
    specials = [PID[k] for k in (K.STARTUP, K.BGWRITER, K.CHECKPOINTER, K.WALWRITER, K.WALRECEIVER,
                                 K.AUTOVAC_LAUNCHER, K.ARCHIVER, K.SYSLOGGER, K.STATS)]
    n = len(NON_DEAD_END_BACKENDS)
    assert {pid for pid, _ in o.signals[:n]} == set(NON_DEAD_END_BACKENDS)
    assert o.signals[n:] == [(pid, Sig.HUP) for pid in specials]
    assert {sig for _, sig in o.signals} == {Sig.HUP}
    assert (DEAD_END_BASE + 1, Sig.HUP) not in o.signal_set
    assert o.others == [ReloadHba()]
    assert isinstance(o.actions[-1], ReloadHba)  # after the signals


def test_sighup_applies_the_new_configuration_and_logs_each_change_first() -> None:
    state = everyone(config=Config())
    o = run(state, ConfigFileRead("postgresql.conf", {"checkpoint_timeout": ("10min", 3)}))
    assert o.state.config.checkpoint_timeout == 600
    assert o.logs == ['parameter "checkpoint_timeout" changed to "10min"']
    first_signal = next(i for i, a in enumerate(o.actions) if isinstance(a, SignalChild))
    assert o.actions.index(o.log_records[0]) < first_signal


def test_sighup_applied_setting_takes_effect_in_the_same_loop() -> None:
    # autovacuum=off on reload: the launcher is not restarted after it exits.
    o = run(make_state(PMState.RUN, RUN_SET), ConfigFileRead("postgresql.conf", {"autovacuum": ("off", 1)}))
    assert o.state.config.autovacuum is False
    from tests.core.rules_helpers import exited

    assert run(o.state, exited(PID[K.AUTOVAC_LAUNCHER], 0)).spawns == []


# -- §3.2 pmdie -------------------------------------------------------------------------------

STATE_CHILDREN = {
    PMState.INIT: (),
    PMState.STARTUP: STARTUP_SET,
    PMState.RECOVERY: RECOVERY_SET + (K.WALRECEIVER,),
    PMState.HOT_STANDBY: HOT_STANDBY_SET + (K.WALRECEIVER,),
    PMState.RUN: RUN_SET,
    PMState.WAIT_BACKENDS: (K.CHECKPOINTER, K.BGWRITER),
    PMState.SHUTDOWN: (K.CHECKPOINTER,),
    PMState.SHUTDOWN_2: (K.ARCHIVER,),
    PMState.WAIT_DEAD_END: (),
}


def resting(pm_state: PMState, **fields):
    """A plausible postmaster in pm_state, with a client where clients can be."""
    clients = 1 if pm_state in (PMState.RUN, PMState.HOT_STANDBY) else 0
    return make_state(pm_state, STATE_CHILDREN[pm_state], backends=clients, dead_ends=1,
                      config=Config(archive_mode="on"), **fields)


# Later states are reached only with a shutdown or a crash in progress: test them mid-crash.
CRASH_STATES = (PMState.WAIT_BACKENDS, PMState.SHUTDOWN, PMState.SHUTDOWN_2, PMState.WAIT_DEAD_END)


def crash_cycle(pm_state: PMState):
    return resting(pm_state, fatal_error=True, abort_start_time=T0 - 1)


def test_pmdie_smart_in_run_allows_superusers_then_no_one() -> None:
    o = run(resting(PMState.RUN), SignalReceived(Sig.TERM))
    assert o.logs == ["received smart shutdown request"]
    assert o.pid_statuses == [PidStatus.STOPPING]
    assert o.state.shutdown == Shutdown.SMART
    # ALLOW_SUPERUSER_CONNS, then T1 at once (no exclusive backup): ALLOW_NO_CONNS.
    assert o.state.conns_allowed is ConnsAllowed.NONE
    assert o.state.pm_state == PMState.RUN  # a client is still connected
    assert o.signals == []


def test_pmdie_smart_in_run_keeps_superusers_in_during_an_exclusive_backup() -> None:
    o = run(resting(PMState.RUN, exclusive_backup=True), SignalReceived(Sig.TERM))
    assert o.state.conns_allowed is ConnsAllowed.SUPERUSER


def test_pmdie_smart_in_hot_standby_allows_no_connections() -> None:
    o = run(resting(PMState.HOT_STANDBY), SignalReceived(Sig.TERM))
    assert o.logs == ["received smart shutdown request"]
    assert o.pid_statuses == [PidStatus.STOPPING]
    assert o.state.conns_allowed is ConnsAllowed.NONE
    assert o.state.pm_state == PMState.HOT_STANDBY
    assert o.signals == []


@pytest.mark.parametrize(("sig", "name"), [(Sig.TERM, "smart"), (Sig.INT, "fast")])
@pytest.mark.parametrize("pm_state", [PMState.STARTUP, PMState.RECOVERY])
def test_pmdie_smart_or_fast_in_startup_or_recovery_stops_backends_silently(sig, name, pm_state) -> None:
    o = run(resting(pm_state), SignalReceived(sig))
    assert o.logs == [f"received {name} shutdown request"]  # no "aborting any active transactions"
    assert o.pid_statuses == [PidStatus.STOPPING]
    # STOP_BACKENDS, then T3 sends the SIGTERMs: startup, walreceiver, bgwriter.
    terms = {K.STARTUP, K.BGWRITER, K.WALRECEIVER} & set(STATE_CHILDREN[pm_state])
    assert o.signal_set == {(PID[k], Sig.TERM) for k in terms}
    assert o.state.pm_state == PMState.WAIT_BACKENDS


@pytest.mark.parametrize("pm_state", [PMState.RUN, PMState.HOT_STANDBY])
def test_pmdie_fast_in_run_or_hot_standby_aborts_active_transactions(pm_state) -> None:
    o = run(resting(pm_state), SignalReceived(Sig.INT))
    assert o.logs == ["received fast shutdown request", "aborting any active transactions"]
    assert o.pid_statuses == [PidStatus.STOPPING]
    terms = {K.STARTUP, K.BGWRITER, K.WALWRITER, K.AUTOVAC_LAUNCHER, K.WALRECEIVER} & set(STATE_CHILDREN[pm_state])
    assert o.signal_set == {(PID[k], Sig.TERM) for k in terms} | {(BACKEND_BASE + 1, Sig.TERM)}
    assert o.state.pm_state == PMState.WAIT_BACKENDS


def test_pmdie_fast_covers_a_smart_shutdown_still_waiting_in_run() -> None:
    state = resting(PMState.RUN, shutdown=Shutdown.SMART, conns_allowed=ConnsAllowed.NONE)
    o = run(state, SignalReceived(Sig.INT))
    assert o.logs == ["received fast shutdown request", "aborting any active transactions"]
    assert o.state.pm_state == PMState.WAIT_BACKENDS
    assert (BACKEND_BASE + 1, Sig.TERM) in o.signal_set


@pytest.mark.parametrize(("sig", "name"), [(Sig.TERM, "smart"), (Sig.INT, "fast")])
@pytest.mark.parametrize("pm_state", CRASH_STATES)
def test_pmdie_smart_or_fast_during_a_crash_cycle_only_changes_shutdown(sig, name, pm_state) -> None:
    state = crash_cycle(pm_state)
    o = run(state, SignalReceived(sig))
    assert o.logs == [f"received {name} shutdown request"]
    assert o.pid_statuses == [PidStatus.STOPPING]
    assert o.state.pm_state == pm_state
    assert o.signals == []
    assert o.state.shutdown == (Shutdown.SMART if sig == Sig.TERM else Shutdown.FAST)


@pytest.mark.parametrize(("sig", "name"), [(Sig.TERM, "smart"), (Sig.INT, "fast")])
def test_pmdie_smart_or_fast_in_init_only_changes_shutdown(sig, name) -> None:
    o = run(resting(PMState.INIT), SignalReceived(sig))
    assert o.logs == [f"received {name} shutdown request"]
    assert o.state.pm_state == PMState.INIT


@pytest.mark.parametrize("pm_state", [PMState.INIT, PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY,
                                      PMState.RUN, *CRASH_STATES])
def test_pmdie_immediate_from_any_state(pm_state) -> None:
    state = everyone(pm_state=pm_state, fatal_error=pm_state in CRASH_STATES)
    o = run(state, SignalReceived(Sig.QUIT))
    assert o.logs == ["received immediate shutdown request"]
    assert o.pid_statuses == [PidStatus.STOPPING]
    assert o.of_type(SetQuitReason) == [SetQuitReason(QuitReason.STOP)]
    # TerminateChildren(SIGQUIT): not the syslogger, not the dead_end.
    quit_pids = NON_DEAD_END_BACKENDS + [PID[k] for k in ALL_SPECIALS if k is not K.SYSLOGGER]
    assert o.signal_set == {(pid, Sig.QUIT) for pid in quit_pids}
    assert len(o.signals) == len(quit_pids)
    assert o.state.startup_status is StartupStatus.SIGNALED
    assert o.state.pm_state == PMState.WAIT_BACKENDS
    assert o.state.abort_start_time == T0
    assert o.state.shutdown == Shutdown.IMMEDIATE


@pytest.mark.parametrize(
    ("level", "sig"),
    [
        (Shutdown.SMART, Sig.TERM),
        (Shutdown.FAST, Sig.TERM),
        (Shutdown.FAST, Sig.INT),
        (Shutdown.IMMEDIATE, Sig.TERM),
        (Shutdown.IMMEDIATE, Sig.INT),
        (Shutdown.IMMEDIATE, Sig.QUIT),
    ],
)
def test_pmdie_weaker_or_repeated_request_is_ignored_silently(level, sig) -> None:
    pm_state = PMState.RUN if level == Shutdown.SMART else PMState.WAIT_BACKENDS
    state = everyone(pm_state=pm_state, shutdown=level,
                     conns_allowed=ConnsAllowed.NONE if level == Shutdown.SMART else ConnsAllowed.ALL,
                     abort_start_time=T0 - 1 if level == Shutdown.IMMEDIATE else 0.0)
    o = run(state, SignalReceived(sig), now=T0)
    assert o.actions == []
    assert o.state == state


def test_pmdie_escalation_smart_fast_immediate_writes_stopping_each_time() -> None:
    state = resting(PMState.RUN)
    o = run(state, SignalReceived(Sig.TERM), SignalReceived(Sig.INT), SignalReceived(Sig.QUIT))
    assert o.logs == [
        "received smart shutdown request",
        "received fast shutdown request",
        "aborting any active transactions",
        "received immediate shutdown request",
    ]
    assert o.pid_statuses == [PidStatus.STOPPING] * 3
    assert o.state.shutdown == Shutdown.IMMEDIATE


# -- §3.3 SIGUSR1 ------------------------------------------------------------------------------


def test_sigusr1_recovery_started_enters_recovery() -> None:
    state = make_state(PMState.STARTUP, STARTUP_SET, fatal_error=True, abort_start_time=T0 - 2)
    o = run(state, usr1(R.RECOVERY_STARTED))
    assert o.state.pm_state == PMState.RECOVERY
    assert (o.state.fatal_error, o.state.abort_start_time) == (False, 0.0)
    assert o.spawns == [K.CHECKPOINTER, K.BGWRITER]  # (14)
    assert o.pid_statuses == []  # hot_standby is on: "ready" comes with BEGIN_HOT_STANDBY
    assert o.logs == []


def test_sigusr1_recovery_started_with_hot_standby_off_reports_standby() -> None:
    state = make_state(PMState.STARTUP, STARTUP_SET, config=Config(hot_standby=False))
    o = run(state, usr1(R.RECOVERY_STARTED))
    assert o.pid_statuses == [PidStatus.STANDBY]
    assert o.state.pm_state == PMState.RECOVERY


def test_sigusr1_recovery_started_forks_the_archiver_for_archive_mode_always_without_throttle() -> None:
    state = make_state(PMState.STARTUP, STARTUP_SET, config=Config(archive_mode="always"),
                       last_pgarch_start_time=T0 - 1)
    o = run(state, usr1(R.RECOVERY_STARTED))
    assert o.spawns == [K.CHECKPOINTER, K.BGWRITER, K.ARCHIVER]
    assert o.state.last_pgarch_start_time == T0 - 1  # the throttle was not consulted


@pytest.mark.parametrize(("pm_state", "shutdown"), [(PMState.RECOVERY, Shutdown.NO), (PMState.RUN, Shutdown.NO),
                                                    (PMState.WAIT_BACKENDS, Shutdown.SMART)])
def test_sigusr1_recovery_started_is_lost_in_any_other_situation(pm_state, shutdown) -> None:
    specials = {PMState.RECOVERY: RECOVERY_SET, PMState.RUN: RUN_SET,
                PMState.WAIT_BACKENDS: (K.STARTUP, K.CHECKPOINTER)}[pm_state]
    state = make_state(pm_state, specials, shutdown=shutdown)
    o = run(state, usr1(R.RECOVERY_STARTED))
    assert o.state.pm_state == pm_state
    assert (o.spawns, o.logs, o.pid_statuses) == ([], [], [])


def test_sigusr1_flag_lost_when_the_guard_fails_is_not_acted_on_later() -> None:
    # Smart shutdown pending in STARTUP... RECOVERY_STARTED arrives and is dropped.
    state = make_state(PMState.STARTUP, STARTUP_SET, shutdown=Shutdown.SMART)
    o = run(state, usr1(R.RECOVERY_STARTED), usr1())
    assert o.state.pm_state == PMState.STARTUP
    assert o.spawns == []


def test_sigusr1_begin_hot_standby() -> None:
    consistent = worker("reader", BgWorkerStartTime.CONSISTENT_STATE)
    state = make_state(PMState.RECOVERY, RECOVERY_SET, idle_workers=(consistent, LRL),
                       conns_allowed=ConnsAllowed.NONE)
    o = run(state, usr1(R.BEGIN_HOT_STANDBY))
    assert o.logs == ["database system is ready to accept read-only connections"]
    assert o.pid_statuses == [PidStatus.READY]
    assert o.state.pm_state == PMState.HOT_STANDBY
    assert o.state.conns_allowed is ConnsAllowed.ALL
    # The stats collector (14), then the ConsistentState workers (not the launcher: RUN only).
    assert o.spawns == [K.STATS, K.BGWORKER]
    assert o.spawn_actions[1].bgworker == "reader"
    assert o.state.start_worker_needed is False


@pytest.mark.parametrize(("pm_state", "shutdown"), [(PMState.STARTUP, Shutdown.NO), (PMState.RECOVERY, Shutdown.SMART)])
def test_sigusr1_begin_hot_standby_needs_recovery_and_no_shutdown(pm_state, shutdown) -> None:
    specials = RECOVERY_SET if pm_state == PMState.RECOVERY else STARTUP_SET
    o = run(make_state(pm_state, specials, shutdown=shutdown), usr1(R.BEGIN_HOT_STANDBY))
    assert o.state.pm_state == pm_state
    assert (o.logs, o.pid_statuses) == ([], [])


def test_sigusr1_recovery_started_and_begin_hot_standby_in_one_signal_apply_in_order() -> None:
    o = run(make_state(PMState.STARTUP, STARTUP_SET), usr1(R.BEGIN_HOT_STANDBY, R.RECOVERY_STARTED))
    assert o.state.pm_state == PMState.HOT_STANDBY
    assert o.spawns == [K.CHECKPOINTER, K.BGWRITER, K.STATS]


def test_sigusr1_background_worker_change_starts_workers() -> None:
    state = make_state(PMState.RUN, RUN_SET, idle_workers=(LRL,))
    o = run(state, usr1(R.BACKGROUND_WORKER_CHANGE))
    assert o.spawns == [K.BGWORKER]
    assert o.state.start_worker_needed is False


def test_sigusr1_any_signal_starts_crashed_workers_that_are_due() -> None:
    state = make_state(PMState.RUN, RUN_SET, idle_workers=(worker(crashed_at=T0 - 5),),
                       have_crashed_worker=True)
    o = run(state, usr1())
    assert o.spawns == [K.BGWORKER]


@pytest.mark.parametrize(
    ("logrotate_file", "rotate_reason", "signalled", "removed"),
    [(True, False, True, True), (False, True, True, False), (True, True, True, True), (False, False, False, False)],
)
def test_sigusr1_log_rotation(logrotate_file, rotate_reason, signalled, removed) -> None:
    state = make_state(PMState.RUN, RUN_SET + (K.SYSLOGGER,), config=COLLECTOR)
    reasons = (R.ROTATE_LOGFILE,) if rotate_reason else ()
    o = run(state, usr1(*reasons, logrotate_file=logrotate_file))
    assert o.signals == ([(PID[K.SYSLOGGER], Sig.USR1)] if signalled else [])
    assert o.of_type(RemoveDataFile) == ([RemoveDataFile("logrotate")] if removed else [])


def test_sigusr1_log_rotation_needs_a_running_syslogger() -> None:
    o = run(make_state(PMState.RUN, RUN_SET), usr1(R.ROTATE_LOGFILE, logrotate_file=True))
    assert (o.signals, o.others) == ([], [])


def test_sigusr1_start_autovac_launcher_forces_one_even_if_autovacuum_is_off() -> None:
    others = (K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.STATS)
    state = make_state(PMState.RUN, others, config=Config(autovacuum=False))
    o = answered(run(state, usr1(R.START_AUTOVAC_LAUNCHER)))
    assert o.spawns == [K.AUTOVAC_LAUNCHER]
    assert o.state.start_autovac_launcher is False


@pytest.mark.parametrize(
    ("pm_state", "shutdown", "flag_set"),
    [
        (PMState.HOT_STANDBY, Shutdown.NO, True),  # kept until PM_RUN
        (PMState.RUN, Shutdown.SMART, True),
        (PMState.WAIT_BACKENDS, Shutdown.SMART, False),
        (PMState.WAIT_BACKENDS, Shutdown.FAST, False),
    ],
)
def test_sigusr1_start_autovac_launcher_guard(pm_state, shutdown, flag_set) -> None:
    specials = {PMState.HOT_STANDBY: HOT_STANDBY_SET, PMState.RUN: (K.CHECKPOINTER, K.STATS),
                PMState.WAIT_BACKENDS: (K.CHECKPOINTER, K.BGWRITER)}[pm_state]
    state = make_state(pm_state, specials, backends=1, shutdown=shutdown, config=Config(autovacuum=False),
                       conns_allowed=ConnsAllowed.NONE if shutdown == Shutdown.SMART else ConnsAllowed.ALL)
    o = answered(run(state, usr1(R.START_AUTOVAC_LAUNCHER)))
    in_run = pm_state == PMState.RUN
    assert o.spawns.count(K.AUTOVAC_LAUNCHER) == (1 if in_run else 0)
    assert o.state.start_autovac_launcher is (flag_set and not in_run)


@pytest.mark.parametrize("pm_state", [PMState.RUN, PMState.HOT_STANDBY])
def test_sigusr1_start_autovac_worker(pm_state) -> None:
    specials = RUN_SET if pm_state == PMState.RUN else HOT_STANDBY_SET + (K.AUTOVAC_LAUNCHER,)
    o = run(make_state(pm_state, specials), usr1(R.START_AUTOVAC_WORKER))
    assert o.spawns == [K.AUTOVAC_WORKER]
    assert o.spawn_actions[0].dead_end is False
    assert o.of_type(ReportAutovacWorkerFailed) == []


@pytest.mark.parametrize(("pm_state", "shutdown"), [(PMState.WAIT_BACKENDS, Shutdown.FAST),
                                                    (PMState.WAIT_BACKENDS, Shutdown.SMART)])
def test_sigusr1_start_autovac_worker_ignored_when_stopping(pm_state, shutdown) -> None:
    state = make_state(pm_state, (K.CHECKPOINTER, K.AUTOVAC_LAUNCHER), shutdown=shutdown)
    o = run(state, usr1(R.START_AUTOVAC_WORKER))
    assert (o.spawns, o.signals, o.others) == ([], [], [])
    assert o.state.avlauncher_needs_signal is False


def test_sigusr1_start_autovac_worker_allowed_during_a_smart_shutdown() -> None:
    # The smart-shutdown restriction is for client connections only.
    state = make_state(PMState.RUN, RUN_SET, backends=1, shutdown=Shutdown.SMART,
                       conns_allowed=ConnsAllowed.NONE)
    assert run(state, usr1(R.START_AUTOVAC_WORKER)).spawns == [K.AUTOVAC_WORKER]


def test_sigusr1_autovac_worker_refused_tells_the_launcher_and_signals_it_on_the_next_loop() -> None:
    full = Config(max_connections=1, autovacuum_max_workers=1, max_wal_senders=0, max_worker_processes=0)
    # MaxLivePostmasterChildren = 2 * (1 + 1 + 1 + 0 + 0) = 6 children.
    state = make_state(PMState.RUN, RUN_SET, backends=6, config=full)
    o = run(state, usr1(R.START_AUTOVAC_WORKER))
    assert o.spawns == []
    report = o.actions.index(ReportAutovacWorkerFailed())
    signal = o.actions.index(SignalChild(PID[K.AUTOVAC_LAUNCHER], Sig.USR2, group=False))
    assert report < signal  # the loop body right after the handler sends the SIGUSR2
    assert o.state.avlauncher_needs_signal is False


def test_sigusr1_autovac_worker_fork_failure_reports_and_signals_on_the_next_loop() -> None:
    o = run(make_state(PMState.RUN, RUN_SET), usr1(R.START_AUTOVAC_WORKER))
    failed = run(o.state, ForkFailed(FIRST_NEW_ID, "Resource temporarily unavailable"))
    assert failed.logs == ["could not fork autovacuum worker process: Resource temporarily unavailable"]
    assert failed.others == [ReportAutovacWorkerFailed()]
    assert failed.state.avlauncher_needs_signal is True
    assert failed.signals == []  # not in the same breath: no ping-pong
    loop = run(failed.state, Tick(), now=T0 + 0.001)
    assert loop.signals == [(PID[K.AUTOVAC_LAUNCHER], Sig.USR2)]


def test_sigusr1_autovac_worker_failure_without_launcher_reports_nothing() -> None:
    full = Config(max_connections=1, autovacuum_max_workers=1, max_wal_senders=0, max_worker_processes=0,
                  autovacuum=False)
    state = make_state(PMState.RUN, (K.CHECKPOINTER, K.BGWRITER, K.WALWRITER, K.STATS), backends=6,
                       config=full)
    o = run(state, usr1(R.START_AUTOVAC_WORKER))
    assert o.of_type(ReportAutovacWorkerFailed) == []
    assert o.state.avlauncher_needs_signal is False


@pytest.mark.parametrize(
    ("pm_state", "shutdown", "spawned"),
    [
        (PMState.STARTUP, Shutdown.NO, True),
        (PMState.RECOVERY, Shutdown.NO, True),
        (PMState.HOT_STANDBY, Shutdown.SMART, True),
        (PMState.WAIT_BACKENDS, Shutdown.FAST, False),
    ],
)
def test_sigusr1_start_walreceiver(pm_state, shutdown, spawned) -> None:
    specials = {PMState.STARTUP: STARTUP_SET, PMState.RECOVERY: RECOVERY_SET,
                PMState.HOT_STANDBY: HOT_STANDBY_SET, PMState.WAIT_BACKENDS: (K.STARTUP, K.CHECKPOINTER)}[pm_state]
    state = make_state(pm_state, specials, shutdown=shutdown,
                       conns_allowed=ConnsAllowed.NONE if shutdown == Shutdown.SMART else ConnsAllowed.ALL)
    o = answered(run(state, usr1(R.START_WALRECEIVER)))
    assert o.spawns == ([K.WALRECEIVER] if spawned else [])
    assert o.state.walreceiver_requested is (not spawned)


def test_sigusr1_advance_state_machine_after_a_walsender_marks_itself() -> None:
    # Fast shutdown: what looked like a client is a walsender, so T4 may go on.
    state = make_state(PMState.WAIT_BACKENDS, (K.CHECKPOINTER,), backends=1, shutdown=Shutdown.FAST)
    relabelled = usr1(walsenders=frozenset({BACKEND_BASE + 1}))
    o = run(state, relabelled)
    assert o.state.children[BACKEND_BASE + 1].kind is K.WALSENDER
    assert o.state.pm_state == PMState.WAIT_BACKENDS  # nobody asked to advance
    advanced = run(o.state, usr1(R.ADVANCE_STATE_MACHINE))
    assert advanced.state.pm_state == PMState.SHUTDOWN
    assert advanced.signals == [(PID[K.CHECKPOINTER], Sig.USR2)]


@pytest.mark.parametrize("pm_state", [PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY])
def test_sigusr1_promote_signals_the_startup_process(pm_state) -> None:
    specials = {PMState.STARTUP: STARTUP_SET, PMState.RECOVERY: RECOVERY_SET,
                PMState.HOT_STANDBY: HOT_STANDBY_SET}[pm_state]
    o = run(make_state(pm_state, specials), usr1(promote_file=True))
    assert o.signals == [(PID[K.STARTUP], Sig.USR2)]
    assert o.of_type(SignalChild)[0].group is False
    assert o.of_type(RemoveDataFile) == []  # the startup process deletes the file


def test_sigusr1_promote_needs_the_file() -> None:
    assert run(make_state(PMState.HOT_STANDBY, HOT_STANDBY_SET), usr1()).signals == []


def test_sigusr1_promote_ignored_without_a_startup_process_in_recovery_states() -> None:
    # Startup still running, but a shutdown already moved pmState on.
    state = make_state(PMState.WAIT_BACKENDS, (K.STARTUP, K.CHECKPOINTER), shutdown=Shutdown.FAST)
    assert run(state, usr1(promote_file=True)).signals == []


def test_sigusr1_reasons_are_processed_in_order() -> None:
    # BEGIN_HOT_STANDBY (step 2) comes before START_AUTOVAC_WORKER (step 7): the worker may
    # start, because canAcceptConnections already sees PM_HOT_STANDBY.
    state = make_state(PMState.RECOVERY, RECOVERY_SET + (K.AUTOVAC_LAUNCHER,))
    o = run(state, usr1(R.START_AUTOVAC_WORKER, R.BEGIN_HOT_STANDBY, R.START_WALRECEIVER))
    assert o.spawns == [K.STATS, K.AUTOVAC_WORKER, K.WALRECEIVER]
    assert o.state.pm_state == PMState.HOT_STANDBY
