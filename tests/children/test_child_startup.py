"""The startup process, for real: what it logs, what it tells the postmaster, how it ends."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from childtest import Postmaster, config, title_of, wait_for

from pgtop.core.vocabulary import ChildKind, ExitStatus, PMSignalReason
from pgtop.storage.controlfile import (
    DBState,
    control_path,
    read_control_file,
    update_control_file,
)
from pgtop.storage.database import Database

SEGMENT_1 = "000000010000000000000001"


def write_rows(datadir: str, count: int = 3) -> None:
    """Committed work after the last checkpoint, as a running server leaves it."""
    with Database(datadir) as database:
        database.create_table("t", [("a", "int")])
        for value in range(count):
            database.insert("t", [(value,)])


def crashed(datadir: str, rows: int = 3) -> str:
    """A cluster that was running ("in production") and had work in the WAL when it died."""
    update_control_file(datadir, state=DBState.DB_IN_PRODUCTION)
    write_rows(datadir, rows)
    return datadir


def test_clean_start_reads_pg_control_and_exits_0(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.STARTUP, config())
    line = postmaster.log.wait_for(r"LOG:  database system was shut down at ")
    assert "[" + str(pid) + "]" in line
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    assert read_control_file(postmaster.datadir).state is DBState.DB_IN_PRODUCTION
    assert not any("redo" in line for line in postmaster.log.drain())
    assert postmaster.take_pmsignals() == set()  # 14: no RECOVERY_STARTED


def test_crash_recovery_replays_the_wal_and_writes_the_end_of_recovery_checkpoint(postmaster: Postmaster) -> None:
    crashed(postmaster.datadir)
    stats_file = Path(postmaster.datadir, "pg_stat", "global.stat")
    stats_file.parent.mkdir()
    stats_file.write_text("{}")
    pid = postmaster.spawn(ChildKind.STARTUP, config(log_checkpoints=True))
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    log = postmaster.log
    order = [
        log.wait_for(r"LOG:  database system was interrupted; last known up at "),
        log.wait_for(r"LOG:  database system was not properly shut down; automatic recovery in progress$"),
        log.wait_for(r"LOG:  redo starts at 0/[0-9A-F]+$"),
        log.wait_for(r"LOG:  redo done at 0/[0-9A-F]+ system usage: CPU: user: "),
        log.wait_for(r"LOG:  checkpoint starting: end-of-recovery immediate$"),
        log.wait_for(r"LOG:  checkpoint complete: wrote \d+ buffers"),
    ]
    assert order == sorted(order, key=log.lines.index)
    counters = postmaster.counters()
    assert counters.records_replayed == counters.records_total > 0
    assert not counters.replaying
    assert counters.checkpoints == 1
    assert counters.last_checkpoint_lsn == read_control_file(postmaster.datadir).checkpoint
    assert not stats_file.exists()  # pgstat_reset_all(): statistics do not survive a crash


def test_redo_progress_is_published_and_sigterm_stops_recovery_with_exit_1(postmaster: Postmaster) -> None:
    crashed(postmaster.datadir, rows=20)
    pid = postmaster.spawn(ChildKind.STARTUP, config(redo_delay=20))
    postmaster.log.wait_for(r"redo starts at")
    progress = postmaster.wait_counter(lambda c: c.replaying and c.records_replayed >= 2, "redo progress")
    assert 0 < progress.redo_start_lsn <= progress.replay_lsn < progress.recovery_end_lsn
    assert progress.records_replayed < progress.records_total
    postmaster.wait_title(pid, f"pgtop: startup recovering {SEGMENT_1}")
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    assert not any("redo done" in line or "FATAL" in line for line in postmaster.log.drain())
    assert not postmaster.counters().replaying
    # The next startup process finds the cluster as this one left it.
    assert read_control_file(postmaster.datadir).state is DBState.DB_IN_CRASH_RECOVERY


def test_standby_asks_for_hot_standby_and_a_walreceiver_again_and_again(postmaster: Postmaster) -> None:
    Path(postmaster.datadir, "standby.signal").write_text("")
    settings = config(primary_conninfo="host=127.0.0.1 port=1", wal_retrieve_retry_interval=100)
    pid = postmaster.spawn(ChildKind.STARTUP, settings)
    postmaster.log.wait_for(r"LOG:  entering standby mode$")
    postmaster.wait_pmsignal(PMSignalReason.RECOVERY_STARTED)
    postmaster.log.wait_for(r"LOG:  consistent recovery state reached at 0/[0-9A-F]+$")
    postmaster.wait_pmsignal(PMSignalReason.BEGIN_HOT_STANDBY)
    postmaster.wait_title(pid, f"pgtop: startup waiting for {SEGMENT_1}")
    postmaster.wait_pmsignal(PMSignalReason.START_WALRECEIVER)
    postmaster.wait_pmsignal(PMSignalReason.START_WALRECEIVER)  # none came: it asks again
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)


def test_standby_without_hot_standby_or_primary_asks_for_neither(postmaster: Postmaster) -> None:
    Path(postmaster.datadir, "standby.signal").write_text("")
    pid = postmaster.spawn(ChildKind.STARTUP, config(hot_standby=False, wal_retrieve_retry_interval=1))
    postmaster.wait_pmsignal(PMSignalReason.RECOVERY_STARTED)
    postmaster.wait_title(pid, f"pgtop: startup waiting for {SEGMENT_1}")
    postmaster.assert_running(pid, 0.2)
    assert postmaster.take_pmsignals() == set()
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)


def test_promote_ends_recovery_on_a_new_timeline_and_asks_the_checkpointer(postmaster: Postmaster) -> None:
    Path(postmaster.datadir, "standby.signal").write_text("")
    settings = config(log_checkpoints=True)
    checkpointer = postmaster.spawn(ChildKind.CHECKPOINTER, settings)
    postmaster.wait_started(checkpointer, "pgtop: checkpointer")
    pid = postmaster.spawn(ChildKind.STARTUP, settings)
    postmaster.wait_title(pid, f"pgtop: startup waiting for {SEGMENT_1}")
    promote = Path(postmaster.datadir, "promote")
    promote.write_text("")  # what pg_ctl promote does; the postmaster then sends SIGUSR2
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    postmaster.log.wait_for(r"LOG:  received promote request$")
    postmaster.log.wait_for(r"LOG:  selected new timeline ID: 2$")
    postmaster.log.wait_for(r"LOG:  archive recovery complete$")
    assert not promote.exists()
    assert not Path(postmaster.datadir, "standby.signal").exists()
    assert read_control_file(postmaster.datadir).timeline == 2
    line = postmaster.log.wait_for(r"LOG:  checkpoint starting: force$")  # RequestCheckpoint
    assert f"[{checkpointer}]" in line
    postmaster.log.wait_for(r"LOG:  checkpoint complete: ")


def test_corrupt_control_file_is_fatal(postmaster: Postmaster) -> None:
    path = control_path(postmaster.datadir)
    data = bytearray(Path(path).read_bytes())
    data[20] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    pid = postmaster.spawn(ChildKind.STARTUP, config())
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(r"FATAL:  incorrect checksum in control file$")


def test_truncated_control_file_is_a_panic(postmaster: Postmaster) -> None:
    """elog(PANIC) aborts: the postmaster sees "terminated by signal 6: Aborted"."""
    Path(control_path(postmaster.datadir)).write_bytes(b"short")
    pid = postmaster.spawn(ChildKind.STARTUP, config())
    assert postmaster.wait_exit(pid) == ExitStatus.killed(signal.SIGABRT)
    postmaster.log.wait_for(r'PANIC:  could not read file "global/pg_control": read 5 of \d+$')


@pytest.mark.parametrize("event", ["sigquit", "death"])
def test_redo_stops_at_once_for_sigquit_and_postmaster_death(postmaster: Postmaster, event: str) -> None:
    crashed(postmaster.datadir, rows=20)
    pid = postmaster.spawn(ChildKind.STARTUP, config(redo_delay=500))
    wait_for(lambda: title_of(pid).startswith("pgtop: startup recovering"), "redo to start")
    if event == "sigquit":
        os.kill(pid, signal.SIGQUIT)
        assert postmaster.wait_exit(pid, timeout=0.4) == ExitStatus.exited(2)
    else:
        postmaster.die()
        assert postmaster.wait_exit(pid, timeout=0.4) == ExitStatus.exited(1)
