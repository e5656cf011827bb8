"""The standby scenarios of test_standby.py as event scripts in the pure model.

Each script drives `SimulatedCluster` with the pmsignals and exits the real children produce
(the startup process's RECOVERY_STARTED / START_WALRECEIVER / BEGIN_HOT_STANDBY, a walsender's
ADVANCE_STATE_MACHINE, a walreceiver's exit 1) and checks the postmaster's side: its
(pmState, log line) trace, its children and its pid-file status.
"""

from __future__ import annotations

from pgtop.core.config import Config
from pgtop.core.simulation import SimulatedCluster
from pgtop.core.state import Child
from pgtop.core.vocabulary import (
    ChildKind,
    PidStatus,
    PMSignalReason,
    PMState,
    Sig,
    StartupStatus,
)

READ_ONLY = "database system is ready to accept read-only connections"
READY = "database system is ready to accept connections"


def trace(cluster: SimulatedCluster) -> list[tuple[str, str]]:
    """LOG-level postmaster lines with the pmState at the time, then forget them."""
    lines = [(line.pm_state.pg_name, line.message) for line in cluster.log if not line.level.startswith("DEBUG")]
    cluster.log.clear()
    return lines


def hot_standby(**settings: object) -> SimulatedCluster:
    """A standby as the real startup process drives it: redo begins, a walreceiver is asked
    for, consistency is reached."""
    cluster = SimulatedCluster(Config(**settings)).boot()  # type: ignore[arg-type]
    cluster.pmsignal(PMSignalReason.RECOVERY_STARTED)
    cluster.pmsignal(PMSignalReason.START_WALRECEIVER)
    cluster.pmsignal(PMSignalReason.BEGIN_HOT_STANDBY)
    return cluster


def become_walsender(cluster: SimulatedCluster, child: Child) -> None:
    """A connection child marks its slot WALSENDER and signals ADVANCE_STATE_MACHINE; from
    then on it also answers signals as a walsender does."""
    cluster.pmsignal(PMSignalReason.ADVANCE_STATE_MACHINE, walsenders=frozenset({child.id}))
    cluster.procs[child.id].kind = ChildKind.WALSENDER


def test_stream_the_standby_reaches_hot_standby_and_takes_read_only_clients() -> None:
    cluster = SimulatedCluster().boot()
    cluster.pmsignal(PMSignalReason.RECOVERY_STARTED)
    assert cluster.state.pm_state is PMState.RECOVERY
    assert {"checkpointer", "background writer"} <= set(cluster.pids())
    refused = cluster.connect()
    assert refused.dead_end, "not consistent yet"
    cluster.exit(refused.pid, code=1)
    cluster.pmsignal(PMSignalReason.START_WALRECEIVER)
    assert "walreceiver" in cluster.pids()
    cluster.pmsignal(PMSignalReason.BEGIN_HOT_STANDBY)
    assert cluster.state.pm_state is PMState.HOT_STANDBY
    assert cluster.state.pid_status is PidStatus.READY
    assert not cluster.connect().dead_end
    assert trace(cluster)[1:] == [("PM_RECOVERY", READ_ONLY)]
    assert set(cluster.pids()) >= {"startup", "walreceiver", "stats collector"}
    assert not {"walwriter", "autovacuum launcher"} & set(cluster.pids()), "only in PM_RUN"


def test_without_hot_standby_the_status_is_standby_and_clients_wait() -> None:
    cluster = SimulatedCluster(Config(hot_standby=False)).boot()
    cluster.pmsignal(PMSignalReason.RECOVERY_STARTED)
    assert cluster.state.pid_status is PidStatus.STANDBY
    assert cluster.connect().dead_end


def test_kill_the_walreceiver_the_postmaster_waits_for_the_startup_process_to_ask() -> None:
    cluster = hot_standby()
    first = cluster.pid(ChildKind.WALRECEIVER)
    cluster.kill(ChildKind.WALRECEIVER, Sig.TERM)  # FATAL ... due to administrator command: exit 1
    cluster.advance(120)
    assert "walreceiver" not in cluster.pids(), "the walreceiver is no keep-alive"
    assert trace(cluster)[2:] == [], "an exit 1 of the walreceiver is logged at DEBUG1 only"
    cluster.pmsignal(PMSignalReason.START_WALRECEIVER)  # wal_retrieve_retry_interval later
    assert cluster.pid(ChildKind.WALRECEIVER) != first
    assert cluster.state.pm_state is PMState.HOT_STANDBY


def test_stop_the_primary_the_walreceiver_keeps_failing_and_the_standby_stays_up() -> None:
    cluster = hot_standby()
    trace(cluster)
    for _attempt in range(3):  # could not connect to the primary server: exit 1, asked again
        cluster.exit(cluster.pid(ChildKind.WALRECEIVER), code=1)
        cluster.advance(5)
        cluster.pmsignal(PMSignalReason.START_WALRECEIVER)
    assert trace(cluster) == []
    assert cluster.state.pm_state is PMState.HOT_STANDBY and not cluster.state.fatal_error


def test_restart_the_primary_streaming_resumes_with_a_new_walreceiver() -> None:
    cluster = hot_standby()
    failed = cluster.pid(ChildKind.WALRECEIVER)
    cluster.exit(failed, code=1)
    cluster.pmsignal(PMSignalReason.START_WALRECEIVER)
    assert cluster.pid(ChildKind.WALRECEIVER) != failed
    assert trace(cluster)[1:] == [("PM_RECOVERY", READ_ONLY)]


def test_promote_ends_recovery_and_the_standby_runs_as_a_primary() -> None:
    cluster = hot_standby()
    trace(cluster)
    startup = cluster.pid(ChildKind.STARTUP)
    cluster.kill(ChildKind.WALRECEIVER, Sig.TERM)  # the startup process stops it first
    cluster.pmsignal(promote_file=True)  # SIGUSR2 to startup: it exits 0
    assert (startup, ChildKind.STARTUP, Sig.USR2) in cluster.signals
    assert trace(cluster) == [("PM_RUN", READY)]
    assert cluster.state.pm_state is PMState.RUN
    assert {"walwriter", "autovacuum launcher"} <= set(cluster.pids())
    assert "walreceiver" not in cluster.pids()
    cluster.pmsignal(PMSignalReason.START_WALRECEIVER)
    assert "walreceiver" not in cluster.pids(), "MaybeStartWalReceiver: not in PM_RUN"


def test_crash_of_the_standby_startup_process_shuts_the_standby_down() -> None:
    """reaper S4: the startup process was not SIGNALED, so StartupStatus becomes CRASHED,
    HandleChildCrash stops everyone, and at PM_NO_CHILDREN T9 ends the postmaster."""
    cluster = hot_standby()
    trace(cluster)
    cluster.connect()
    startup = cluster.kill(ChildKind.STARTUP, Sig.KILL)
    assert trace(cluster) == [
        ("PM_HOT_STANDBY", f"startup process (PID {startup}) was terminated by signal 9: Killed"),
        ("PM_HOT_STANDBY", "terminating any other active server processes"),
        ("PM_NO_CHILDREN", "shutting down due to startup process failure"),
    ]
    assert cluster.state.startup_status is StartupStatus.CRASHED
    assert cluster.exit_code == 1


def test_crash_of_the_walreceiver_is_a_crash_cycle_of_the_standby() -> None:
    cluster = hot_standby()
    trace(cluster)
    walreceiver = cluster.kill(ChildKind.WALRECEIVER, Sig.KILL)
    assert trace(cluster) == [
        ("PM_HOT_STANDBY", f"WAL receiver process (PID {walreceiver}) was terminated by signal 9: Killed"),
        ("PM_HOT_STANDBY", "terminating any other active server processes"),
        ("PM_NO_CHILDREN", "all server processes terminated; reinitializing"),
    ]
    assert cluster.state.pm_state is PMState.STARTUP, "a new startup process: the standby starts over"
    cluster.pmsignal(PMSignalReason.RECOVERY_STARTED)
    cluster.pmsignal(PMSignalReason.START_WALRECEIVER)
    cluster.pmsignal(PMSignalReason.BEGIN_HOT_STANDBY)
    assert cluster.state.pm_state is PMState.HOT_STANDBY and not cluster.state.fatal_error


def test_fast_shutdown_of_the_primary_spares_the_walsender_until_the_checkpoint() -> None:
    cluster = SimulatedCluster().start_and_run()
    walsender = cluster.connect()
    become_walsender(cluster, walsender)
    assert cluster.state.children[walsender.id].kind is ChildKind.WALSENDER
    cluster.stop(ChildKind.CHECKPOINTER)  # hold the shutdown checkpoint to look at PM_SHUTDOWN
    cluster.signal(Sig.INT)
    assert cluster.state.pm_state is PMState.SHUTDOWN
    assert not any(pid == walsender.pid for pid, _, _ in cluster.signals), "STOP_BACKENDS spares it"
    checkpointer = cluster.pid(ChildKind.CHECKPOINTER)
    cluster.procs[cluster.child(ChildKind.CHECKPOINTER).id].stopped = False
    cluster.exit(checkpointer, code=0)  # the shutdown checkpoint is written
    cluster.settle()
    assert (walsender.pid, ChildKind.WALSENDER, Sig.USR2) in cluster.signals
    assert cluster.exit_code == 0, "the walsender sent the rest of the WAL and exited 0"


def test_max_wal_senders_refusal_is_an_ordinary_exit_1() -> None:
    """The FATAL "number of requested standby connections exceeds max_wal_senders" comes from
    the connection child itself: to the postmaster it is a backend's exit 1."""
    cluster = SimulatedCluster(Config(max_wal_senders=0)).start_and_run()
    trace(cluster)
    refused = cluster.connect()
    cluster.exit(refused.pid, code=1)
    assert trace(cluster) == [] and cluster.state.pm_state is PMState.RUN


def test_a_walsender_dying_on_sigquit_is_a_crash_of_the_primary() -> None:
    cluster = SimulatedCluster().start_and_run()
    walsender = cluster.connect()
    become_walsender(cluster, walsender)
    trace(cluster)
    cluster.exit(walsender.pid, code=2)  # SIGQUIT from outside: _exit(2), nothing logged by it
    assert trace(cluster)[:2] == [
        ("PM_RUN", f"server process (PID {walsender.pid}) exited with exit code 2"),
        ("PM_RUN", "terminating any other active server processes"),
    ]
