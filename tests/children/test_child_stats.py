"""The statistics collector (14), for real: its files across a clean restart."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from childtest import Postmaster, config, wait_for

from pgtop.core.vocabulary import ChildKind, ExitStatus


def start(postmaster: Postmaster) -> int:
    pid = postmaster.spawn(ChildKind.STATS, config())
    postmaster.wait_started(pid, "pgtop: stats collector")
    return pid


def test_sigquit_writes_the_permanent_stats_file_and_exits_0(postmaster: Postmaster) -> None:
    pid = start(postmaster)
    postmaster.segment.add_counters(xact_commit=5, xact_rollback=1, checkpoints=2)
    os.kill(pid, signal.SIGTERM)  # ignored
    os.kill(pid, signal.SIGQUIT)  # what the postmaster sends after the shutdown checkpoint
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    saved = json.loads(Path(postmaster.datadir, "pg_stat", "global.stat").read_text())
    assert saved["counters"]["xact_commit"] == 5
    assert saved["counters"]["xact_rollback"] == 1
    assert saved["counters"]["checkpoints"] == 2
    assert not Path(postmaster.datadir, "pg_stat_tmp", "global.stat").exists()


def test_the_next_collector_takes_the_saved_statistics_back(postmaster: Postmaster) -> None:
    first = start(postmaster)
    postmaster.segment.add_counters(xact_commit=7, archived_count=1)
    postmaster.segment.update_counters(last_archived_wal="000000010000000000000001")
    os.kill(first, signal.SIGQUIT)
    assert postmaster.wait_exit(first) == ExitStatus.exited(0)
    postmaster.segment.update_counters(xact_commit=0, archived_count=0, last_archived_wal="")  # a new server
    second = start(postmaster)
    counters = postmaster.wait_counter(lambda c: c.xact_commit == 7, "the statistics restored")
    assert (counters.archived_count, counters.last_archived_wal) == (1, "000000010000000000000001")
    # Memory is authoritative: the file goes once read (just after the counters are restored).
    permanent = Path(postmaster.datadir, "pg_stat", "global.stat")
    wait_for(lambda: not permanent.exists(), "the permanent stats file removed once read")
    os.kill(second, signal.SIGQUIT)
    assert postmaster.wait_exit(second) == ExitStatus.exited(0)


def test_a_corrupted_stats_file_is_reported_and_ignored(postmaster: Postmaster) -> None:
    stat_dir = Path(postmaster.datadir, "pg_stat")
    stat_dir.mkdir()
    (stat_dir / "global.stat").write_text("not json")
    pid = start(postmaster)
    postmaster.log.wait_for(r'LOG:  corrupted statistics file "pg_stat/global.stat"$')
    assert postmaster.counters().xact_commit == 0
    os.kill(pid, signal.SIGQUIT)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


def test_changed_counters_reach_the_temporary_stats_file(postmaster: Postmaster) -> None:
    pid = start(postmaster)
    postmaster.segment.add_counters(xact_commit=3)
    temporary = Path(postmaster.datadir, "pg_stat_tmp", "global.stat")

    def commits_in_file() -> bool:
        try:
            return json.loads(temporary.read_text())["counters"]["xact_commit"] == 3
        except (OSError, ValueError):
            return False

    wait_for(commits_in_file, "the temporary stats file")
    os.kill(pid, signal.SIGQUIT)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
