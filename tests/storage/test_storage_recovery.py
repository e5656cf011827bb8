"""The startup process's recovery: PostgreSQL's log lines, in order, and the data after it."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from storage_helpers import messages, recover

from pgtop.core.vocabulary import LogLevel
from pgtop.storage.checkpoint import checkpoint
from pgtop.storage.checkpoint_log import CheckpointResult
from pgtop.storage.controlfile import DBState, read_control_file, update_control_file
from pgtop.storage.database import Database
from pgtop.storage.errors import ControlFileMissing, RecoveryError, StorageError
from pgtop.storage.lsn import WAL_SEGMENT_SIZE, format_lsn, segment_file_name, str_time
from pgtop.storage.recovery import StartupRecovery
from pgtop.storage.startup_events import (
    ConsistentState,
    LogLine,
    RecoveryMode,
    RecoveryStarted,
    RedoProgress,
    WaitingForWal,
)
from pgtop.storage.wal import STATE_FILE, Wal
from pgtop.storage.walreader import read_raw

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
LSN = r"[0-9A-F]+/[0-9A-F]+"
USAGE = r"CPU: user: \d+\.\d\d s, system: \d+\.\d\d s, elapsed: \d+\.\d\d s"


def abandon(session: Database) -> None:
    """What a SIGKILL does to a session: its open transaction just stops (no ABORT record)."""
    session._txn = None
    session.close()


def sqlstate_of(call, *args) -> str:
    with pytest.raises(StorageError) as raised:
        call(*args)
    return raised.value.sqlstate


def assert_lines(actual: list[str], patterns: list[str]) -> None:
    assert len(actual) == len(patterns), actual
    for line, pattern in zip(actual, patterns):
        assert re.fullmatch(pattern, line), (line, pattern)


def test_first_start_after_initdb(datadir):
    events, outcome = recover(datadir)
    control = read_control_file(datadir)
    assert messages(events) == [f"database system was shut down at {str_time(control.checkpoint_time)}"]
    assert outcome.mode is RecoveryMode.NONE and control.state is DBState.DB_IN_PRODUCTION


def test_start_after_a_clean_shutdown(running):
    with Database(running) as session:
        session.create_table("t", [("id", "int")])
        session.insert("t", [(1,)])
    checkpoint(running, "shutdown")
    shut_down_at = read_control_file(running).time
    events, _ = recover(running)
    assert messages(events) == [f"database system was shut down at {str_time(shut_down_at)}"]
    with Database(running) as session:
        assert session.rows("t") == [(1,)]


def test_crash_recovery_keeps_committed_and_drops_uncommitted_rows(running):
    last_known_up = read_control_file(running).time
    committed, in_flight = Database(running), Database(running)
    committed.create_table("t", [("id", "int")])
    committed.insert("t", [(1,), (2,)])
    in_flight.begin()
    in_flight.insert("t", [(3,)])
    abandon(in_flight)
    committed.close()
    events, outcome = recover(running, log_checkpoints=True)
    assert_lines(messages(events), [
        f"database system was interrupted; last known up at {re.escape(str_time(last_known_up))}",
        "database system was not properly shut down; automatic recovery in progress",
        f"redo starts at {LSN}",
        f"invalid record length at {LSN}: wanted 24, got 0",
        f"redo done at {LSN} system usage: {USAGE}",
        "checkpoint starting: end-of-recovery immediate",
        r"checkpoint complete: wrote \d+ buffers .*",
    ])
    assert [e for e in events if isinstance(e, RecoveryStarted)] == [RecoveryStarted(archive=False)]
    assert outcome.mode is RecoveryMode.CRASH and outcome.records_replayed == 5
    assert read_control_file(running).state is DBState.DB_IN_PRODUCTION
    with Database(running) as session:
        assert session.rows("t") == [(1,), (2,)]
        session.insert("t", [(4,)])  # the WAL continues where recovery found its end
    recover(running)
    with Database(running) as session:
        assert session.rows("t") == [(1,), (2,), (4,)]


def test_redo_is_not_required_when_nothing_was_written(running):
    events, outcome = recover(running)
    assert_lines(messages(events), [
        f"database system was interrupted; last known up at {TIME}",
        "database system was not properly shut down; automatic recovery in progress",
        f"invalid record length at {LSN}: wanted 24, got 0",
        "redo is not required",
    ])
    assert outcome.records_replayed == 0


@pytest.mark.parametrize("state, expected, hint", [
    (DBState.DB_SHUTDOWNING, f"database system shutdown was interrupted; last known up at {TIME}", None),
    (DBState.DB_IN_CRASH_RECOVERY, f"database system was interrupted while in recovery at {TIME}",
     "This probably means that some data is corrupted and you will have to use the last backup for recovery."),
    (DBState.DB_IN_ARCHIVE_RECOVERY, f"database system was interrupted while in recovery at log time {TIME}",
     "If this has occurred more than once some data might be corrupted and you might need to choose an earlier recovery target."),
])
def test_the_first_line_says_what_pg_control_says(running, state, expected, hint):
    update_control_file(running, state=state)
    events, _ = recover(running)
    first = events[0]
    assert isinstance(first, LogLine) and re.fullmatch(expected, first.message) and first.hint == hint
    assert messages(events)[1] == "database system was not properly shut down; automatic recovery in progress"


def test_a_torn_commit_record_means_the_transaction_never_committed(running):
    with Database(running) as session:
        session.create_table("t", [("id", "int")])
        session.insert("t", [(1,)])
        session.insert("t", [(2,)])
        end = session._wal.insert_lsn
    segment = os.path.join(running, "pg_wal", segment_file_name(1, end // WAL_SEGMENT_SIZE))
    os.truncate(segment, end % WAL_SEGMENT_SIZE - 20)  # the last COMMIT loses its tail
    events, _ = recover(running)
    assert any(re.fullmatch(f"incorrect resource manager data checksum in record at {LSN}", m) for m in messages(events))
    with Database(running) as session:
        assert session.rows("t") == [(1,)]
        session.insert("t", [(3,)])
    recover(running)
    with Database(running) as session:
        assert session.rows("t") == [(1,), (3,)]


def test_redo_delay_paces_replay_and_progress_is_reported(running):
    with Database(running) as session:
        session.create_table("t", [("id", "int")])
        for i in range(5):
            session.insert("t", [(i,)])
    sleeps: list[float] = []
    events, outcome = recover(running, redo_delay_ms=50, sleep=sleeps.append)
    assert sleeps == [0.05] * outcome.records_replayed == [0.05] * 12
    progress = [e for e in events if isinstance(e, RedoProgress)]
    assert [p.records_done for p in progress][-1] == progress[-1].records_total == 12
    assert [p.records_done for p in progress] == sorted(p.records_done for p in progress)


def test_real_redo_delay_shows_in_the_elapsed_time(running):
    with Database(running) as session:
        session.create_table("t", [("id", "int")])
        session.insert("t", [(1,)])
    events, _ = recover(running, redo_delay_ms=40, sleep=__import__("time").sleep)
    done = next(m for m in messages(events) if m.startswith("redo done"))
    elapsed = float(re.search(r"elapsed: (\d+\.\d\d) s", done).group(1))
    assert elapsed >= 0.1  # 3 records x 40 ms


def test_missing_pg_control_stops_the_startup_process(running):
    os.unlink(os.path.join(running, "global", "pg_control"))
    with pytest.raises(ControlFileMissing):
        next(StartupRecovery(running).run())


def test_an_unreadable_checkpoint_record_is_a_panic(running):
    control = read_control_file(running)
    update_control_file(running, checkpoint=control.checkpoint + 8)
    with pytest.raises(RecoveryError) as raised:
        recover(running)
    assert raised.value.message == "could not locate a valid checkpoint record"
    assert raised.value.level is LogLevel.PANIC


def test_standby_replays_streamed_wal_and_promotes(running, tmp_path):
    """standby.signal: entering standby mode, consistency, WAL shipped with read_raw/write_raw
    (the walsender/walreceiver's job), then promotion to timeline 2."""
    with Database(running) as session:
        session.create_table("t", [("id", "int")])
    checkpoint(running, "online")
    standby = str(tmp_path / "standby")
    shutil.copytree(running, standby)
    open(os.path.join(standby, "standby.signal"), "w").close()
    with Database(running) as session:
        session.insert("t", [(1,)])
    recovery = StartupRecovery(standby, sleep=lambda seconds: None)
    events = recovery.run()
    seen: list = []
    for event in events:  # up to the first wait for WAL
        seen.append(event)
        if isinstance(event, WaitingForWal):
            break
    assert messages(seen)[:2] == [seen[0].message, "entering standby mode"]
    assert any(isinstance(e, ConsistentState) for e in seen)
    with Wal(running) as primary, Wal(standby) as receiver, receiver.locked() as insertion:
        start = event.lsn - event.lsn % WAL_SEGMENT_SIZE
        insertion.write_raw(start, read_raw(running, 1, start, primary.insert_lsn))
    with Database(standby) as hot_standby:
        assert hot_standby.rows("t") == []  # streamed, but not replayed yet
        for event in events:  # the startup process replays what arrived
            seen.append(event)
            if isinstance(event, WaitingForWal):
                break
        assert hot_standby.rows("t") == [(1,)]  # read-only queries see replayed commits
        assert sqlstate_of(hot_standby.insert, "t", [(2,)]) == "25006"
        recovery.request_promote()
        rest = list(events)
    assert_lines(messages(seen + rest), [
        f"database system was interrupted; last known up at {TIME}",
        "entering standby mode",
        f"consistent recovery state reached at {LSN}",
        f"invalid record length at {LSN}: wanted 24, got 0",  # nothing streamed yet
        f"redo starts at {LSN}",
        f"invalid record length at {LSN}: wanted 24, got 0",  # caught up with the primary
        "received promote request",
        f"redo done at {LSN} system usage: {USAGE}",
        r"last completed transaction was at log time \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00",
        "selected new timeline ID: 2",
        "archive recovery complete",
    ])
    assert recovery.outcome.promoted and recovery.outcome.timeline == 2
    assert not os.path.exists(os.path.join(standby, "standby.signal"))
    with Database(standby) as promoted:
        promoted.insert("t", [(2,)])
    assert os.path.exists(os.path.join(standby, "pg_wal", "00000002.history"))
    events, outcome = recover(standby)  # crash recovery reads across the timeline switch
    assert outcome.timeline == 2
    with Database(standby) as promoted:
        assert promoted.rows("t") == [(1,), (2,)]


def stream_and_replay(primary: str, standby: str, events, seen: list) -> None:
    """Ship the primary's new WAL to the standby (the walreceiver's job), then let the startup
    process replay it until it waits for more."""
    with Wal(primary) as source, Wal(standby) as receiver, receiver.locked() as insertion:
        start = insertion.state.insert
        while start < source.insert_lsn:
            start = insertion.write_raw(start, read_raw(primary, 1, start, source.insert_lsn))
    for event in events:
        seen.append(event)
        if isinstance(event, WaitingForWal):
            return


def test_restartpoints_on_a_standby_and_a_restart_in_recovery(running, tmp_path):
    with Database(running) as session:
        session.create_table("t", [("id", "int")])
    checkpoint(running, "online")
    standby = str(tmp_path / "standby")
    shutil.copytree(running, standby)
    open(os.path.join(standby, "standby.signal"), "w").close()
    recovery = StartupRecovery(standby, sleep=lambda seconds: None)
    events, seen = recovery.run(), []
    with Database(running) as session:
        session.insert("t", [(1,), (2,)])
    stream_and_replay(running, standby, events, seen)
    started: list[str] = []
    result = checkpoint(standby, "time", on_start=started.append)
    assert started == ["restartpoint starting: time"] and result.restartpoint
    assert result.complete_message.startswith("restartpoint complete: wrote ")
    assert result.restart_point_message == f"recovery restart point at {format_lsn(result.redo)}"
    assert read_control_file(standby).state is DBState.DB_IN_ARCHIVE_RECOVERY
    assert isinstance(result, CheckpointResult) and checkpoint(standby, "time") is None  # nothing new
    shutdown = checkpoint(standby, "shutdown")
    assert shutdown.starting_message == "restartpoint starting: shutdown immediate"
    events.close()  # the startup process is told to stop
    control = read_control_file(standby)
    assert control.state is DBState.DB_SHUTDOWNED_IN_RECOVERY
    restarted = StartupRecovery(standby, sleep=lambda seconds: None)
    again: list = []
    stream_and_replay(running, standby, restarted.run(), again)
    assert_lines(messages(again)[:3], [
        f"database system was shut down in recovery at {re.escape(str_time(control.time))}",
        "entering standby mode",
        f"consistent recovery state reached at {LSN}",
    ])
    with Database(standby) as hot_standby:
        assert hot_standby.rows("t") == [(1,), (2,)]


def test_a_lost_wal_state_file_is_rebuilt_by_recovery(running):
    with Database(running) as session, session.transaction():
        session.create_table("t", [("id", "int")])
        session.insert("t", [(1,)])
        used = session.xid
    os.unlink(os.path.join(running, STATE_FILE))
    events, _ = recover(running)
    assert messages(events)[-1].startswith("redo done at ")
    with Database(running) as session, session.transaction():
        assert session.rows("t") == [(1,)]
        session.insert("t", [(2,)])
        assert session.xid > used  # an xid found in the WAL is never handed out again
