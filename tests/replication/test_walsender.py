"""The walsender's replication commands: the grammar, and the answers a real client gets
from a running pgtop primary (texts and SQLSTATEs as a PostgreSQL 15 walsender gives them)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import pq

from pgtop.children.walsender_grammar import Command, parse_command
from pgtop.storage.controlfile import read_control_file
from pgtop.wire.errors import PgError


@pytest.mark.parametrize(("text", "command"), [
    ("IDENTIFY_SYSTEM", Command("IDENTIFY_SYSTEM")),
    ("identify_system;", Command("IDENTIFY_SYSTEM")),
    ("SHOW wal_segment_size", Command("SHOW", name="wal_segment_size")),
    ("TIMELINE_HISTORY 2", Command("TIMELINE_HISTORY", timeline=2)),
    ("START_REPLICATION 0/3000000 TIMELINE 1", Command("START_REPLICATION", lsn=0x3000000, timeline=1)),
    ("START_REPLICATION PHYSICAL 1/A0", Command("START_REPLICATION", lsn=(1 << 32) + 0xA0)),
    ("START_REPLICATION SLOT s1 PHYSICAL 0/0", Command("START_REPLICATION", name="s1")),
    ("BASE_BACKUP LABEL 'a''b' WAL FAST NOWAIT", Command("BASE_BACKUP")),
    ("BASE_BACKUP (LABEL 'x', WAL, CHECKPOINT 'fast', WAIT false)", Command("BASE_BACKUP")),
    ("select 1", Command("SQL")),
    ("SELECT pg_is_in_recovery()", Command("SQL")),
])
def test_the_replication_grammar(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(("text", "message"), [
    ("IDENTIFY_SYSTEM now", "syntax error"),
    ("START_REPLICATION", "syntax error"),
    ("START_REPLICATION 0/0 TIMELINE", "syntax error"),
    ("START_REPLICATION 0/0 TIMELINE 0", "invalid timeline 0"),
    ("BASE_BACKUP LABEL 'x' NOWAY", "syntax error"),
    ("BASE_BACKUP (NOWAIT)", 'unrecognized base backup option: "nowait"'),
])
def test_bad_replication_commands_are_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(PgError) as raised:
        parse_command(text)
    assert (raised.value.sqlstate, raised.value.message) == ("42601", message)


def replication_connection(cluster: Any) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", dbname="replication",
                           replication="true", autocommit=True, connect_timeout=10)


def run(connection: psycopg.Connection, command: str) -> pq.abc.PGresult:
    """PQexec(): replication commands take the simple query protocol only."""
    return connection.pgconn.exec_(command.encode())


def field(result: pq.abc.PGresult, code: int) -> str:
    value = result.error_field(code)
    return value.decode() if value is not None else ""


def test_a_replication_connection_answers_as_a_walsender(make_cluster: Any) -> None:
    primary = make_cluster(max_wal_senders=3).start()
    with replication_connection(primary) as connection:
        identify = run(connection, "IDENTIFY_SYSTEM")
        assert identify.status == pq.ExecStatus.TUPLES_OK
        assert [identify.fname(i) for i in range(4)] == [b"systemid", b"timeline", b"xlogpos", b"dbname"]
        system_id = str(read_control_file(str(primary.datadir)).system_identifier)
        assert identify.get_value(0, 0).decode() == system_id
        assert identify.get_value(0, 1) == b"1" and identify.get_value(0, 3) is None
        assert identify.command_status == b"IDENTIFY_SYSTEM"
        show = run(connection, "SHOW max_wal_senders")
        assert show.get_value(0, 0) == b"3" and show.command_status == b"SHOW"
        cases = [
            ("TIMELINE_HISTORY 1", "58P01", 'could not open file "pg_wal/00000001.history": No such file or directory'),
            ("select 1", "0A000", "cannot execute SQL commands in WAL sender for physical replication"),
            ("START_REPLICATION SLOT s1 PHYSICAL 0/0", "42704", 'replication slot "s1" does not exist'),
            ("START_REPLICATION 0/0 TIMELINE 7", "XX000", "requested timeline 7 is not in this server's history"),
            ("IDENTIFY_SYSTEM please", "42601", "syntax error"),
        ]
        for command, sqlstate, message in cases:
            failed = run(connection, command)
            assert failed.status == pq.ExecStatus.FATAL_ERROR, command
            assert (field(failed, pq.DiagnosticField.SQLSTATE), field(failed, pq.DiagnosticField.MESSAGE_PRIMARY)) == (
                sqlstate, message)
        assert run(connection, "IDENTIFY_SYSTEM").status == pq.ExecStatus.TUPLES_OK, "errors end the command only"
        [walsender] = [c for c in primary.status()["children"] if c["kind"] == "walsender"]
    primary.wait_for_log(r"ERROR:  cannot execute SQL commands in WAL sender for physical replication$")
    primary.wait_for(lambda s: not [c for c in s["children"] if c["pid"] == walsender["pid"]])
    assert not any("server process" in line for line in primary.messages()), "it left with exit 0"
