"""Real processes: concurrent commits, a SIGKILL in the middle of a transaction, recovery."""

from __future__ import annotations

import fcntl
import os
import time

from storage_helpers import messages, recover

from pgtop.storage.checkpoint import checkpoint
from pgtop.storage.database import Database
from pgtop.storage.wal import STATE_FILE


def numbers(lines: list[str], word: str) -> set[int]:
    return {int(line.split()[1]) for line in lines if line.startswith(word + " ")}


def test_two_processes_commit_concurrently_and_see_each_other(running, spawn):
    with Database(running) as session:
        session.create_table("t", [("name", "text"), ("i", "int")])
    workers = [spawn(running, "commit-loop", name, "150") for name in ("a", "b")]
    for worker in workers:
        worker.finish()
    expected = sorted((name, i) for name in ("a", "b") for i in range(150))
    with Database(running) as session:
        assert sorted(session.rows("t")) == expected
    recover(running)  # as after an immediate shutdown: nothing checkpointed since
    with Database(running) as session:
        assert sorted(session.rows("t")) == expected


def test_sigkill_mid_transaction_then_recovery(running, spawn):
    """Committed (acknowledged) rows all survive; rows of the killed open transaction do not."""
    with Database(running) as session:
        session.create_table("t", [("name", "text"), ("i", "int")])
    holder = spawn(running, "hold", "held", "50")
    holder.wait_for_line(lambda line: line == "holding")
    writer = spawn(running, "commit-loop", "w", "100000")
    writer.wait_for_line(lambda line: line == "committed 20")
    holder.kill()
    writer.wait_for_line(lambda line: line == "committed 60")
    writer.kill()  # wherever it is: maybe in the middle of a commit
    acknowledged = numbers(writer.lines, "committed")
    attempted = numbers(writer.lines, "committing")
    events, outcome = recover(running)
    assert messages(events)[1] == "database system was not properly shut down; automatic recovery in progress"
    assert outcome.records_replayed > 60
    with Database(running) as session:
        rows = session.rows("t")
    assert not [row for row in rows if row[0] == "held"]
    survived = {i for name, i in rows if name == "w"}
    assert acknowledged <= survived <= attempted
    assert len(survived) == len([row for row in rows if row[0] == "w"])  # nothing applied twice


def test_a_transaction_open_across_checkpoints_commits_after_recovery(running, spawn):
    """Its first records are older than the redo point: the checkpoint image carries them."""
    with Database(running) as session:
        session.create_table("t", [("name", "text"), ("i", "int")])
    holder = spawn(running, "hold-commit", "long", "10")
    holder.wait_for_line(lambda line: line == "holding")
    writer = spawn(running, "commit-loop", "w", "100000")
    for round_ in range(3):
        writer.wait_for_line(lambda line, goal=f"committed {round_ * 30 + 29}": line == goal)
        assert checkpoint(running, "online") is not None
    holder.process.stdin.write("go\n")
    holder.process.stdin.flush()
    holder.wait_for_line(lambda line: line == "committed")
    writer.kill()
    recover(running)  # from the last checkpoint's image: the holder's inserts are older than it
    with Database(running) as session:
        rows = session.rows("t")
    assert sorted(i for name, i in rows if name == "long") == list(range(10))
    assert numbers(writer.lines, "committed") <= {i for name, i in rows if name == "w"}


def try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def test_a_killed_lock_holder_does_not_block_the_wal(running, spawn):
    holder = spawn(running, "hold-lock", "-", "0")
    holder.wait_for_line(lambda line: line == "locked")
    fd = os.open(os.path.join(running, STATE_FILE), os.O_RDWR)
    try:
        assert not try_lock(fd)
        holder.kill()
        deadline = time.monotonic() + 10
        while not try_lock(fd):
            assert time.monotonic() < deadline, "the lock is still held after its holder was killed"
            time.sleep(0.01)
    finally:
        os.close(fd)
    with Database(running) as session:
        session.create_table("t", [("id", "int")])  # the WAL is writable again
