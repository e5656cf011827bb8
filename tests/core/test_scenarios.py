"""Whole scenarios as event scripts: the postmaster's ordered (pmState, log line) trace.

These mirror the canonical sequences of spec §4.5 and §7 (postmaster lines only: what the
children themselves log is the runtime's business). Each trace entry is the pmState the
line was written in and the line.
"""

from __future__ import annotations

import pytest

from pgtop.core.config import Config
from pgtop.core.simulation import SimulatedCluster
from pgtop.core.vocabulary import (
    ChildKind,
    PidStatus,
    PMSignalReason,
    PMState,
    Shutdown,
    Sig,
)

RUN, STARTUP, WAIT_BACKENDS = PMState.RUN, PMState.STARTUP, PMState.WAIT_BACKENDS
READY = "database system is ready to accept connections"


def trace(cluster: SimulatedCluster) -> list[tuple[str, str]]:
    """LOG-level postmaster lines with the pmState at the time, then forget them."""
    lines = [(line.pm_state.pg_name, line.message) for line in cluster.log if not line.level.startswith("DEBUG")]
    cluster.log.clear()
    return lines


def running_cluster(**settings: object) -> SimulatedCluster:
    cluster = SimulatedCluster(Config(**settings)).start_and_run()  # type: ignore[arg-type]
    cluster.log.clear()
    return cluster


def test_cold_start_to_ready() -> None:
    cluster = SimulatedCluster().boot()
    assert cluster.state.pm_state == STARTUP
    assert set(cluster.pids()) == {"startup"}
    cluster.finish_startup()
    assert trace(cluster) == [
        ("PM_INIT", "starting PostgreSQL 14.13 (pgtop) on x86_64-pc-linux-gnu, 64-bit"),
        ("PM_RUN", READY),
    ]
    assert cluster.state.pm_state == RUN
    assert set(cluster.pids()) == {
        "checkpointer",
        "background writer",
        "walwriter",
        "autovacuum launcher",
        "stats collector",
        "background worker logical replication launcher",
    }
    assert cluster.state.pid_status is PidStatus.READY
    statuses = [a.status.value for a in cluster.actions if type(a).__name__ == "WritePidStatus"]
    assert statuses == ["starting", "ready   "]


def test_crash_of_a_backend_full_cycle_to_ready() -> None:
    cluster = running_cluster()
    before = cluster.pids()
    backend = cluster.connect()
    cluster.exit(backend.pid, signal=9, query="select pg_sleep(30)")
    assert cluster.state.pm_state == WAIT_BACKENDS and cluster.state.fatal_error
    refused = cluster.connect()  # a client during the cycle
    assert refused.dead_end
    cluster.exit(refused.pid, code=1)
    cluster.settle()
    assert cluster.state.pm_state == STARTUP and cluster.state.fatal_error
    cluster.finish_startup()
    assert trace(cluster) == [
        ("PM_RUN", f"server process (PID {backend.pid}) was terminated by signal 9: Killed"),
        ("PM_RUN", "terminating any other active server processes"),
        ("PM_NO_CHILDREN", "all server processes terminated; reinitializing"),
        ("PM_RUN", READY),
    ]
    assert cluster.state.pm_state == RUN and not cluster.state.fatal_error
    after = cluster.pids()
    assert set(after) == set(before)
    assert all(after[key] != before[key] for key in before), "every child was restarted"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ChildKind.CHECKPOINTER, "checkpointer process"),
        (ChildKind.BGWRITER, "background writer process"),
        (ChildKind.WALWRITER, "WAL writer process"),
        (ChildKind.AUTOVAC_LAUNCHER, "autovacuum launcher process"),
    ],
)
def test_crash_of_an_auxiliary_process(kind: ChildKind, name: str) -> None:
    cluster = running_cluster()
    pid = cluster.kill(kind, Sig.KILL)
    assert cluster.state.pm_state == STARTUP
    cluster.finish_startup()
    assert trace(cluster) == [
        ("PM_RUN", f"{name} (PID {pid}) was terminated by signal 9: Killed"),
        ("PM_RUN", "terminating any other active server processes"),
        ("PM_NO_CHILDREN", "all server processes terminated; reinitializing"),
        ("PM_RUN", READY),
    ]


def test_crash_of_the_archiver_restarts_it_only_after_the_cycle() -> None:
    cluster = running_cluster(archive_mode="on")
    pid = cluster.kill(ChildKind.ARCHIVER, Sig.SEGV)
    assert "archiver" not in cluster.pids()
    cluster.finish_startup()
    assert trace(cluster)[:2] == [
        ("PM_RUN", f"archiver process (PID {pid}) was terminated by signal 11: Segmentation fault"),
        ("PM_RUN", "terminating any other active server processes"),
    ]
    assert "archiver" not in cluster.pids(), "throttled: 10 s since the last start"
    cluster.advance(60)
    assert "archiver" in cluster.pids()


def test_smart_shutdown_waits_for_the_client_then_exits_0() -> None:
    cluster = running_cluster()
    client = cluster.connect()
    cluster.signal(Sig.TERM)
    assert cluster.state.pm_state == RUN and cluster.state.shutdown == Shutdown.SMART
    refused = cluster.connect()
    assert refused.dead_end
    cluster.exit(refused.pid, code=1)
    assert cluster.state.pm_state == RUN, "still waiting for the first client"
    launcher = cluster.pid(ChildKind.BGWORKER)
    cluster.exit(client.pid, code=0)
    cluster.settle()
    assert trace(cluster) == [
        ("PM_RUN", "received smart shutdown request"),
        ("PM_WAIT_BACKENDS", f'background worker "logical replication launcher" (PID {launcher}) exited with exit code 1'),
    ]
    assert cluster.exit_code == 0
    assert cluster.state.pm_state == PMState.NO_CHILDREN


def test_fast_shutdown_terminates_clients_and_exits_0() -> None:
    cluster = running_cluster()
    cluster.connect()
    launcher = cluster.pid(ChildKind.BGWORKER)
    checkpointer = cluster.pid(ChildKind.CHECKPOINTER)
    cluster.signal(Sig.INT)
    assert trace(cluster) == [
        ("PM_RUN", "received fast shutdown request"),
        ("PM_RUN", "aborting any active transactions"),
        ("PM_WAIT_BACKENDS", f'background worker "logical replication launcher" (PID {launcher}) exited with exit code 1'),
    ]
    assert (checkpointer, ChildKind.CHECKPOINTER, Sig.USR2) in cluster.signals
    assert cluster.exit_code == 0


def test_immediate_shutdown_logs_one_line_and_exits_0() -> None:
    cluster = running_cluster()
    cluster.connect()
    cluster.signal(Sig.QUIT)
    assert trace(cluster) == [("PM_RUN", "received immediate shutdown request")]
    assert cluster.exit_code == 0


def test_smart_then_fast_then_immediate_escalation() -> None:
    cluster = running_cluster()
    cluster.connect()
    cluster.signal(Sig.TERM)
    cluster.signal(Sig.TERM)  # repeated: ignored silently
    assert cluster.state.shutdown == Shutdown.SMART
    cluster.stop(ChildKind.CHECKPOINTER)  # keep the fast shutdown from finishing
    cluster.signal(Sig.INT)
    assert cluster.state.pm_state == PMState.SHUTDOWN
    cluster.signal(Sig.TERM)  # weaker: ignored silently
    cluster.signal(Sig.QUIT)
    messages = [message for _, message in trace(cluster)]
    assert messages[:3] == [
        "received smart shutdown request",
        "received fast shutdown request",
        "aborting any active transactions",
    ]
    assert messages[-1] == "received immediate shutdown request"
    assert cluster.state.shutdown == Shutdown.IMMEDIATE
    cluster.advance(5)
    assert trace(cluster) == [("PM_WAIT_BACKENDS", "issuing SIGKILL to recalcitrant children")]
    assert cluster.exit_code == 0


def test_fast_shutdown_during_a_crash_cycle_exits_1() -> None:
    cluster = running_cluster()
    walwriter = cluster.pid(ChildKind.WALWRITER)
    cluster.stop(ChildKind.CHECKPOINTER)
    cluster.kill(ChildKind.WALWRITER, Sig.KILL)
    cluster.signal(Sig.INT)
    assert cluster.state.pm_state == WAIT_BACKENDS
    statuses = [a.status.value for a in cluster.actions if type(a).__name__ == "WritePidStatus"]
    assert statuses[-1] == "stopping"
    cluster.advance(5)
    assert trace(cluster) == [
        ("PM_RUN", f"WAL writer process (PID {walwriter}) was terminated by signal 9: Killed"),
        ("PM_RUN", "terminating any other active server processes"),
        ("PM_WAIT_BACKENDS", "received fast shutdown request"),
        ("PM_WAIT_BACKENDS", "issuing SIGKILL to recalcitrant children"),
        ("PM_NO_CHILDREN", "abnormal database system shutdown"),
    ]
    assert cluster.exit_code == 1


def test_startup_failure_in_pm_startup_aborts_at_once() -> None:
    cluster = SimulatedCluster().boot()
    startup = cluster.pid(ChildKind.STARTUP)
    cluster.finish_startup(code=1)
    assert trace(cluster)[1:] == [
        ("PM_STARTUP", f"startup process (PID {startup}) exited with exit code 1"),
        ("PM_STARTUP", "aborting startup due to startup process failure"),
    ]
    assert cluster.exit_code == 1


def test_startup_failure_after_recovery_started_waits_then_exits_1() -> None:
    cluster = SimulatedCluster().boot()
    cluster.pmsignal(PMSignalReason.RECOVERY_STARTED)
    startup = cluster.pid(ChildKind.STARTUP)
    cluster.finish_startup(code=1)
    assert trace(cluster)[1:] == [
        ("PM_RECOVERY", f"startup process (PID {startup}) exited with exit code 1"),
        ("PM_RECOVERY", "terminating any other active server processes"),
        ("PM_NO_CHILDREN", "shutting down due to startup process failure"),
    ]
    assert cluster.exit_code == 1


def test_startup_exit_3_shuts_down_at_recovery_target() -> None:
    cluster = SimulatedCluster().boot()
    cluster.pmsignal(PMSignalReason.RECOVERY_STARTED)
    cluster.finish_startup(code=3)
    assert trace(cluster)[1:] == [("PM_RECOVERY", "shutdown at recovery target")]
    statuses = [a.status.value for a in cluster.actions if type(a).__name__ == "WritePidStatus"]
    assert "stopping" not in statuses
    assert cluster.exit_code == 0


def test_restart_after_crash_off_exits_1() -> None:
    cluster = running_cluster(restart_after_crash=False)
    backend = cluster.connect()
    cluster.exit(backend.pid, signal=11)
    cluster.settle()
    assert trace(cluster)[-1] == ("PM_NO_CHILDREN", "shutting down because restart_after_crash is off")
    assert cluster.exit_code == 1


def test_standby_to_hot_standby_to_promote() -> None:
    cluster = SimulatedCluster().boot()
    cluster.pmsignal(PMSignalReason.RECOVERY_STARTED)
    assert cluster.state.pm_state == PMState.RECOVERY
    assert {"checkpointer", "background writer"} <= set(cluster.pids())
    cluster.pmsignal(PMSignalReason.START_WALRECEIVER)
    assert "walreceiver" in cluster.pids()
    refused = cluster.connect()
    assert refused.dead_end
    cluster.exit(refused.pid, code=1)
    cluster.pmsignal(PMSignalReason.BEGIN_HOT_STANDBY)
    assert cluster.state.pm_state == PMState.HOT_STANDBY
    assert not cluster.connect().dead_end
    startup = cluster.pid(ChildKind.STARTUP)
    cluster.pmsignal(promote_file=True)
    assert (startup, ChildKind.STARTUP, Sig.USR2) in cluster.signals
    assert cluster.state.pm_state == RUN
    assert trace(cluster)[1:] == [
        ("PM_RECOVERY", "database system is ready to accept read-only connections"),
        ("PM_RUN", READY),
    ]


def test_sigkill_escalation_with_a_child_that_will_not_die() -> None:
    cluster = running_cluster()
    stopped = cluster.stop(ChildKind.BGWRITER)
    cluster.kill(ChildKind.WALWRITER, Sig.KILL)
    assert cluster.state.pm_state == WAIT_BACKENDS
    cluster.advance(4.9)
    assert cluster.state.pm_state == WAIT_BACKENDS, "not before 5 s"
    cluster.advance(0.2)
    assert (stopped, ChildKind.BGWRITER, Sig.KILL) in cluster.signals
    assert cluster.state.pm_state == STARTUP
    messages = [message for _, message in trace(cluster)]
    assert messages[-2:] == [
        "issuing SIGKILL to recalcitrant children",
        "all server processes terminated; reinitializing",
    ]
