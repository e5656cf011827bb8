"""What a real server's process titles and log lines say, and following a log file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgtop.attach.logfile import LogFollower, current_logfile, log_time, parse_log_line
from pgtop.attach.logrules import Fact, classify
from pgtop.attach.titles import parse_title
from pgtop.core.vocabulary import ChildKind, ExitStatus, LogLevel, Shutdown


@pytest.mark.parametrize(
    ("title", "kind", "label"),
    [
        ("postgres: checkpointer ", ChildKind.CHECKPOINTER, "checkpointer"),
        ("postgres: background writer ", ChildKind.BGWRITER, "background writer"),
        ("postgres: walwriter ", ChildKind.WALWRITER, "walwriter"),
        ("postgres: autovacuum launcher ", ChildKind.AUTOVAC_LAUNCHER, "autovacuum launcher"),
        ("postgres: logical replication launcher ", ChildKind.BGWORKER, "logical replication launcher"),
        ("postgres: main: checkpointer ", ChildKind.CHECKPOINTER, "checkpointer"),
        ("postgres: main: logical replication launcher ", ChildKind.BGWORKER, "logical replication launcher"),
        ("postgres: startup recovering 000000010000000000000001", ChildKind.STARTUP, "startup"),
        ("postgres: logger ", ChildKind.SYSLOGGER, "logger"),
        ("postgres: archiver last was 00000001000000000000000A", ChildKind.ARCHIVER, "archiver"),
        ("postgres: walsender repl 10.0.0.2(50412) streaming 0/3000148", ChildKind.WALSENDER, "walsender"),
        ("postgres: autovacuum worker shop", ChildKind.AUTOVAC_WORKER, "autovacuum worker"),
        ("postgres: TimescaleDB Background Worker Scheduler", ChildKind.BGWORKER, "TimescaleDB Background Worker Scheduler"),
    ],
)
def test_a_title_names_the_backend_type(title, kind, label):
    parsed = parse_title(title)
    assert (parsed.kind, parsed.label) == (kind, label)


def test_a_session_title_gives_user_database_client_and_state():
    parsed = parse_title("postgres: main: alice shop 10.0.0.7(51234) idle in transaction")
    assert parsed.kind is ChildKind.BACKEND
    assert (parsed.user, parsed.database, parsed.host, parsed.state) == ("alice", "shop", "10.0.0.7(51234)", "idle in transaction")
    assert parsed.cluster_name == "main"
    local = parse_title("postgres: postgres postgres [local] SELECT")
    assert (local.user, local.host, local.state) == ("postgres", "[local]", "SELECT")


def test_a_child_still_showing_the_postmasters_command_line_is_a_connection_starting():
    parsed = parse_title("/usr/lib/postgresql/15/bin/postgres -D /srv/pg/data")
    assert (parsed.kind, parsed.state) == (ChildKind.BACKEND, "starting")


@pytest.mark.parametrize(
    ("message", "fact"),
    [
        ("database system is ready to accept connections", Fact.READY),
        ("database system is ready to accept read-only connections", Fact.READY_READ_ONLY),
        ("terminating any other active server processes", Fact.TERMINATING_OTHERS),
        ("all server processes terminated; reinitializing", Fact.REINITIALIZING),
        ("issuing SIGKILL to recalcitrant children", Fact.SIGKILL_ISSUED),
        ("shutting down", Fact.CHECKPOINTER_SHUTTING_DOWN),
        ("database system is shut down", Fact.SHUT_DOWN),
        ("abnormal database system shutdown", Fact.ABNORMAL_END),
        ("received SIGHUP, reloading configuration files", Fact.RELOAD),
        ("redo starts at 0/1500790", Fact.REDO_STARTS),
    ],
)
def test_the_postmasters_messages_are_facts(message, fact):
    assert classify(LogLevel.LOG, message, 1).fact is fact


@pytest.mark.parametrize(("word", "level"), [("smart", Shutdown.SMART), ("fast", Shutdown.FAST), ("immediate", Shutdown.IMMEDIATE)])
def test_a_shutdown_request_carries_its_level(word, level):
    found = classify(LogLevel.LOG, f"received {word} shutdown request", 1)
    assert (found.fact, found.shutdown) == (Fact.SHUTDOWN_REQUEST, level)


def test_logchildexit_gives_pid_and_status():
    killed = classify(LogLevel.LOG, "checkpointer process (PID 5995) was terminated by signal 9: Killed", 1)
    assert (killed.fact, killed.pid, killed.status, killed.name) == (Fact.CHILD_EXIT, 5995, ExitStatus.killed(9), "checkpointer process")
    worker = classify(LogLevel.LOG, 'background worker "logical replication launcher" (PID 6448) exited with exit code 1', 1)
    assert (worker.pid, worker.status, worker.bgworker) == (6448, ExitStatus.exited(1), "logical replication launcher")


def test_a_fatal_line_means_its_process_exits_with_1():
    fatal = classify(LogLevel.FATAL, "terminating connection due to administrator command", 6846)
    assert (fatal.fact, fatal.pid, fatal.status) == (Fact.FATAL, 6846, ExitStatus.exited(1))


def test_other_lines_say_nothing():
    assert classify(LogLevel.LOG, "checkpoint starting: time", 1) is None


def test_a_log_line_keeps_the_servers_time_pid_and_level():
    record = parse_log_line("2026-11-22 16:20:23.902 UTC [5992] LOG:  terminating any other active server processes", 0.0)
    assert (record.pid, record.level, record.message) == (5992, LogLevel.LOG, "terminating any other active server processes")
    assert record.at == pytest.approx(1795364423.902)
    assert log_time("no timestamp here") is None


def test_the_collectors_current_file_is_found(tmp_path):
    (tmp_path / "current_logfiles").write_text("stderr log/postgresql-2026-11-22_162016.log\ncsvlog log/postgresql.csv\n")
    assert current_logfile(tmp_path) == tmp_path / "log" / "postgresql-2026-11-22_162016.log"
    assert current_logfile(tmp_path / "missing") is None


def test_the_follower_reads_complete_lines_and_survives_rotation(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("old line\n")
    follower = LogFollower(explicit=log, data_dir=None, postmaster_pid=os.getpid())
    assert follower.locate() == log and follower.how == "--log"
    assert follower.backlog() == ["old line"]
    with open(log, "a") as out:
        out.write("first\nsecond, half")
    assert follower.poll() == ["first"]
    with open(log, "a") as out:
        out.write(" done\n")
    assert follower.poll() == ["second, half done"]
    log.rename(tmp_path / "server.log.1")  # logrotate: a new file under the same name
    log.write_text("after rotation\n")
    assert follower.poll() == ["after rotation"]
    follower.close()


def test_an_unreadable_log_is_a_stated_problem(tmp_path):
    follower = LogFollower(explicit=Path(tmp_path / "nope.log"), data_dir=None, postmaster_pid=os.getpid())
    assert follower.locate() is None
    assert follower.problem == f"cannot read the log {tmp_path / 'nope.log'}: No such file or directory"
