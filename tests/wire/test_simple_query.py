"""The handshake and the simple query protocol, against the threaded test server, as a raw
client sees them (expected sequences checked against PostgreSQL 15)."""

from __future__ import annotations

from .client import RawClient, brief, query, startup_packet

SELECT_1 = [("T", [("?column?", 23, 0)]), ("D", ("1",)), ("C", "SELECT 1"), ("Z", "I")]


def test_handshake(server) -> None:
    with RawClient(server.port) as client:
        received = client.start({"user": "alice", "database": "shop", "application_name": "raw"})
    kinds = [kind for kind, _ in received]
    assert kinds[0] == "R" and received[0][1] == 0  # AuthenticationOk
    assert kinds[-2:] == ["K", "Z"] and received[-1][1] == "I"
    statuses = [value for kind, value in received if kind == "S"]
    names = [name for name, _ in statuses]
    assert names == sorted(names, key=str.lower)
    assert {"server_version", "server_encoding", "client_encoding", "DateStyle", "IntervalStyle",
            "integer_datetimes", "standard_conforming_strings", "application_name", "TimeZone",
            "is_superuser", "session_authorization"} <= set(names)
    assert ("application_name", "raw") in statuses and ("session_authorization", "alice") in statuses
    pid, _ = received[-2][1]
    assert pid in {b.pid for b in server.backends.values()} or server.endings


def test_select_1_and_empty_queries(server) -> None:
    with RawClient(server.port) as client:
        client.start()
        assert client.ask(query("select 1")) == SELECT_1
        assert brief(client.ask(query(""))) == ["I", ("Z", "I")]
        assert brief(client.ask(query(" ; -- nothing"))) == ["I", ("Z", "I")]


def test_an_error_ends_the_rest_of_the_query_string(server) -> None:
    with RawClient(server.port) as client:
        client.start()
        assert brief(client.ask(query("select 1; select 1/0; select 2"))) == [
            ("T", [("?column?", 23, 0)]), ("D", ("1",)), ("C", "SELECT 1"),
            ("E", "ERROR", "22012", "division by zero"), ("Z", "I")]
        # A syntax error anywhere means nothing runs at all.
        assert brief(client.ask(query("select 1; selec 2"))) == [
            ("E", "ERROR", "42601", 'syntax error at or near "selec"'), ("Z", "I")]
        assert client.ask(query("select 1")) == SELECT_1  # the session goes on


def test_error_fields_carry_position_and_hint(server) -> None:
    with RawClient(server.port) as client:
        client.start()
        error = client.ask(query("select foo(1)"))[0][1]
    assert error == {"S": "ERROR", "V": "ERROR", "C": "42883", "M": "function foo(integer) does not exist",
                     "H": "No function matches the given name and argument types. You might need to add explicit "
                          "type casts.", "P": "8"}


def test_transaction_status_and_aborted_blocks(server) -> None:
    with RawClient(server.port) as client:
        client.start()
        assert brief(client.ask(query("begin; select 1/0"))) == [
            ("C", "BEGIN"), ("E", "ERROR", "22012", "division by zero"), ("Z", "E")]
        assert brief(client.ask(query("select 1"))) == [
            ("E", "ERROR", "25P02", "current transaction is aborted, commands ignored until end of transaction block"),
            ("Z", "E")]
        assert brief(client.ask(query("commit"))) == [("C", "ROLLBACK"), ("Z", "I")]
        assert brief(client.ask(query("commit"))) == [
            ("N", "WARNING", "25P01", "there is no transaction in progress"), ("C", "COMMIT"), ("Z", "I")]
        assert brief(client.ask(query("rollback"))) == [
            ("N", "WARNING", "25P01", "there is no transaction in progress"), ("C", "ROLLBACK"), ("Z", "I")]
        assert brief(client.ask(query("begin; begin"))) == [
            ("C", "BEGIN"), ("N", "WARNING", "25001", "there is already a transaction in progress"), ("C", "BEGIN"),
            ("Z", "T")]
        assert brief(client.ask(query("end"))) == [("C", "COMMIT"), ("Z", "I")]
        assert brief(client.ask(query("start transaction"))) == [("C", "START TRANSACTION"), ("Z", "T")]
        assert brief(client.ask(query("abort"))) == [("C", "ROLLBACK"), ("Z", "I")]
        assert brief(client.ask(query("select 1; begin; select 2")))[-1] == ("Z", "T")


def test_a_multi_statement_query_is_one_implicit_transaction(server) -> None:
    with RawClient(server.port) as client:
        client.start()
        client.ask(query("create table t (a int); insert into t values (1); select 1/0"))
        assert brief(client.ask(query("select * from t")))[0] == (
            "E", "ERROR", "42P01", 'relation "t" does not exist')
        client.ask(query("create table t (a int); insert into t values (1); commit; select 1/0"))
        assert brief(client.ask(query("select count(*) from t")))[1] == ("D", ("1",))


def test_rows_committed_by_one_session_are_seen_by_another(server) -> None:
    with RawClient(server.port) as writer, RawClient(server.port) as reader:
        writer.start()
        reader.start()
        writer.ask(query("create table t (a int)"))
        writer.ask(query("begin; insert into t values (1), (2); commit"))
        assert brief(reader.ask(query("select count(*) from t")))[1] == ("D", ("2",))


def test_set_of_a_reported_parameter_sends_parameter_status(server) -> None:
    with RawClient(server.port) as client:
        client.start()
        assert brief(client.ask(query("set application_name = 'renamed'"))) == [
            ("C", "SET"), ("S", ("application_name", "renamed")), ("Z", "I")]
        assert brief(client.ask(query("begin; set application_name = 'x'")))[-2:] == [
            ("S", ("application_name", "x")), ("Z", "T")]
        # Rolling the SET back changes the value back, and that is reported too.
        assert brief(client.ask(query("rollback"))) == [
            ("C", "ROLLBACK"), ("S", ("application_name", "renamed")), ("Z", "I")]


def test_a_bad_startup_setting_is_fatal_after_authentication(server) -> None:
    with RawClient(server.port) as client:
        client.send(startup_packet({"user": "u", "options": "-c nosuch=1"}))
        received = client.rest()
    assert brief(received) == [("R", 0), ("E", "FATAL", "42704", 'unrecognized configuration parameter "nosuch"')]
