"""What clients in a query see when the server stops (spec §3.2, §4.4, §7): each shutdown
mode with a client in `select pg_sleep(30)`, and a crash of another backend."""

from __future__ import annotations

import os
import re
import signal

import psycopg
import pytest
from support.cluster import Cluster

from .helpers import (
    Notice,
    Running,
    collect_notices,
    connect,
    raw_socket,
    read_until_closed,
    refusal,
    startup_packet,
)

CRASH_WARNING = Notice(
    "WARNING",
    "57P02",
    "terminating connection because of crash of another server process",
    "The postmaster has commanded this server process to roll back the current transaction and exit, "
    "because another server process exited abnormally and possibly corrupted shared memory.",
    "In a moment you should be able to reconnect to the database and repeat your command.",
)


def refusal_now(cluster: Cluster) -> dict[str, str]:
    sock = raw_socket(cluster)
    sock.sendall(startup_packet())
    try:
        return refusal(read_until_closed(sock))
    finally:
        sock.close()


def test_smart_shutdown_waits_for_the_client_and_refuses_new_ones(make_cluster) -> None:
    cluster = make_cluster().start()
    sleeper = Running(cluster, "select pg_sleep(30)")
    mark = len(cluster.lines)
    cluster.signal(signal.SIGTERM)
    cluster.wait_for_log("received smart shutdown request", after=mark)
    status = cluster.wait_for(lambda s: s["conns_allowed"] != "ALLOW_ALL_CONNS")
    assert status["pm_state"] == "PM_RUN" and status["pid_status"] == "stopping"

    error = refusal_now(cluster)
    assert (error["S"], error["C"], error["M"]) == ("FATAL", "57P03", "the database system is shutting down")
    cluster.wait_for_log(re.escape("FATAL:  the database system is shutting down"), after=mark)
    assert cluster.process is not None and cluster.process.poll() is None  # still waiting for the client

    # The client's session goes on; a cancel still works (its child is a dead_end, but
    # cancel requests come before the state check).
    sleeper.conn.cancel()
    sleeper.finish()
    assert sleeper.sqlstate == "57014"
    assert cluster.process.poll() is None
    sleeper.conn.close()  # the last client leaves: the shutdown proceeds
    at = cluster.wait_for_log(r"\] LOG:  shutting down$", after=mark)  # the checkpointer
    cluster.wait_for_log("database system is shut down", after=at)
    assert cluster.exit_code() == 0


def test_fast_shutdown_terminates_the_client_with_57p01(make_cluster) -> None:
    cluster = make_cluster().start()
    sleeper = Running(cluster, "select pg_sleep(30)")
    mark = len(cluster.lines)
    cluster.signal(signal.SIGINT)
    sleeper.finish()
    assert isinstance(sleeper.error, psycopg.errors.AdminShutdown)
    assert sleeper.sqlstate == "57P01"
    assert str(sleeper.error).startswith("terminating connection due to administrator command")
    assert cluster.exit_code() == 0
    log = cluster.messages()[mark:]
    expected = ["LOG:  received fast shutdown request", "LOG:  aborting any active transactions",
                "FATAL:  terminating connection due to administrator command", "LOG:  shutting down",
                "LOG:  database system is shut down"]  # fmt: skip
    assert [line for line in log if line in expected] == expected


def test_immediate_shutdown_warns_the_client_with_57p01(make_cluster) -> None:
    cluster = make_cluster().start()
    sleeper = Running(cluster, "select pg_sleep(30)")
    mark = len(cluster.lines)
    cluster.signal(signal.SIGQUIT)
    sleeper.finish()
    assert isinstance(sleeper.error, psycopg.OperationalError)  # the connection is gone
    assert sleeper.notices == [Notice("WARNING", "57P01", "terminating connection due to immediate shutdown command", None, None)]
    assert cluster.exit_code() == 0
    # Nothing else is logged: the warning goes to the client only.
    assert cluster.messages()[mark:] == ["LOG:  received immediate shutdown request", "LOG:  database system is shut down"]


def test_a_crash_warns_every_client_with_57p02(make_cluster) -> None:
    cluster = make_cluster().start()
    idle = connect(cluster, tcp=True)
    idle_notices = collect_notices(idle)
    busy = Running(cluster, "select pg_sleep(30)")
    victim = Running(cluster, "select pg_sleep(30)")
    mark = len(cluster.lines)
    os.kill(victim.pid, signal.SIGKILL)
    at = cluster.wait_for_log(re.escape(f"LOG:  server process (PID {victim.pid}) was terminated by signal 9: Killed"), after=mark)
    cluster.wait_for_log(re.escape("DETAIL:  Failed process was running: select pg_sleep(30)"), after=at)
    cluster.wait_for_log("terminating any other active server processes", after=at)

    busy.finish()
    assert isinstance(busy.error, psycopg.OperationalError)
    assert busy.notices == [CRASH_WARNING]
    with pytest.raises(psycopg.OperationalError):
        idle.execute("select 1")  # psycopg reads the warning, then finds the connection closed
    assert idle_notices == [CRASH_WARNING]
    idle.close()
    victim.finish()

    cluster.wait_for_log("all server processes terminated; reinitializing", after=at)
    cluster.wait_for_log("database system is ready to accept connections", after=at)
    assert not [line for line in cluster.messages()[mark:] if "terminating connection because of crash" in line]
    with connect(cluster) as conn:  # "In a moment you should be able to reconnect"
        assert conn.execute("select 1").fetchone() == (1,)
