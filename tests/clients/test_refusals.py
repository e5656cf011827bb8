"""Every way a connection is refused (spec §6), as the client sees it (message and SQLSTATE)
and as the server log records it (the FATAL line), produced in the real postmaster states:
starting up, in recovery mode, not accepting connections, too many clients at both levels."""

from __future__ import annotations

import os
import re
import signal

from support.cluster import Cluster

from .helpers import (
    connect,
    raw_socket,
    read_until_closed,
    refusal,
    startup_packet,
    wait_until,
)


def assert_refused(cluster: Cluster, sqlstate: str, message: str, detail: str | None = None) -> None:
    """A connection attempt gets this FATAL: psql prints it (libpq keeps no SQLSTATE for a
    failed connection, so the raw ErrorResponse shows the fields), and the log has it."""
    mark = len(cluster.lines)
    sock = raw_socket(cluster, tcp=True)
    sock.sendall(startup_packet())
    error = refusal(read_until_closed(sock))
    sock.close()
    assert (error["S"], error["V"], error["C"], error["M"], error.get("D")) == ("FATAL", "FATAL", sqlstate, message, detail)
    cluster.wait_for_log(re.escape(f"] FATAL:  {message}") + "$", after=mark)

    shown = cluster.psql("-c", "select 1")
    assert shown.returncode == 2
    assert f"FATAL:  {message}\n" + (f"DETAIL:  {detail}\n" if detail else "") in shown.stderr


def crashed_with_wal_to_replay(make_cluster, **settings: object) -> Cluster:  # type: ignore[no-untyped-def]
    """A cluster stopped by an immediate shutdown after some commits: its next start replays
    WAL, slowly with pgtop.redo_delay, so the startup process can be caught at work."""
    cluster = make_cluster(**settings).start()
    with connect(cluster) as conn:
        conn.execute("create table t (i int)")
        for i in range(3):
            conn.execute("insert into t values (%s)", (i,))
    cluster.signal(signal.SIGQUIT)
    assert cluster.exit_code() == 0
    cluster.configure(**{"pgtop.redo_delay": 2000})  # two seconds per WAL record
    return cluster


def finish_redo(cluster: Cluster, mark: int, ready: str = "database system is ready to accept connections") -> None:
    cluster.configure(**{"pgtop.redo_delay": 0})
    cluster.signal(signal.SIGHUP)  # the startup process takes it from the next record on
    cluster.wait_for_log(ready, after=mark)


def test_starting_up_while_the_startup_process_replays(make_cluster) -> None:
    cluster = crashed_with_wal_to_replay(make_cluster)
    mark = len(cluster.lines)
    cluster.start(wait_ready=False)
    cluster.wait_for_log("redo starts at", after=mark)
    assert cluster.status()["pm_state"] == "PM_STARTUP"
    assert_refused(cluster, "57P03", "the database system is starting up")
    finish_redo(cluster, mark)
    with connect(cluster) as conn:
        assert conn.execute("select count(*) from t").fetchone() == (3,)


def test_not_accepting_connections_in_a_standby_without_hot_standby(make_cluster) -> None:
    cluster = crashed_with_wal_to_replay(make_cluster, hot_standby=False)
    (cluster.datadir / "standby.signal").touch()
    mark = len(cluster.lines)
    cluster.start(wait_ready=False)
    cluster.wait_for(lambda status: status["pm_state"] == "PM_RECOVERY")
    assert_refused(cluster, "57P03", "the database system is not accepting connections", "Hot standby mode is disabled.")
    assert cluster.pid_status() == "standby"
    cluster.wait_for_log("entering standby mode", after=mark)


def test_in_recovery_mode_while_a_crash_cycle_waits_for_a_stopped_child(make_cluster) -> None:
    cluster = make_cluster().start()
    checkpointer = cluster.children()["checkpointer"]
    os.kill(checkpointer, signal.SIGSTOP)  # it will not answer the crash's SIGQUIT
    try:
        mark = len(cluster.lines)
        cluster.kill_child("background writer", signal.SIGKILL)
        cluster.wait_for_log("terminating any other active server processes", after=mark)
        assert cluster.status()["pm_state"] == "PM_WAIT_BACKENDS"
        assert_refused(cluster, "57P03", "the database system is in recovery mode")
    finally:
        os.kill(checkpointer, signal.SIGCONT)  # now it takes its SIGQUIT and the cycle goes on
    cluster.wait_for_log("all server processes terminated; reinitializing", after=mark)
    cluster.wait_for_log("database system is ready to accept connections", after=mark)
    with connect(cluster) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_too_many_clients_when_every_pgproc_is_taken(make_cluster) -> None:
    cluster = make_cluster(max_connections=2, superuser_reserved_connections=0).start()
    with connect(cluster) as first, connect(cluster, tcp=True) as second:
        assert_refused(cluster, "53300", "sorry, too many clients already")
        assert first.execute("select 1").fetchone() == second.execute("select 1").fetchone() == (1,)
    # The slots are free again once their sessions end.
    wait_until(lambda: not cluster.backend_pids(), what="backends gone")
    with connect(cluster) as first, connect(cluster) as second:
        assert first.info.backend_pid != second.info.backend_pid


def test_too_many_clients_when_the_postmaster_child_table_is_full(make_cluster) -> None:
    # MaxLivePostmasterChildren = 2 * (1 + 1 + 1 + 0 + 1) = 8: the logical replication
    # launcher and seven connections still in their startup packet fill it, although
    # not one session (of max_connections=1) has started.
    cluster = make_cluster(max_connections=1, superuser_reserved_connections=0, autovacuum_max_workers=1,
                           max_wal_senders=0, max_worker_processes=1).start()  # fmt: skip
    silent = [raw_socket(cluster) for _ in range(7)]
    try:
        wait_until(lambda: len(cluster.backend_pids()) == 7, what="seven connection children")
        assert_refused(cluster, "53300", "sorry, too many clients already")
    finally:
        for sock in silent:
            sock.close()
    wait_until(lambda: not cluster.backend_pids(), what="the silent children gone")
    with connect(cluster) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_a_refused_client_changes_nothing_for_the_others(make_cluster) -> None:
    cluster = make_cluster(max_connections=1, superuser_reserved_connections=0).start()
    before = cluster.children()
    with connect(cluster) as conn:
        for _ in range(3):
            sock = raw_socket(cluster)
            sock.sendall(startup_packet())
            assert b"sorry, too many clients already" in read_until_closed(sock)
            sock.close()
        assert conn.execute("select 'unharmed'").fetchone() == ("unharmed",)
    status = cluster.status()
    assert status["pm_state"] == "PM_RUN" and cluster.children(status) == before
