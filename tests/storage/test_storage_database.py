"""Sessions on the tables: types, PostgreSQL's errors, visibility and transactions."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pgtop.storage.checkpoint import checkpoint
from pgtop.storage.database import Database
from pgtop.storage.errors import StorageError
from pgtop.storage.lsn import segment_file_name, segment_of
from pgtop.storage.values import ColumnType
from pgtop.storage.wal import Wal

COLUMNS = [("id", "int"), ("big", "bigint"), ("name", "text"), ("ok", "bool"),
           ("amount", "numeric"), ("at", "timestamptz")]


@pytest.fixture
def session(running):
    database = Database(running)
    yield database
    database.close()


@pytest.fixture
def other(running):
    database = Database(running)
    yield database
    database.close()


def sqlstate(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(StorageError) as raised:
        call(*args, **kwargs)
    return raised.value.sqlstate, raised.value.message


def test_every_type_round_trips_through_wal_and_image(session, running):
    at = datetime(2026, 11, 22, 15, 23, 32, 123456, tzinfo=UTC)
    session.create_table("t", COLUMNS)
    session.insert("t", [(1, 2**40, "a", True, Decimal("12.50"), at), ("2", "3", "b", "f", "0.1", "2026-11-22 15:23:32+00")])
    session.insert("t", [(3,)])  # the other columns are NULL
    expected = [
        (1, 2**40, "a", True, Decimal("12.50"), at),
        (2, 3, "b", False, Decimal("0.1"), datetime(2026, 11, 22, 15, 23, 32, tzinfo=UTC)),
        (3, None, None, None, None, None),
    ]
    assert session.rows("t") == expected
    checkpoint(running, "online")
    with Database(running) as fresh:  # loads the checkpoint image
        assert fresh.rows("t") == expected
        assert [c.type for c in fresh.columns("t")] == [ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.TEXT,
                                                        ColumnType.BOOLEAN, ColumnType.NUMERIC, ColumnType.TIMESTAMPTZ]


def test_output_functions_give_postgresql_text():
    assert ColumnType.BOOLEAN.output(True) == "t"
    assert ColumnType.NUMERIC.output(Decimal("1E+2")) == "100"
    at = datetime(2026, 11, 22, 15, 23, 32, 500000, tzinfo=UTC)
    assert ColumnType.TIMESTAMPTZ.output(at) == "2026-11-22 15:23:32.5+00"
    assert ColumnType.from_name("int4").oid == 23 and ColumnType.from_name("timestamptz").typname == "timestamptz"


def test_errors_carry_postgresql_texts_and_sqlstates(session):
    assert sqlstate(session.rows, "nope") == ("42P01", 'relation "nope" does not exist')
    session.create_table("t", [("id", "int"), ("name", "text")])
    assert sqlstate(session.create_table, "t", [("x", "int")]) == ("42P07", 'relation "t" already exists')
    assert sqlstate(session.insert, "t", [(2**31, "x")]) == ("22003", "integer out of range")
    assert sqlstate(session.insert, "t", [("abc", "x")]) == ("22P02", 'invalid input syntax for type integer: "abc"')
    assert sqlstate(session.insert, "t", [(1, "x", 3)]) == ("42601", "INSERT has more expressions than target columns")
    assert sqlstate(session.insert, "t", [(1,)], columns=["zz"]) == ("42703", 'column "zz" of relation "t" does not exist')
    assert sqlstate(session.create_table, "u", [("a", "money")]) == ("42704", 'type "money" does not exist')
    assert sqlstate(session.create_table, "u", [("a", "int"), ("a", "int")]) == ("42701", 'column "a" specified more than once')
    assert session.rows("t") == []  # none of the failed statements changed anything


def test_a_statement_outside_a_block_commits_at_once(session, other):
    session.create_table("t", [("id", "int")])
    session.insert("t", [(1,)])
    assert other.rows("t") == [(1,)]
    assert not session.in_transaction


def test_uncommitted_rows_are_seen_only_by_their_session(session, other):
    session.create_table("t", [("id", "int")])
    session.begin()
    session.insert("t", [(1,)])
    assert session.rows("t") == [(1,)] and other.rows("t") == []
    lsn = session.commit()
    assert lsn is not None and other.rows("t") == [(1,)]


def test_rollback_discards_and_a_read_only_block_writes_nothing(session, other, running):
    session.create_table("t", [("id", "int")])
    with Wal(running) as wal:
        before = wal.insert_lsn
        session.begin()
        assert session.rows("t") == []
        assert session.commit() is None and wal.insert_lsn == before  # no xid, no record
    session.begin()
    session.insert("t", [(1,)])
    session.rollback()
    assert session.rows("t") == [] and other.rows("t") == []


def test_an_error_in_a_block_aborts_it_until_rollback(session, other):
    session.create_table("t", [("id", "int")])
    session.begin()
    session.insert("t", [(1,)])
    sqlstate(session.insert, "t", [("bad",)])
    assert sqlstate(session.rows, "t")[0] == "25P02"
    assert session.commit() is None  # COMMIT of a failed block is a ROLLBACK
    assert session.rows("t") == [] and other.rows("t") == []


def test_concurrent_create_of_one_name_fails_the_later_commit(session, other):
    session.begin()
    other.begin()
    session.create_table("t", [("id", "int")])
    other.create_table("t", [("id", "int")])
    session.commit()
    assert sqlstate(other.commit) == ("42P07", 'relation "t" already exists')
    assert other.table_names() == ["t"] and not other.in_transaction


def test_insert_into_a_table_dropped_meanwhile_fails_at_commit(session, other):
    session.create_table("t", [("id", "int")])
    other.begin()
    other.insert("t", [(1,)])
    session.drop_table("t")
    assert sqlstate(other.commit) == ("42P01", 'relation "t" does not exist')
    assert session.table_names() == []


def test_create_insert_drop_in_one_transaction(session, other):
    with session.transaction():
        session.create_table("t", [("id", "int")])
        session.insert("t", [(1,)])
        session.drop_table("t")
        session.create_table("t", [("name", "text")])
        session.insert("t", [("x",)])
    assert other.rows("t") == [("x",)]


def test_a_large_insert_is_split_across_records_and_segments(session, other):
    session.create_table("t", [("id", "int"), ("pad", "text")])
    rows = [(i, "p" * 500) for i in range(5000)]  # about 2.5 MB: several 1 MiB segments
    assert session.insert("t", rows) == 5000
    assert other.rows("t") == rows


def test_refresh_with_nothing_new_applies_nothing(session, other):
    session.create_table("t", [("id", "int")])
    assert other.refresh() > 0
    assert other.refresh() == 0


def test_writes_are_refused_during_recovery(session, running):
    session.create_table("t", [("id", "int")])
    with Wal(running) as wal:  # as on a hot standby that has replayed everything
        wal.set_flags(in_recovery=True)
        wal.set_replayed(wal.insert_lsn)
    assert sqlstate(session.insert, "t", [(1,)]) == ("25006", "cannot execute INSERT in a read-only transaction")
    assert session.rows("t") == []


def test_a_session_idle_across_checkpoints_catches_up(session, other, running):
    """The WAL it was reading was removed meanwhile: it reloads from the newest image."""
    session.create_table("t", [("id", "int"), ("pad", "text")])
    other.refresh()
    stale_position = other.position
    for round_ in range(4):
        session.insert("t", [(round_ * 1000 + i, "p" * 500) for i in range(1000)])
        checkpoint(running, "online")
    segment = os.path.join(running, "pg_wal", segment_file_name(1, segment_of(stale_position)))
    assert not os.path.exists(segment)  # recycled under another name or removed
    assert len(other.rows("t")) == 4000


def test_update_and_delete_by_row_id(session, other, running):
    session.create_table("t", [("id", "int"), ("name", "text")])
    session.insert("t", [(1, "a"), (2, "b"), (3, "c")])
    ids = {row[0]: row_id for row_id, row in other.scan("t")}
    session.begin()
    assert session.update("t", {ids[2]: (2, "B")}) == 1
    assert session.delete("t", [ids[1], 999]) == 1  # an unknown id is not there to delete
    assert session.rows("t") == [(2, "B"), (3, "c")]
    assert other.rows("t") == [(1, "a"), (2, "b"), (3, "c")]  # not committed yet
    session.commit()
    assert other.rows("t") == [(2, "B"), (3, "c")]
    assert dict(other.scan("t"))[ids[2]] == (2, "B")  # an update keeps the row id
    checkpoint(running, "online")
    with Database(running) as fresh:
        assert fresh.scan("t") == other.scan("t")


def test_changes_to_rows_inserted_in_the_same_transaction(session, other):
    session.create_table("t", [("id", "int")])
    session.insert("t", [(0,)])
    with session.transaction():
        session.insert("t", [(1,), (2,)])
        new = {row[0]: row_id for row_id, row in session.scan("t")}
        session.update("t", {new[1]: (10,), new[0]: (100,)})
        session.delete("t", [new[2]])
    assert other.rows("t") == [(100,), (10,)]


def test_a_definition_is_kept_with_the_table(session, other, running):
    session.create_table("t", [("id", "text")], definition={"primary_key": ["id"]})
    assert other.definition("t") == {"primary_key": ["id"]}
    checkpoint(running, "online")
    with Database(running) as fresh:
        assert fresh.definition("t") == {"primary_key": ["id"]}
