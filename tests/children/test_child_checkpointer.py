"""The checkpointer, for real: timed, requested and shutdown checkpoints, restartpoints."""

from __future__ import annotations

import os
import signal

from childtest import Postmaster, config

from pgtop.core.vocabulary import ChildKind, ExitStatus
from pgtop.storage.archive import archive_state
from pgtop.storage.controlfile import DBState, read_control_file, update_control_file
from pgtop.storage.database import Database
from pgtop.storage.wal import Wal

SEGMENT_1 = "000000010000000000000001"


def running_with_writes(datadir: str) -> None:
    update_control_file(datadir, state=DBState.DB_IN_PRODUCTION)  # what the startup process leaves
    with Database(datadir) as database:
        database.create_table("t", [("a", "int")])
        database.insert("t", [(1,), (2,)])


def start(postmaster: Postmaster, **settings: object) -> int:
    pid = postmaster.spawn(ChildKind.CHECKPOINTER, config(**settings))
    postmaster.wait_started(pid, "pgtop: checkpointer")
    return pid


def test_sigusr2_writes_the_shutdown_checkpoint_and_exits_0(postmaster: Postmaster) -> None:
    running_with_writes(postmaster.datadir)
    pid = start(postmaster, log_checkpoints=True)
    os.kill(pid, signal.SIGTERM)  # ignored: the postmaster stops it with SIGUSR2, last
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    log = postmaster.log
    order = [
        log.wait_for(r"LOG:  shutting down$"),
        log.wait_for(r"LOG:  checkpoint starting: shutdown immediate$"),
        log.wait_for(r"LOG:  checkpoint complete: wrote \d+ buffers \(\d+\.\d%\); \d+ WAL file\(s\) added, "),
    ]
    assert order == sorted(order, key=log.lines.index)
    control = read_control_file(postmaster.datadir)
    assert control.state is DBState.DB_SHUTDOWNED
    counters = postmaster.counters()
    assert counters.checkpoints == 1 and counters.last_checkpoint_lsn == control.checkpoint


def test_without_log_checkpoints_only_shutting_down_is_logged(postmaster: Postmaster) -> None:
    pid = start(postmaster)
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    postmaster.log.wait_for(r"LOG:  shutting down$")
    assert not any("checkpoint" in line for line in postmaster.log.drain())


def test_shutdown_with_archiving_finishes_the_segment_for_the_archiver(postmaster: Postmaster) -> None:
    with Wal(postmaster.datadir) as wal:
        wal.set_flags(archiving=True)  # as the startup process sets it with archive_mode on
    pid = start(postmaster, archive_mode="on", archive_command="true")
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    assert archive_state(postmaster.datadir, SEGMENT_1) == "ready"


def test_timed_checkpoint_after_checkpoint_timeout(postmaster: Postmaster) -> None:
    running_with_writes(postmaster.datadir)
    pid = start(postmaster, log_checkpoints=True, checkpoint_timeout=1)  # below the GUC minimum: a test
    postmaster.log.wait_for(r"LOG:  checkpoint starting: time$")
    postmaster.log.wait_for(r"LOG:  checkpoint complete: ")
    postmaster.wait_counter(lambda c: c.checkpoints == 1, "the checkpoint counted")
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


def test_sigint_requests_a_checkpoint_at_once(postmaster: Postmaster) -> None:
    pid = start(postmaster, log_checkpoints=True)
    os.kill(pid, signal.SIGINT)
    postmaster.log.wait_for(r"LOG:  checkpoint starting: force$")
    postmaster.wait_counter(lambda c: c.checkpoints == 1, "the checkpoint counted")
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


def test_shutdown_during_recovery_writes_a_restartpoint(postmaster: Postmaster) -> None:
    running_with_writes(postmaster.datadir)
    with Wal(postmaster.datadir) as wal:
        wal.set_flags(in_recovery=True)  # archive recovery: no WAL may be written
    pid = start(postmaster, log_checkpoints=True)
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    postmaster.log.wait_for(r"LOG:  restartpoint starting: shutdown immediate$")
    postmaster.log.wait_for(r"LOG:  restartpoint complete: ")
    postmaster.log.wait_for(r"LOG:  recovery restart point at 0/[0-9A-F]+$")
    assert read_control_file(postmaster.datadir).state is DBState.DB_SHUTDOWNED_IN_RECOVERY
