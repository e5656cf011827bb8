"""The shared memory segment, between this process (the postmaster) and real children."""

from __future__ import annotations

import os
import re
import select
import signal
import threading
import time

import pytest

from pgtop.common.shmem import NoFreeSlot, Segment, SlotState
from pgtop.common.shmem_records import ActivityRow, format_lsn
from pgtop.core.vocabulary import ChildKind, ExitStatus, PMSignalReason, QuitReason
from pgtop.runtime.forkserver import ForkServer
from pgtop.runtime.procwatch import ChildWatcher

HERE = __name__
ROW_ENTRY = 5
MAX_WRITES = 10_000_000
READS = 3000
ADDS = 1000


# -- child programs -----------------------------------------------------------------------


def signaller(ctx) -> int:
    ctx.raise_pmsignal(PMSignalReason[ctx.args["reason"]])
    return 0


def slot_user(ctx) -> int:
    """Runs with its slot ACTIVE (the context marks it); exit cleanly or like a crash."""
    if ctx.args.get("walsender"):
        ctx.mark_walsender()
    ctx.report_activity(state="active", query=ctx.args.get("query", ""))
    os.write(ctx.fds["out"], b"running\n")
    os.read(ctx.fds["go"], 1)
    if ctx.args.get("skip_cleanup"):
        os._exit(1)  # like a backend that dies without proc_exit's cleanup
    return 0


def row_writer(ctx) -> int:
    """Rewrite one row until SIGTERM; every field says which write it belongs to."""
    ctx.handle(signal.SIGTERM)
    for i in range(MAX_WRITES):
        ctx.segment.write_activity(ROW_ENTRY, _row(os.getpid(), i))
        if ctx.take_signals():
            return 0
    return 1


def counter_adder(ctx) -> int:
    for _ in range(ADDS):
        ctx.segment.add_counters(checkpoints=1, buffers_written=2)
    return 0


def _row(pid: int, i: int) -> ActivityRow:
    return ActivityRow(
        pid=pid,
        backend_type="client backend",
        user=f"u{i}",
        database=f"d{i}",
        query=f"select {i} -- " + "x" * 900 + f" {i}",
        state_change=float(i),
    )


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def segment():
    created = Segment.create(16)
    yield created
    created.destroy()


@pytest.fixture
def server():
    forkserver = ForkServer.start([f"{HERE}:signaller"])
    yield forkserver
    forkserver.stop()


@pytest.fixture
def watcher():
    watching = ChildWatcher()
    yield watching
    for pid in watching.watched:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    watching.close()


def wait_exit(watcher: ChildWatcher, pid: int, timeout: float = 5.0) -> ExitStatus:
    pidfd = watcher.watch(pid)
    assert select.select([pidfd], [], [], timeout)[0], f"PID {pid} did not exit within {timeout} s"
    result = watcher.reap(pid)
    assert result is not None
    return result[1]


# -- the segment itself -------------------------------------------------------------------


def test_segment_is_a_real_mapping_with_no_name_in_dev_shm(segment):
    before = set(os.listdir("/dev/shm"))

    def new_entries() -> list[str]:  # of pgtop's: other programs on the machine make their own
        return [name for name in set(os.listdir("/dev/shm")) - before if "pgtop" in name]

    other = Segment.create(244, generation=7)
    try:
        with open("/proc/self/maps") as maps:
            assert "/memfd:pgtop.shm" in maps.read()
        assert new_entries() == []
        assert other.generation == 7 and other.max_children == 244
        assert re.fullmatch(r"[ \d]{9} {9}7", other.pid_file_line)
        assert int(other.pid_file_line.split()[0]) == other.key != segment.key
    finally:
        other.destroy()
    assert new_entries() == []


def test_attach_checks_the_header(segment):
    with Segment.attach(os.dup(segment.fd)) as attached:
        assert attached.max_children == 16 and attached.generation == 1
    stranger = os.memfd_create("not-pgtop")
    os.ftruncate(stranger, 4096)
    with pytest.raises(ValueError, match="not a pgtop shared memory segment"):
        Segment.attach(stranger)
    os.close(stranger)
    with pytest.raises(ValueError, match="max_children must be between 1 and"):
        Segment.create(0)


def test_a_destroyed_generation_is_retired_for_stale_attachers(segment):
    stale = Segment.attach(os.dup(segment.fd))
    assert not stale.retired
    segment.destroy()
    assert stale.retired
    stale.close()


# -- pmsignals and flags ------------------------------------------------------------------


def test_a_child_raises_a_pmsignal_and_the_postmaster_takes_it_once(segment, server, watcher):
    received = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.set())
    try:
        pid = server.spawn(
            f"{HERE}:signaller", {"reason": "RECOVERY_STARTED"}, {"shmem": segment.fd}
        )
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
        assert received.wait(5), "no SIGUSR1 from the child"
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert segment.take_pmsignals() == {PMSignalReason.RECOVERY_STARTED}
    assert segment.take_pmsignals() == frozenset()


def test_the_same_reason_twice_is_seen_once(segment):
    segment.raise_pmsignal(PMSignalReason.START_AUTOVAC_WORKER)
    segment.raise_pmsignal(PMSignalReason.START_AUTOVAC_WORKER)
    segment.raise_pmsignal(PMSignalReason.ADVANCE_STATE_MACHINE)
    assert segment.take_pmsignals() == {
        PMSignalReason.START_AUTOVAC_WORKER,
        PMSignalReason.ADVANCE_STATE_MACHINE,
    }


def test_quit_reason_and_autovacuum_flags(segment):
    child_view = Segment.attach(os.dup(segment.fd))
    assert child_view.quit_reason() is None
    segment.set_quit_reason(QuitReason.CRASH)
    assert child_view.quit_reason() is QuitReason.CRASH
    segment.set_quit_reason(QuitReason.STOP)
    assert child_view.quit_reason() is QuitReason.STOP
    segment.set_avworker_failed()
    assert child_view.take_avworker_failed() and not child_view.take_avworker_failed()
    child_view.set_avworker_database("postgres")
    assert segment.avworker_database() == "postgres"
    child_view.close()


# -- PMChildFlags -------------------------------------------------------------------------


def test_slots_are_assigned_until_none_is_free_and_release_reports_cleanup(segment):
    slots = [segment.assign_slot() for _ in range(16)]
    assert sorted(slots) == list(range(1, 17))
    with pytest.raises(NoFreeSlot, match="no free slots in PMChildFlags array"):
        segment.assign_slot()
    segment.mark_active(slots[0])
    segment.mark_inactive(slots[0])
    assert segment.release_slot(slots[0]) is True  # cleaned up: back in ASSIGNED
    segment.mark_active(slots[1])
    assert segment.release_slot(slots[1]) is False  # left ACTIVE: the dead-man switch
    assert segment.slot_state(slots[1]) is SlotState.UNUSED
    segment.mark_walsender(slots[2])
    assert segment.walsender_slots() == {slots[2]}
    assert segment.assign_slot() in (slots[0], slots[1])
    with pytest.raises(ValueError, match="slot 17 is out of range 1..16"):
        segment.mark_active(17)


@pytest.mark.parametrize("skip_cleanup", [False, True], ids=["clean-exit", "no-cleanup"])
def test_dead_man_switch_with_a_real_child(segment, server, watcher, skip_cleanup):
    out_read, out_write = os.pipe()
    go_read, go_write = os.pipe()
    try:
        slot = segment.assign_slot()
        args = {
            "slot": slot,
            "walsender": True,
            "query": "select pg_sleep(30)",
            "skip_cleanup": skip_cleanup,
        }
        pid = server.spawn(
            f"{HERE}:slot_user", args, {"shmem": segment.fd, "out": out_write, "go": go_read}
        )
        watcher.watch(pid)
        assert select.select([out_read], [], [], 5)[0] and os.read(out_read, 100) == b"running\n"
        assert segment.walsender_slots() == {slot}
        row = segment.read_activity(slot)
        assert (row.pid, row.state, row.query) == (pid, "active", "select pg_sleep(30)")
        os.write(go_write, b"x")
        assert wait_exit(watcher, pid) == ExitStatus.exited(1 if skip_cleanup else 0)
        assert segment.release_slot(slot) is (not skip_cleanup)
        assert (segment.read_activity(slot) is None) is (not skip_cleanup)
    finally:
        for fd in (out_read, out_write, go_read, go_write):
            os.close(fd)


# -- activity rows and counters -----------------------------------------------------------


def test_activity_rows_round_trip_and_truncate_queries_like_postgresql(segment):
    entry = segment.aux_entry(ChildKind.CHECKPOINTER)
    assert entry > segment.max_children
    segment.write_activity(
        entry, ActivityRow(pid=77, backend_type="checkpointer", backend_start=1.5)
    )
    long_query = "select '" + "é" * 600 + "'"  # 1209 bytes of UTF-8
    segment.write_activity(
        3,
        ActivityRow(
            pid=78,
            backend_type="client backend",
            user="alice",
            client_addr="127.0.0.1",
            query=long_query,
        ),
    )
    rows = {row.pid: row for row in segment.activity()}
    assert set(rows) == {77, 78}
    stored = rows[78].query
    assert len(stored.encode()) <= 1023 and long_query.startswith(stored) and stored.endswith("é")
    assert rows[78].as_backend_activity().client_addr == "127.0.0.1"
    assert rows[77].as_backend_activity().client_addr is None
    segment.update_activity(3, state="idle")
    assert segment.read_activity(3).state == "idle"
    segment.clear_activity(3)
    assert [row.pid for row in segment.activity()] == [77]


def test_a_status_report_rewrites_the_statement_part_and_keeps_who_and_since_when(segment):
    segment.write_activity(4, ActivityRow(
        pid=79, backend_type="client backend", user="alice", database="shop", application_name="psql",
        client_addr="127.0.0.1", state="idle", query="", backend_start=1.5, state_change=2.0, cancel_key=7))  # fmt: skip
    segment.write_activity_status(4, "report", "active", "select 1", 3.25)
    assert segment.read_activity(4) == ActivityRow(
        pid=79, backend_type="client backend", user="alice", database="shop", application_name="report",
        client_addr="127.0.0.1", state="active", query="select 1", backend_start=1.5, state_change=3.25,
        cancel_key=7)  # fmt: skip
    segment.write_activity_status(4, "report", "idle", "select 1", 4.0)
    assert (segment.read_activity(4).state, segment.read_activity(4).query) == ("idle", "select 1")


def test_pgprocs_are_taken_and_released_per_slot_and_freed_with_the_slot(segment):
    first, second = segment.assign_slot(), segment.assign_slot()
    assert segment.procs_in_use() == 0
    segment.take_proc(first)
    segment.take_proc(second)
    assert segment.procs_in_use() == 2
    assert segment.procs_in_use(besides=first) == 1  # InitProcess counts the others
    segment.release_proc(first)  # ProcKill
    assert segment.procs_in_use() == 1 and segment.procs_in_use(besides=first) == 1
    segment.release_slot(second)  # it died without ProcKill: the postmaster frees it
    assert segment.procs_in_use() == 0


def test_readers_never_see_a_torn_row(segment, server, watcher):
    pid = server.spawn(f"{HERE}:row_writer", {}, {"shmem": segment.fd})
    watcher.watch(pid)
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < READS and time.monotonic() < deadline:
        row = segment.read_activity(ROW_ENTRY)
        if row is not None:
            i = int(row.state_change)
            assert row == _row(pid, i), f"torn row after {len(seen)} reads"
            seen.add(i)
    os.kill(pid, signal.SIGTERM)
    assert wait_exit(watcher, pid) == ExitStatus.exited(0)
    assert len(seen) > 10, "the reader hardly ever overlapped the writer"
    print(f"{len(seen)} consistent reads of different writes, up to write {max(seen)}")


def test_counters_from_concurrent_writers_add_up(segment, server, watcher):
    pids = [server.spawn(f"{HERE}:counter_adder", {}, {"shmem": segment.fd}) for _ in range(2)]
    assert [wait_exit(watcher, pid, 30) for pid in pids] == [ExitStatus.exited(0)] * 2
    counters = segment.counters()
    assert (counters.checkpoints, counters.buffers_written) == (2 * ADDS, 4 * ADDS)


def test_counters_update_consistently_and_refuse_unknown_names(segment):
    now = time.time()
    segment.update_counters(
        redo_start_lsn=0x1_0000_0028,
        replay_lsn=0x1_0000_0100,
        replaying=True,
        last_archived_wal="000000010000000000000003",
        last_archived_time=now,
    )
    counters = segment.counters()
    assert format_lsn(counters.redo_start_lsn) == "1/28" and counters.replaying is True
    assert counters.recovery_progress().replayed == "1/100"
    assert counters.last_archived_wal == "000000010000000000000003"
    assert counters.last_archived_time == now
    with pytest.raises(ValueError, match="unknown counter: no_such"):
        segment.update_counters(no_such=1)
    assert segment.counters() == counters
