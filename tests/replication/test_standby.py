"""A pgtop primary and its pgtop standby, for real: base backup, streaming, hot standby, the
walreceiver's deaths and retries, the primary's shutdown and restart, promotion, a crash of
the standby's startup process and max_wal_senders. What is checked is what a user sees: log
lines (PostgreSQL 15's, checked on a real primary/standby pair), states, PIDs, query results
and SQLSTATEs, process titles."""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from standby_support import Standby, connect

from pgtop.storage.controlfile import read_control_file
from pgtop.storage.lsn import parse_lsn

LSN = r"[0-9A-F]+/[0-9A-F]+"
RETRY_MS = 1500  # wal_retrieve_retry_interval for these tests (default 5000)
DEADLINE = 20.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except psycopg.OperationalError:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling a condition, with a deadline


def query(cluster: Any, sql: str) -> list[tuple[Any, ...]]:
    with connect(cluster) as session:
        return session.execute(sql).fetchall()


def execute(cluster: Any, sql: str) -> None:
    with connect(cluster) as session:
        session.execute(sql)


def log_time(line: str) -> float:
    """The %m timestamp at the start of a log line, in seconds."""
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
    return stamp.replace(tzinfo=datetime.UTC).timestamp()


def title(pid: int) -> str:
    return " ".join(psutil.Process(pid).cmdline()).strip()


def kind_pids(cluster: Any, kind: str) -> list[int]:
    return [c["pid"] for c in cluster.status()["children"] if c["kind"] == kind and c["pid"]]


@pytest.fixture
def primary(make_cluster: Any) -> Any:
    cluster = make_cluster().start()
    execute(cluster, "create table t (a int)")
    execute(cluster, "insert into t values (1)")  # in the base backup
    return cluster


@pytest.fixture
def standby(primary: Any, make_standby: Any) -> Standby:
    standby = make_standby(primary, wal_retrieve_retry_interval=RETRY_MS).start_standby()
    standby.wait_for_log("started streaming WAL from primary")
    return standby


def in_order(cluster: Any, patterns: list[str], after: int = 0) -> list[int]:
    """Indexes of log lines matching each pattern, each after the previous one."""
    found = []
    for pattern in patterns:
        after = cluster.wait_for_log(pattern, after=after) + 1
        found.append(after - 1)
    return found


def test_rows_written_on_the_primary_appear_on_the_hot_standby(primary: Any, standby: Standby) -> None:
    in_order(standby, [
        r"LOG:  database system was interrupted; last known up at ",
        r"LOG:  entering standby mode$",
        rf"LOG:  redo starts at {LSN}$",
        rf"LOG:  consistent recovery state reached at {LSN}$",
        r"LOG:  database system is ready to accept read-only connections$",
        rf"LOG:  started streaming WAL from primary at {LSN} on timeline 1$",
    ])
    assert standby.pid_status() == "ready"
    assert query(standby, "select a from t") == [(1,)]
    execute(primary, "insert into t values (2)")
    wait_until(lambda: query(standby, "select a from t order by a") == [(1,), (2,)], "the row on the standby")
    assert query(standby, "select pg_is_in_recovery()") == [(True,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as refused:
        execute(standby, "insert into t values (3)")
    assert refused.value.sqlstate == "25006"
    assert str(refused.value) == "cannot execute INSERT in a read-only transaction"
    [walsender] = kind_pids(primary, "walsender")
    assert re.fullmatch(rf"pgtop: walsender \S+ 127\.0\.0\.1\(\d+\) streaming {LSN}", title(walsender))
    walreceiver = standby.children()["walreceiver"]
    assert re.fullmatch(rf"pgtop: walreceiver streaming {LSN}", title(walreceiver))


def test_a_killed_walreceiver_is_asked_for_again_by_the_startup_process(primary: Any, standby: Standby) -> None:
    """The postmaster does not keep the walreceiver alive; the startup process asks again:
    at once after a first failure, then no sooner than wal_retrieve_retry_interval after the
    previous one (PostgreSQL's last_fail_time; checked live on 15)."""
    first = standby.children()["walreceiver"]
    mark = len(standby.lines)
    os.kill(first, signal.SIGTERM)
    failed = standby.wait_for_log(r"FATAL:  terminating walreceiver process due to administrator command$", after=mark)
    restarted = standby.wait_for_log(r"started streaming WAL from primary", after=failed)
    assert log_time(standby.lines[restarted]) - log_time(standby.lines[failed]) < RETRY_MS / 1000
    second = wait_until(lambda: standby.children().get("walreceiver"), "a new walreceiver")
    assert second != first
    os.kill(second, signal.SIGTERM)  # a second failure within the interval: the next waits
    again = standby.wait_for_log(r"started streaming WAL from primary", after=restarted + 1)
    assert log_time(standby.lines[again]) - log_time(standby.lines[failed]) >= RETRY_MS / 1000
    third = wait_until(lambda: standby.children().get("walreceiver"), "a third walreceiver")
    assert third not in (first, second)
    assert standby.status()["pm_state"] == "PM_HOT_STANDBY"
    execute(primary, "insert into t values (2)")
    wait_until(lambda: query(standby, "select count(*) from t") == [(2,)], "streaming after the restarts")


def test_a_walsender_ends_with_fatal_on_sigterm_and_silently_on_sigquit(primary: Any, standby: Standby) -> None:
    [walsender] = kind_pids(primary, "walsender")
    mark, primary_mark = len(standby.lines), len(primary.lines)
    os.kill(walsender, signal.SIGTERM)  # pg_terminate_backend()
    primary.wait_for_log(r"FATAL:  terminating connection due to administrator command$", after=primary_mark)
    standby.wait_for_log(r"FATAL:  could not receive data from WAL stream: FATAL:  terminating connection due "
                         r"to administrator command$", after=mark)
    standby.wait_for_log(r"started streaming WAL from primary", after=mark)
    [walsender] = wait_until(lambda: [p for p in kind_pids(primary, "walsender") if p != walsender], "a new walsender")
    assert primary.status()["pm_state"] == "PM_RUN", "a walsender's FATAL is no crash"
    mark, primary_mark = len(standby.lines), len(primary.lines)
    os.kill(walsender, signal.SIGQUIT)  # _exit(2) without a word: the primary's crash cycle
    in_order(primary, [
        rf"LOG:  server process \(PID {walsender}\) exited with exit code 2$",
        r"LOG:  terminating any other active server processes$",
        r"LOG:  all server processes terminated; reinitializing$",
        r"LOG:  database system is ready to accept connections$",
    ], after=primary_mark)
    assert not any(f"[{walsender}]" in line for line in primary.lines[primary_mark:])
    standby.wait_for_log(r"FATAL:  could not receive data from WAL stream: server closed the connection "
                         r"unexpectedly$", after=mark)
    standby.wait_for_log(r"started streaming WAL from primary", after=mark)
    execute(primary, "insert into t values (2)")
    wait_until(lambda: query(standby, "select count(*) from t") == [(2,)], "streaming after the primary's crash")


def test_the_standby_outlives_its_primary_and_follows_it_again(primary: Any, standby: Standby) -> None:
    mark = len(standby.lines)
    primary.signal(signal.SIGINT)  # fast shutdown: the walsender is spared until the checkpoint
    assert primary.exit_code() == 0
    assert not any("server process" in line for line in primary.messages()), "the walsender exited 0"
    end = standby.wait_for_log(r"LOG:  replication terminated by primary server$", after=mark)
    detail = re.search(rf"DETAIL:  End of WAL reached on timeline 1 at ({LSN})\.$", standby.lines[end + 1])
    assert detail is not None, standby.lines[end + 1]
    shutdown_checkpoint = read_control_file(str(primary.datadir)).checkpoint
    assert parse_lsn(detail.group(1)) > shutdown_checkpoint, "the shutdown checkpoint was streamed"
    in_order(standby, [
        r"FATAL:  could not send end-of-streaming message to primary: server closed the connection unexpectedly",
        (rf"FATAL:  could not connect to the primary server: connection to server at \"127\.0\.0\.1\", port "
         rf"{primary.port} failed: Connection refused"),
        r"FATAL:  could not connect to the primary server: ",  # every wal_retrieve_retry_interval
    ], after=end)
    assert standby.status()["pm_state"] == "PM_HOT_STANDBY"
    assert query(standby, "select a from t") == [(1,)], "read-only queries go on"
    mark = len(standby.lines)
    primary.start()
    standby.wait_for_log(r"started streaming WAL from primary", after=mark)
    execute(primary, "insert into t values (2)")
    wait_until(lambda: query(standby, "select count(*) from t") == [(2,)], "streaming from the restarted primary")


def test_promote_makes_the_standby_a_writable_primary(primary: Any, standby: Standby) -> None:
    execute(primary, "insert into t values (2)")
    wait_until(lambda: query(standby, "select count(*) from t") == [(2,)], "the row on the standby")
    mark, primary_mark = len(standby.lines), len(primary.lines)
    walreceiver = standby.children()["walreceiver"]
    promoted = subprocess.run([sys.executable, "-m", "pgtop", "ctl", "-D", str(standby.datadir), "promote"],
                              check=True, capture_output=True, text=True, timeout=DEADLINE)
    assert promoted.stdout == "server signaled to promote\n"
    in_order(standby, [
        r"LOG:  received promote request$",
        r"FATAL:  terminating walreceiver process due to administrator command$",
        rf"LOG:  redo done at {LSN} system usage: ",
        r"LOG:  selected new timeline ID: 2$",
        r"LOG:  archive recovery complete$",
        r"LOG:  database system is ready to accept connections$",
    ], after=mark)
    status = standby.wait_for(lambda s: s["pm_state"] == "PM_RUN")
    assert "walreceiver" not in standby.children(status)
    assert not psutil.pid_exists(walreceiver) or psutil.Process(walreceiver).status() == psutil.STATUS_ZOMBIE
    execute(standby, "insert into t values (3)")
    assert query(standby, "select a from t order by a") == [(1,), (2,), (3,)]
    assert query(standby, "select pg_is_in_recovery()") == [(False,)]
    assert not (Path(standby.datadir) / "standby.signal").exists()
    # The walreceiver said goodbye (Terminate): its walsender leaves without a word.
    wait_until(lambda: kind_pids(primary, "walsender") == [], "the walsender gone")
    assert not any("unexpected EOF" in line for line in primary.lines[primary_mark:])


def test_a_crash_of_the_standby_startup_process_shuts_the_standby_down(primary: Any, standby: Standby) -> None:
    """reaper S4: killed from outside, the startup process was not SIGNALED by the
    postmaster, so StartupStatus is CRASHED; after the crash cycle's SIGQUITs the postmaster
    ends with exit 1 instead of reinitialising (as PostgreSQL 15 does, checked live)."""
    mark, primary_mark = len(standby.lines), len(primary.lines)
    startup = standby.kill_child("startup", signal.SIGKILL)
    in_order(standby, [
        rf"LOG:  startup process \(PID {startup}\) was terminated by signal 9: Killed$",
        r"LOG:  terminating any other active server processes$",
        r"LOG:  shutting down due to startup process failure$",
        r"LOG:  database system is shut down$",
    ], after=mark)
    assert standby.exit_code() == 1
    # Its walreceiver died on SIGQUIT without a goodbye.
    primary.wait_for_log(r"LOG:  unexpected EOF on standby connection$", after=primary_mark)
    assert primary.status()["pm_state"] == "PM_RUN"


def test_max_wal_senders_is_enforced_with_postgresqls_message(make_cluster: Any, tmp_path: Path) -> None:
    primary = make_cluster(max_wal_senders=1).start()

    def init_standby(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pgtop", "init", "-D", str(tmp_path / name), "--port", "5999",
             "--standby-of", f"127.0.0.1:{primary.port}"],
            check=False, capture_output=True, text=True, timeout=DEADLINE,
        )

    made = init_standby("first")  # the backup's walsender is the only one, then it is gone
    assert made.returncode == 0, made.stderr
    assert f"It is a standby: it streams WAL from its primary (host=127.0.0.1 port={primary.port})" in made.stdout
    assert (tmp_path / "first" / "standby.signal").exists()
    wait_until(lambda: kind_pids(primary, "walsender") == [], "the backup's walsender gone")
    # Hold the only walsender place with a streaming replication connection.
    holder = psycopg.connect(host="127.0.0.1", port=primary.port, user="postgres", dbname="replication",
                             replication="true", autocommit=True, connect_timeout=10)
    try:
        wait_until(lambda: kind_pids(primary, "walsender"), "the holder relabelled as a walsender")
        mark = len(primary.lines)
        refused = init_standby("second")
        assert refused.returncode == 1
        assert refused.stderr.startswith(
            f'pgtop: connection to server at "127.0.0.1", port {primary.port} failed: FATAL:  number of '
            "requested standby connections exceeds max_wal_senders (currently 1)"
        ), refused.stderr
        assert not (tmp_path / "second").exists(), "a failed init leaves nothing behind"
        primary.wait_for_log(r"FATAL:  number of requested standby connections exceeds max_wal_senders "
                             r"\(currently 1\)$", after=mark)
    finally:
        holder.close()


def test_without_hot_standby_the_standby_streams_but_takes_no_clients(primary: Any, make_standby: Any) -> None:
    standby = make_standby(primary, hot_standby=False)
    standby.start(wait_ready=False)
    standby.wait_for_log(r"LOG:  started streaming WAL from primary at ")
    status = standby.wait_for(lambda s: s["pm_state"] == "PM_RECOVERY")
    assert status["pid_status"] == "standby"
    with pytest.raises(psycopg.OperationalError) as refused:
        connect(standby)
    assert "the database system is not accepting connections" in str(refused.value)
    assert "Hot standby mode is disabled." in str(refused.value)
    assert not any("read-only connections" in line for line in standby.lines)


def test_a_standby_stops_cleanly_and_starts_again_as_a_standby(primary: Any, standby: Standby) -> None:
    mark = len(standby.lines)
    standby.signal(signal.SIGINT)
    assert standby.exit_code() == 0
    in_order(standby, [
        r"LOG:  received fast shutdown request$",
        r"LOG:  aborting any active transactions$",
        r"FATAL:  terminating walreceiver process due to administrator command$",
        r"LOG:  shutting down$",
        r"LOG:  database system is shut down$",
    ], after=mark)
    execute(primary, "insert into t values (2)")  # written while the standby is down
    mark = len(standby.lines)
    standby.start_standby()
    in_order(standby, [
        r"LOG:  database system was shut down in recovery at ",
        r"LOG:  entering standby mode$",
        rf"LOG:  started streaming WAL from primary at {LSN} on timeline 1$",
    ], after=mark)
    wait_until(lambda: query(standby, "select a from t order by a") == [(1,), (2,)], "what it missed")


def test_a_new_primary_conninfo_restarts_the_walreceiver_and_a_stranger_is_refused(
    primary: Any, standby: Standby, make_cluster: Any
) -> None:
    stranger = make_cluster().start()  # another database system entirely
    mark = len(standby.lines)
    standby.configure(primary_conninfo=f"host=127.0.0.1 port={stranger.port}")
    standby.signal(signal.SIGHUP)
    in_order(standby, [
        r"FATAL:  terminating walreceiver process due to administrator command$",
        r"FATAL:  database system identifier differs between the primary and standby$",
    ], after=mark)
    line = standby.wait_for_log(r"DETAIL:  The primary's identifier is \d+, the standby's identifier is \d+\.$", after=mark)
    theirs = read_control_file(str(stranger.datadir)).system_identifier
    ours = read_control_file(str(primary.datadir)).system_identifier
    assert f"The primary's identifier is {theirs}, the standby's identifier is {ours}." in standby.lines[line]
    assert standby.status()["pm_state"] == "PM_HOT_STANDBY"
