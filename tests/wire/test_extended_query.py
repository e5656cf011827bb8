"""The extended query protocol as a raw client drives it (sequences checked against
PostgreSQL 15): named and unnamed statements and portals, skip-till-Sync, formats."""

from __future__ import annotations

import struct

from .client import (
    FLUSH,
    SYNC,
    RawClient,
    bind,
    brief,
    close,
    describe,
    execute,
    message,
    parse,
    query,
)


def _client(server) -> RawClient:
    client = RawClient(server.port)
    client.start()
    return client


def test_parse_bind_describe_execute_sync(server) -> None:
    with _client(server) as client:
        received = client.ask(parse("", "select $1::int + 1"), bind("", "", (b"41",)), describe("P", ""),
                              execute(""), SYNC)
    assert brief(received) == ["1", "2", ("T", [("?column?", 23, 0)]), ("D", ("42",)), ("C", "SELECT 1"), ("Z", "I")]


def test_named_statement_is_described_and_reused(server) -> None:
    with _client(server) as client:
        received = client.ask(parse("s1", "select $1, $2::text", (23,)), describe("S", "s1"), SYNC)
        assert brief(received) == ["1", ("t", [23, 25]), ("T", [("?column?", 23, 0), ("text", 25, 0)]), ("Z", "I")]
        for value in (b"1", b"2"):
            received = client.ask(bind("p1", "s1", (value, b"x")), execute("p1"), SYNC)
            assert brief(received) == ["2", ("D", (value.decode(), "x")), ("C", "SELECT 1"), ("Z", "I")]
        assert brief(client.ask(parse("s1", "select 1"), SYNC)) == [
            ("E", "ERROR", "42P05", 'prepared statement "s1" already exists'), ("Z", "I")]
        assert brief(client.ask(close("S", "s1"), close("S", "nosuch"), close("P", "nosuch"), SYNC)) == [
            "3", "3", "3", ("Z", "I")]
        assert brief(client.ask(bind("", "s1"), SYNC)) == [
            ("E", "ERROR", "26000", 'prepared statement "s1" does not exist'), ("Z", "I")]


def test_parameter_types_are_inferred_from_use(server) -> None:
    with _client(server) as client:
        for text, types in [("select $1", [25]), ("select $1 + 1", [23]), ("select $1 = 1", [23]),
                            ("select $1 || $2", [25, 25]), ("select pg_sleep($1)", [701])]:
            received = client.ask(parse("", text), describe("S", ""), SYNC)
            assert received[1] == ("t", types), text
        assert brief(client.ask(parse("", "select $2"), SYNC)) == [
            ("E", "ERROR", "42P18", "could not determine data type of parameter $1"), ("Z", "I")]


def test_errors_skip_everything_until_sync(server) -> None:
    with _client(server) as client:
        assert brief(client.ask(parse("", "selec 1"), bind("", ""), execute(""), SYNC)) == [
            ("E", "ERROR", "42601", 'syntax error at or near "selec"'), ("Z", "I")]
        assert brief(client.ask(bind("", "nosuch"), execute(""), SYNC)) == [
            ("E", "ERROR", "26000", 'prepared statement "nosuch" does not exist'), ("Z", "I")]
        assert brief(client.ask(parse("", "select 1"), bind("", "", (b"1",)), SYNC)) == [
            "1", ("E", "ERROR", "08P01", 'bind message supplies 1 parameters, but prepared statement "" requires 0'),
            ("Z", "I")]
        assert brief(client.ask(execute("nosuch"), SYNC)) == [
            ("E", "ERROR", "34000", 'portal "nosuch" does not exist'), ("Z", "I")]
        assert brief(client.ask(parse("", "select 1; select 2"), SYNC)) == [
            ("E", "ERROR", "42601", "cannot insert multiple commands into a prepared statement"), ("Z", "I")]
        assert brief(client.ask(message(b"D", b"Xname\0"), SYNC)) == [
            ("E", "ERROR", "08P01", "invalid DESCRIBE message subtype 88"), ("Z", "I")]


def test_empty_statement(server) -> None:
    with _client(server) as client:
        assert brief(client.ask(parse("", ""), bind("", ""), describe("P", ""), execute(""), SYNC)) == [
            "1", "2", "n", "I", ("Z", "I")]


def test_portal_suspension(server) -> None:
    with _client(server) as client:
        client.ask(query("create table t (a int); insert into t values (1), (2), (3)"))
        received = client.ask(parse("", "select a from t order by a"), bind("p", ""), execute("p", 2),
                              execute("p", 2), SYNC)
        assert brief(received) == ["1", "2", ("D", ("1",)), ("D", ("2",)), "s", ("D", ("3",)), ("C", "SELECT 1"),
                                   ("Z", "I")]
        # Portals end with their transaction: after Sync it is gone.
        assert brief(client.ask(execute("p"), SYNC))[0] == ("E", "ERROR", "34000", 'portal "p" does not exist')


def test_flush_sends_what_is_ready_without_ready_for_query(server) -> None:
    with _client(server) as client:
        client.send(parse("", "select 1") + bind("", "") + FLUSH)
        assert [client.read_message(), client.read_message()] == [("1", b""), ("2", b"")]
        assert brief(client.ask(execute(""), SYNC)) == [("D", ("1",)), ("C", "SELECT 1"), ("Z", "I")]


def test_binary_parameters_and_results(server) -> None:
    with _client(server) as client:
        received = client.ask(parse("", "select $1::int4 * 2, 'x'::text"), bind("", "", (struct.pack("!i", 21),), (1,), (1,)),
                              describe("P", ""), execute(""), SYNC)
        assert received[2] == ("T", [("?column?", 23, 1), ("text", 25, 1)])
        assert received[3] == ("D", ("\0\0\0*", "x"))
        assert brief(client.ask(parse("", "select 1.5"), bind("", "", (), (), (1,)), SYNC)) == [
            "1", ("E", "ERROR", "0A000", "binary format is not supported for results of type numeric"), ("Z", "I")]
        assert brief(client.ask(parse("", "select $1::int"), bind("", "", (b"\0",), (1,)), SYNC)) == [
            "1", ("E", "ERROR", "22P03", "incorrect binary data format in bind parameter 1"), ("Z", "I")]


def test_text_parameter_that_does_not_fit_its_type(server) -> None:
    with _client(server) as client:
        assert brief(client.ask(parse("", "select $1::int"), bind("", "", (b"abc",)), SYNC)) == [
            "1", ("E", "ERROR", "22P02", 'invalid input syntax for type integer: "abc"'), ("Z", "I")]


def test_transactions_across_extended_messages(server) -> None:
    with _client(server) as client:
        assert brief(client.ask(parse("", "begin"), bind("", ""), execute(""), SYNC)) == [
            "1", "2", ("C", "BEGIN"), ("Z", "T")]
        # (PostgreSQL folds 1/0 while planning, so its error comes at Bind; pgtop's at Execute.)
        assert brief(client.ask(parse("", "select 1/0"), bind("", ""), execute(""), SYNC))[-2:] == [
            ("E", "ERROR", "22012", "division by zero"), ("Z", "E")]
        assert brief(client.ask(parse("", "select 1"), SYNC)) == [
            ("E", "ERROR", "25P02", "current transaction is aborted, commands ignored until end of transaction block"),
            ("Z", "E")]
        assert brief(client.ask(parse("", "rollback"), bind("", ""), execute(""), SYNC)) == [
            "1", "2", ("C", "ROLLBACK"), ("Z", "I")]


def test_statements_before_sync_share_one_transaction(server) -> None:
    with _client(server) as client:
        client.ask(query("create table t (a int)"))
        client.ask(parse("ins", "insert into t values (1)"), bind("", "ins"), execute(""),
                   parse("", "select 1/0"), bind("", ""), execute(""), SYNC)
        assert brief(client.ask(query("select count(*) from t")))[1] == ("D", ("0",))


def test_deallocate(server) -> None:
    with _client(server) as client:
        client.ask(parse("a", "select 1"), parse("b", "select 2"), SYNC)
        assert brief(client.ask(query("deallocate a"))) == [("C", "DEALLOCATE"), ("Z", "I")]
        assert brief(client.ask(query("deallocate a")))[0] == (
            "E", "ERROR", "26000", 'prepared statement "a" does not exist')
        assert brief(client.ask(query("deallocate all"))) == [("C", "DEALLOCATE ALL"), ("Z", "I")]
        assert brief(client.ask(bind("", "b"), SYNC))[0][2] == "26000"


def test_malformed_message_bodies_are_errors_not_disconnects(server) -> None:
    with _client(server) as client:
        assert brief(client.ask(message(b"Q", b"select 1"))) == [
            ("E", "ERROR", "08P01", "invalid string in message"), ("Z", "I")]
        assert brief(client.ask(message(b"S", b"xx"))) == [
            ("E", "ERROR", "08P01", "invalid message format"), ("Z", "I")]
        assert brief(client.ask(message(b"F", b"\0\0\0\0"))) == [
            ("E", "ERROR", "0A000", "fastpath function calls are not supported"), ("Z", "I")]
        assert brief(client.ask(query("select 1")))[-1] == ("Z", "I")
