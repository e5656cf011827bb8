"""HandleChildCrash step by step (spec §4.2), signal_child's process groups (§4.1) and the
SIGKILL escalation (§4.3)."""

from __future__ import annotations

import pytest

from pgtop.core import Config
from pgtop.core.actions import SetQuitReason, SignalChild
from pgtop.core.events import ChildExit, ChildrenExited, SignalReceived, Tick
from pgtop.core.state import LOGICAL_REPLICATION_LAUNCHER
from pgtop.core.vocabulary import (
    ExitStatus,
    PMState,
    QuitReason,
    Shutdown,
    Sig,
    StartupStatus,
)
from tests.core.rules_helpers import (
    ALL_SPECIALS,
    AUTOVAC_WORKER_BASE,
    BACKEND_BASE,
    BGWORKER_BASE,
    DEAD_END_BASE,
    GROUP_SIGNALS,
    PID,
    RUN_SET,
    T0,
    WALSENDER_BASE,
    K,
    exit_line,
    exited,
    make_state,
    run,
    worker,
)

TERMINATING = "terminating any other active server processes"
LRL = LOGICAL_REPLICATION_LAUNCHER
OTHER_WORKER = worker("other worker")
CRASHED = BACKEND_BASE + 1  # the backend that dies in most tests below
COLLECTOR = Config(logging_collector=True)


def everyone(pm_state=PMState.RUN, **fields):
    """Every kind of child at once: all special children, two clients, a walsender, an
    autovacuum worker, two bgworkers and a dead_end."""
    fields.setdefault("config", COLLECTOR)
    fields.setdefault("startup_status", StartupStatus.RUNNING)
    return make_state(
        pm_state, ALL_SPECIALS, backends=2, walsenders=1, av_workers=1, dead_ends=1,
        running_workers=(LRL, OTHER_WORKER), **fields,
    )


def crash(state, pid=CRASHED, code=None, signal=9, now=T0, **extra):
    return run(state, exited(pid, code, signal, **extra), now=now)


def test_crash_step_1_and_2_first_crash_logs_and_sets_the_quit_reason() -> None:
    o = crash(everyone(), query="update t set x = 1")
    assert o.logs == [exit_line("server process", CRASHED, None, 9), TERMINATING]
    assert o.log_records[0].detail == "Failed process was running: update t set x = 1"
    assert o.of_type(SetQuitReason) == [SetQuitReason(QuitReason.CRASH)]
    # The reason is set before any SIGQUIT goes out, so every backend tells its client why.
    first_signal = next(i for i, a in enumerate(o.actions) if isinstance(a, SignalChild))
    assert o.actions.index(SetQuitReason(QuitReason.CRASH)) < first_signal


def test_crash_step_1_only_the_first_crash_takes_action() -> None:
    first = crash(everyone())
    second = crash(first.state, pid=BACKEND_BASE + 2, now=T0 + 1)
    assert (second.logs, second.signals, second.of_type(SetQuitReason)) == ([], [], [])
    assert BACKEND_BASE + 2 not in second.state.children  # bookkeeping still done
    assert second.state.abort_start_time == T0  # the stopwatch keeps running from the first


def test_crash_step_1_an_immediate_shutdown_never_takes_action() -> None:
    state = everyone(pm_state=PMState.WAIT_BACKENDS, shutdown=Shutdown.IMMEDIATE,
                     abort_start_time=T0 - 1, startup_status=StartupStatus.SIGNALED)
    o = crash(state, code=2, signal=None)
    assert (o.logs, o.signals, o.of_type(SetQuitReason)) == ([], [], [])
    assert o.state.fatal_error is False  # step 9: not a FatalError during an immediate shutdown


def test_crash_steps_3_to_8_who_gets_sigquit() -> None:
    o = crash(everyone())
    expected = {(pid, Sig.QUIT) for pid in (
        BGWORKER_BASE + 1, BGWORKER_BASE + 2,  # step 3: every other bgworker
        BACKEND_BASE + 2, WALSENDER_BASE + 1, AUTOVAC_WORKER_BASE + 1,  # step 4: BackendList
        DEAD_END_BASE + 1,  # ... dead_end children included
        PID[K.STARTUP],  # step 5
        PID[K.BGWRITER], PID[K.CHECKPOINTER], PID[K.WALWRITER], PID[K.WALRECEIVER],
        PID[K.AUTOVAC_LAUNCHER], PID[K.ARCHIVER],  # step 6
        PID[K.STATS],  # step 7
    )}
    assert o.signal_set == expected  # step 8: never the syslogger
    assert len(o.signals) == len(expected)
    assert (PID[K.SYSLOGGER], Sig.QUIT) not in o.signal_set


def test_crash_step_3_bgworkers_are_signalled_before_the_other_backend_list_children() -> None:
    o = crash(everyone())
    order = [pid for pid, _ in o.signals]
    workers = [order.index(BGWORKER_BASE + 1), order.index(BGWORKER_BASE + 2)]
    backends = [order.index(p) for p in (BACKEND_BASE + 2, WALSENDER_BASE + 1, DEAD_END_BASE + 1)]
    assert max(workers) < min(backends)


def test_crash_step_3_dead_bgworker_keeps_its_crash_time_and_is_removed() -> None:
    o = crash(everyone(), pid=BGWORKER_BASE + 1, code=None, signal=11)
    assert o.logs == [exit_line('background worker "logical replication launcher"', BGWORKER_BASE + 1, None, 11),
                      TERMINATING]
    lrl = next(w for w in o.state.bgworkers if w.name == LRL.name)
    assert (lrl.child_id, lrl.crashed_at) == (None, T0)
    assert BGWORKER_BASE + 1 not in o.state.children
    assert (BGWORKER_BASE + 2, Sig.QUIT) in o.signal_set


def test_crash_step_5_running_startup_is_sigquit_and_becomes_signaled() -> None:
    o = crash(everyone(pm_state=PMState.HOT_STANDBY))
    assert (PID[K.STARTUP], Sig.QUIT) in o.signal_set
    assert o.state.startup_status is StartupStatus.SIGNALED


def test_crash_step_5_startup_not_signaled_when_not_taking_action() -> None:
    state = everyone(pm_state=PMState.WAIT_BACKENDS, fatal_error=True, abort_start_time=T0 - 1)
    o = crash(state)
    assert o.state.startup_status is StartupStatus.RUNNING
    assert o.signals == []


def test_crash_step_7_resets_the_stats_collector_throttle() -> None:
    o = crash(everyone(last_pgstat_start_time=T0 - 1))
    assert o.state.last_pgstat_start_time == 0.0
    # So once the cycle is over, a new collector starts at once instead of 60 s later.


def test_crash_step_7_no_throttle_reset_when_not_taking_action() -> None:
    state = everyone(pm_state=PMState.WAIT_BACKENDS, fatal_error=True, abort_start_time=T0 - 1,
                     last_pgstat_start_time=T0 - 1)
    assert crash(state).state.last_pgstat_start_time == T0 - 1


def test_crash_step_8_the_syslogger_is_never_touched_and_never_a_crash() -> None:
    o = run(everyone(), exited(PID[K.SYSLOGGER], None, 9))
    assert o.signals == []
    assert (o.state.pm_state, o.state.fatal_error) == (PMState.RUN, False)


@pytest.mark.parametrize("shutdown", [Shutdown.NO, Shutdown.SMART, Shutdown.FAST])
def test_crash_step_9_sets_fatal_error_unless_immediate(shutdown) -> None:
    pm_state = PMState.RUN if shutdown <= Shutdown.SMART else PMState.WAIT_BACKENDS
    o = crash(everyone(pm_state=pm_state, shutdown=shutdown))
    assert o.state.fatal_error is True


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (PMState.RECOVERY, PMState.WAIT_BACKENDS),
        (PMState.HOT_STANDBY, PMState.WAIT_BACKENDS),
        (PMState.RUN, PMState.WAIT_BACKENDS),
        (PMState.STOP_BACKENDS, PMState.WAIT_BACKENDS),
        (PMState.SHUTDOWN, PMState.WAIT_BACKENDS),
        (PMState.STARTUP, PMState.STARTUP),  # 14: the startup process's exit moves it later
        (PMState.WAIT_BACKENDS, PMState.WAIT_BACKENDS),
        (PMState.SHUTDOWN_2, PMState.SHUTDOWN_2),
        (PMState.WAIT_DEAD_END, PMState.WAIT_DEAD_END),
    ],
)
def test_crash_step_10_state_change_only_from_recovery_hot_standby_run_stop_backends_shutdown(before, after) -> None:
    shutdown = Shutdown.NO if before <= PMState.RUN else Shutdown.FAST
    o = crash(everyone(pm_state=before, shutdown=shutdown))
    # Everyone is still alive, so PostmasterStateMachine cannot advance any further.
    assert o.state.pm_state == after
    assert o.state.fatal_error is True


def test_crash_step_11_starts_the_stopwatch_once() -> None:
    first = crash(everyone())
    assert first.state.abort_start_time == T0
    second = crash(first.state, pid=BACKEND_BASE + 2, now=T0 + 2)
    assert second.state.abort_start_time == T0


def test_crash_step_11_keeps_a_stopwatch_that_already_runs() -> None:
    # An immediate shutdown started it; a crash during the shutdown does not restart it.
    state = everyone(pm_state=PMState.WAIT_BACKENDS, shutdown=Shutdown.IMMEDIATE, abort_start_time=T0 - 3)
    assert crash(state, code=2, signal=None).state.abort_start_time == T0 - 3


def test_crash_every_child_dies_of_its_sigquit_then_the_cycle_restarts() -> None:
    state = make_state(PMState.RUN, RUN_SET + (K.SYSLOGGER,), backends=1, dead_ends=1,
                       config=COLLECTOR)
    o = crash(state)
    # Each SIGQUIT'd child exits 2 (the stats collector 0): only bookkeeping, no new log.
    survivors = [PID[k] for k in RUN_SET] + [DEAD_END_BASE + 1]
    statuses = [ExitStatus.exited(0 if pid == PID[K.STATS] else 2) for pid in survivors]
    batch = ChildrenExited(tuple(ChildExit(pid, pid, st) for pid, st in zip(survivors, statuses)))
    o2 = run(o.state, batch, now=T0 + 1)
    assert o2.logs == ["all server processes terminated; reinitializing"]
    assert o2.spawns == [K.STARTUP]
    assert o2.state.pm_state == PMState.STARTUP
    assert o2.state.fatal_error is True
    assert o2.state.abort_start_time == 0.0
    assert o2.pid_statuses == []  # postmaster.pid keeps saying "ready   "
    assert PID[K.SYSLOGGER] in o2.state.children


# -- §4.1 signal_child ----------------------------------------------------------------------


def test_signal_child_also_signals_the_process_group_for_int_term_quit_stop_kill() -> None:
    state = everyone()
    seen = []
    seen += crash(state).of_type(SignalChild)  # SIGQUIT
    seen += run(state, SignalReceived(Sig.INT)).of_type(SignalChild)  # SIGTERM
    seen += run(everyone(pm_state=PMState.WAIT_BACKENDS, fatal_error=True, abort_start_time=T0 - 5),
                Tick()).of_type(SignalChild)  # SIGKILL
    state_hup = everyone()
    from pgtop.core.events import ConfigFileRead
    seen += run(state_hup, ConfigFileRead("postgresql.conf")).of_type(SignalChild)  # SIGHUP
    assert {a.signal for a in seen} == {Sig.QUIT, Sig.TERM, Sig.KILL, Sig.HUP}
    assert all(a.group == (a.signal in GROUP_SIGNALS) for a in seen)


# -- §4.3 SIGKILL escalation ------------------------------------------------------------------


def crashed_everyone():
    return crash(everyone()).state


def test_sigkill_not_before_5_s() -> None:
    o = run(crashed_everyone(), Tick(), now=T0 + 4.999)
    assert (o.logs, o.signals) == ([], [])


def test_sigkill_after_exactly_5_s_spares_dead_ends_and_the_syslogger() -> None:
    o = run(crashed_everyone(), Tick(), now=T0 + 5)
    assert o.logs == ["issuing SIGKILL to recalcitrant children"]
    killed = {pid for pid, sig in o.signals if sig == Sig.KILL}
    assert killed == {
        BACKEND_BASE + 2, WALSENDER_BASE + 1, AUTOVAC_WORKER_BASE + 1,
        BGWORKER_BASE + 1, BGWORKER_BASE + 2,
        PID[K.STARTUP], PID[K.BGWRITER], PID[K.CHECKPOINTER], PID[K.WALWRITER],
        PID[K.WALRECEIVER], PID[K.AUTOVAC_LAUNCHER], PID[K.ARCHIVER], PID[K.STATS],
    }
    assert len(o.signals) == len(killed)
    assert o.state.abort_start_time == 0.0
    assert o.state.startup_status is StartupStatus.SIGNALED


def test_sigkill_fires_only_once() -> None:
    o = run(crashed_everyone(), Tick(), now=T0 + 5)
    again = run(o.state, Tick(), now=T0 + 30)
    assert (again.logs, again.signals) == ([], [])


def test_sigkill_also_for_an_immediate_shutdown() -> None:
    o = run(everyone(), SignalReceived(Sig.QUIT))
    assert o.state.abort_start_time == T0
    later = run(o.state, Tick(), now=T0 + 5)
    assert later.logs == ["issuing SIGKILL to recalcitrant children"]
    assert {sig for _, sig in later.signals} == {Sig.KILL}


def test_sigkill_never_for_a_fast_shutdown_without_a_crash() -> None:
    # Only Shutdown >= Immediate or FatalError arm the escalation.
    state = everyone(pm_state=PMState.WAIT_BACKENDS, shutdown=Shutdown.FAST, abort_start_time=T0 - 10)
    o = run(state, Tick())
    assert (o.logs, o.signals) == ([], [])


def test_sigkill_stopwatch_reset_by_recovery_started() -> None:
    from pgtop.core.events import PMSignalRaised
    from pgtop.core.vocabulary import PMSignalReason

    state = make_state(PMState.STARTUP, (K.STARTUP,), fatal_error=True, abort_start_time=T0 - 1)
    o = run(state, PMSignalRaised(frozenset({PMSignalReason.RECOVERY_STARTED})))
    assert (o.state.abort_start_time, o.state.fatal_error) == (0.0, False)
    assert run(o.state, Tick(), now=T0 + 10).logs == []


# -- §7 canonical sequences, on the simulated cluster ---------------------------------------------


def test_sigkill_fast_shutdown_during_a_crash_cycle_with_a_stopped_checkpointer() -> None:
    from pgtop.core.simulation import SimulatedCluster, messages

    cluster = SimulatedCluster().start_and_run()
    booted = len(cluster.log)
    cluster.stop(K.CHECKPOINTER)  # SIGSTOP: it will only die of SIGKILL
    walwriter = cluster.kill(K.WALWRITER, Sig.KILL)
    cluster.signal(Sig.INT)
    assert cluster.state.shutdown == Shutdown.FAST
    cluster.advance(4.9)
    assert cluster.exit_code is None  # still waiting for the checkpointer
    cluster.advance(0.2)
    assert messages(cluster.log[booted:]) == [
        f"WAL writer process (PID {walwriter}) was terminated by signal 9: Killed",
        TERMINATING,
        "received fast shutdown request",  # no "aborting ...": pmState is WAIT_BACKENDS already
        "issuing SIGKILL to recalcitrant children",
        "abnormal database system shutdown",
    ]
    assert cluster.exit_code == 1


def test_immediate_shutdown_logs_one_line_and_exits_0() -> None:
    from pgtop.core.simulation import SimulatedCluster, messages

    cluster = SimulatedCluster().start_and_run()
    booted = len(cluster.log)
    cluster.signal(Sig.QUIT)
    assert messages(cluster.log[booted:]) == ["received immediate shutdown request"]
    assert cluster.exit_code == 0
