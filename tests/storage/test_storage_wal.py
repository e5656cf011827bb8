"""The WAL: records go in and come back, segments switch, a torn or foreign tail ends it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pgtop.storage.lsn import (
    WAL_SEGMENT_SIZE,
    segment_file_name,
    segment_of,
    segment_start,
)
from pgtop.storage.records import RecordType
from pgtop.storage.wal import Wal
from pgtop.storage.walreader import WalReader, read_raw

FIRST = 0x100028  # initdb's shutdown checkpoint


def read_all(datadir: str, start: int = FIRST, limit: int | None = None) -> tuple[list, WalReader]:
    reader = WalReader(datadir, start, 1)
    records = []
    while (record := reader.read_record(limit)) is not None:
        records.append(record)
    reader.close()
    return records, reader


def test_records_come_back_in_order_with_prev_links(datadir):
    with Wal(datadir) as wal:
        first = wal.append(RecordType.INSERT, 7, {"table": "t", "rows": [[1]]})
        second = wal.append(RecordType.COMMIT, 7, {"time": 1.0})
        assert wal.insert_lsn > second > first
    records, reader = read_all(datadir)
    assert [r.type for r in records] == [RecordType.CHECKPOINT_SHUTDOWN, RecordType.INSERT, RecordType.COMMIT]
    assert records[1].lsn == first and records[1].prev == FIRST and records[1].xid == 7
    assert records[2].prev == first and records[1].data == {"table": "t", "rows": [[1]]}
    assert reader.end_reason == f"invalid record length at 0/{reader.position:X}: wanted 24, got 0"


def test_a_record_that_does_not_fit_switches_to_the_next_segment(datadir):
    payload = {"pad": "x" * 200_000}
    with Wal(datadir) as wal:
        lsns = [wal.append(RecordType.INSERT, 5, payload) for _ in range(6)]
    assert segment_of(lsns[0]) == 1 and segment_of(lsns[-1]) == 2
    assert lsns[-1] == segment_start(2) + 40  # right after the new segment's header
    assert os.path.getsize(os.path.join(datadir, "pg_wal", segment_file_name(1, 2))) == WAL_SEGMENT_SIZE
    records, _ = read_all(datadir)
    kinds = [r.type for r in records]
    assert kinds.count(RecordType.SWITCH) == 1 and kinds[-1] is RecordType.INSERT
    assert [r.lsn for r in records if r.type is RecordType.INSERT] == lsns


def test_switch_segment_is_pg_switch_wal(datadir):
    with Wal(datadir) as wal:
        end = wal.switch_segment()
        assert end == segment_start(2)
        assert wal.switch_segment() == end  # nothing written since: no second switch
        lsn = wal.append(RecordType.ABORT, 3)
    assert lsn == segment_start(2) + 40


def test_torn_tail_ends_the_wal_at_the_last_whole_record(datadir):
    with Wal(datadir) as wal:
        kept = wal.append(RecordType.INSERT, 4, {"table": "t", "rows": [[1]]})
        torn = wal.append(RecordType.INSERT, 4, {"table": "t", "rows": [["x" * 300]]})
    path = os.path.join(datadir, "pg_wal", segment_file_name(1, 1))
    os.truncate(path, (torn % WAL_SEGMENT_SIZE) + 100)  # cut the second record in the middle
    records, reader = read_all(datadir)
    assert records[-1].lsn == kept
    assert reader.position == torn
    assert reader.end_reason == f"incorrect resource manager data checksum in record at 0/{torn:X}"


def test_a_flipped_byte_fails_the_crc(datadir):
    with Wal(datadir) as wal:
        lsn = wal.append(RecordType.INSERT, 4, {"table": "t", "rows": [[123456]]})
    path = os.path.join(datadir, "pg_wal", segment_file_name(1, 1))
    with open(path, "r+b") as file:
        file.seek(lsn % WAL_SEGMENT_SIZE + 30)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 1]))
    _, reader = read_all(datadir)
    assert reader.end_reason == f"incorrect resource manager data checksum in record at 0/{lsn:X}"


def test_a_recycled_segment_is_recognised_by_its_header(datadir):
    with Wal(datadir) as wal:
        wal.switch_segment()
    pg_wal = os.path.join(datadir, "pg_wal")
    # a stale file under the next segment's name, as recycling leaves it
    with open(os.path.join(pg_wal, segment_file_name(1, 1)), "rb") as old:
        stale = old.read()
    with open(os.path.join(pg_wal, segment_file_name(1, 2)), "wb") as new:
        new.write(stale)
    _, reader = read_all(datadir)
    assert reader.end_reason == f"unexpected pageaddr 0/100000 in log segment {segment_file_name(1, 2)}, offset 0"


def test_a_reader_with_a_limit_never_returns_a_partial_record(datadir):
    with Wal(datadir) as wal:
        lsn = wal.append(RecordType.INSERT, 4, {"table": "t", "rows": [[1]]})
    records, reader = read_all(datadir, limit=lsn + 30)  # a writer is still in the middle of it
    assert records[-1].type is RecordType.CHECKPOINT_SHUTDOWN
    assert reader.position == lsn and reader.end_reason is None


def test_state_reads_are_cheap_and_shared(datadir):
    with Wal(datadir) as writer, Wal(datadir) as reader:
        writer.append(RecordType.ABORT, 3)
        assert reader.insert_lsn == writer.insert_lsn


def test_xids_are_unique_across_processes(datadir):
    script = (
        "import sys; from pgtop.storage.wal import Wal\n"
        "w = Wal(sys.argv[1])\n"
        "print(' '.join(str(w.allocate_xid()) for _ in range(300)))\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", script, datadir], stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
    xids = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        xids.extend(int(x) for x in out.split())
    assert len(xids) == len(set(xids)) == 600


def test_raw_copy_reproduces_the_records_elsewhere(datadir, tmp_path):
    """The walsender/walreceiver pair: read_raw on one side, write_raw on the other."""
    import shutil
    standby = str(tmp_path / "standby")
    shutil.copytree(datadir, standby)
    with Wal(datadir) as wal:
        lsn = wal.append(RecordType.INSERT, 9, {"table": "t", "rows": [[1]]})
        end = wal.insert_lsn
    with Wal(standby) as wal, wal.locked() as insertion:
        start = insertion.state.insert
        assert insertion.write_raw(start, read_raw(datadir, 1, start, end)) == end
    records, _ = read_all(standby)
    assert records[-1].lsn == lsn and records[-1].xid == 9


def test_appending_during_recovery_is_refused(datadir):
    with Wal(datadir) as wal:
        wal.set_flags(in_recovery=True)
        with pytest.raises(Exception, match="cannot make new WAL entries during recovery"):
            wal.append(RecordType.ABORT, 3)
