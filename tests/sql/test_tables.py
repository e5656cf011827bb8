"""Tables: CREATE/DROP, INSERT ... RETURNING, SELECT with WHERE/ORDER BY/LIMIT and aggregates,
UPDATE, DELETE, constraints, what reaches Storage, and writes refused during recovery."""

from __future__ import annotations

import pytest

from pgtop.sql import ColumnDef, MemoryDatabase, MemoryEnvironment, TableDef

from .conftest import Sql

ITEMS = "create table items (id int primary key, name varchar(3) not null, price numeric, seen timestamptz, ok bool, n bigint, note text)"


@pytest.fixture
def shop(sql: Sql) -> Sql:
    sql.run(ITEMS)
    sql.run("insert into items (id, name, price, ok) values (1, 'a', 1.50, true), (2, 'b', 2, false), (3, 'c', null, null)")
    return sql


def test_create_table_reaches_storage_with_postgresql_type_names(sql) -> None:
    assert sql.run(ITEMS).tag == "CREATE TABLE"
    assert sql.storage.get_table("items") == TableDef(
        "items",
        (ColumnDef("id", "int4", -1, True), ColumnDef("name", "varchar", 7, True), ColumnDef("price", "numeric"),
         ColumnDef("seen", "timestamptz"), ColumnDef("ok", "bool"), ColumnDef("n", "int8"), ColumnDef("note", "text")),
        ("id",),
    )


def test_insert_returning_and_tags(sql) -> None:
    sql.run(ITEMS)
    outcome = sql.run("insert into items (id, name) values (7, 'x'), (8, 'y') returning id, id + 1 as next, *")
    assert outcome.tag == "INSERT 0 2"
    assert outcome.names == ["id", "next", "id", "name", "price", "seen", "ok", "n", "note"]
    assert outcome.rows == [("7", "8", "7", "x", None, None, None, None, None),
                            ("8", "9", "8", "y", None, None, None, None, None)]


def test_rows_are_stored_as_text_in_column_order(shop) -> None:
    assert sorted(row for _, row in shop.storage.scan("items")) == [
        ("1", "a", "1.50", None, "t", None, None), ("2", "b", "2", None, "f", None, None),
        ("3", "c", None, None, None, None, None)]


def test_assignment_converts_literals_to_column_types(sql) -> None:
    sql.run(ITEMS)
    outcome = sql.run("insert into items values ('1', 'ab', '1.50', '2020-01-02 03:04:05', 'yes', '9', 7) returning *")
    assert outcome.rows == [("1", "ab", "1.50", "2020-01-02 03:04:05+00", "t", "9", "7")]
    assert outcome.oids == [23, 1043, 1700, 1184, 16, 20, 25]


@pytest.mark.parametrize(
    ("query", "expected", "tag"),
    [
        ("select * from items where id > 1 order by id desc limit 1", [("3", "c", None, None, None, None, None)],
         "SELECT 1"),
        ("select name from items order by price desc", [("c",), ("b",), ("a",)], "SELECT 3"),
        ("select name from items order by price nulls first", [("c",), ("a",), ("b",)], "SELECT 3"),
        ("select name from items order by 1 limit 2 offset 1", [("b",), ("c",)], "SELECT 2"),
        ("select name as x from items order by x desc", [("c",), ("b",), ("a",)], "SELECT 3"),
        ("select i.name from items i where i.ok", [("a",)], "SELECT 1"),
        ("select name from items where ok is null or price = 2 order by id", [("b",), ("c",)], "SELECT 2"),
        ("select distinct ok is null from items order by 1", [("f",), ("t",)], "SELECT 2"),
        ("select count(*), count(price), sum(id), min(name), max(price), avg(id) from items",
         [("3", "2", "6", "a", "2", "2.0000000000000000")], "SELECT 1"),
        ("select count(*) from items where false", [("0",)], "SELECT 1"),
        ("select max(id) from items where false", [(None,)], "SELECT 1"),
        ("table items", [("1", "a", "1.50", None, "t", None, None), ("2", "b", "2", None, "f", None, None),
                         ("3", "c", None, None, None, None, None)], "SELECT 3"),
    ],
)
def test_select_from_a_table(shop, query, expected, tag) -> None:
    outcome = shop.run(query)
    assert (outcome.rows, outcome.tag) == (expected, tag)


def test_aggregate_result_types_are_postgresql_s(shop) -> None:
    assert shop.run("select count(*), sum(id), sum(n), min(name), avg(id) from items").oids == [20, 20, 1700, 25, 1700]


def test_update_and_delete(shop) -> None:
    outcome = shop.run("update items set price = price * 2, note = 'x' where price is not null returning id, price")
    assert (outcome.tag, sorted(outcome.rows)) == ("UPDATE 2", [("1", "3.00"), ("2", "4")])
    outcome = shop.run("delete from items where id <> 2 returning name")
    assert (outcome.tag, sorted(outcome.rows)) == ("DELETE 2", [("a",), ("c",)])
    assert shop.rows("select id, note from items") == [("2", "x")]


def test_drop_table(shop) -> None:
    assert shop.run("drop table items").tag == "DROP TABLE"
    assert shop.storage.get_table("items") is None
    assert shop.error("select * from items").sqlstate == "42P01"


@pytest.mark.parametrize(
    ("query", "sqlstate", "message", "detail", "position"),
    [
        (ITEMS, "42P07", 'relation "items" already exists', None, None),
        ("drop table nosuch", "42P01", 'table "nosuch" does not exist', None, None),
        ("insert into nosuch values (1)", "42P01", 'relation "nosuch" does not exist', None, 13),
        ("insert into items values (9, 'abcd')", "22001", "value too long for type character varying(3)", None, None),
        ("insert into items values (null, 'x')", "23502",
         'null value in column "id" of relation "items" violates not-null constraint',
         "Failing row contains (null, x, null, null, null, null, null).", None),
        ("insert into items (id, name) values (1, 'x')", "23505",
         'duplicate key value violates unique constraint "items_pkey"', "Key (id)=(1) already exists.", None),
        ("update items set id = 1", "23505", 'duplicate key value violates unique constraint "items_pkey"',
         "Key (id)=(1) already exists.", None),
        ("insert into items values (9, 'x', 1, now(), true, 1, 'x', 9)", "42601",
         "INSERT has more expressions than target columns", None, 59),
        ("insert into items (id, name) values (9)", "42601", "INSERT has more target columns than expressions",
         None, 24),
        ("insert into items (zz) values (1)", "42703", 'column "zz" of relation "items" does not exist', None, 20),
        ("insert into items (id) values ('x')", "22P02", 'invalid input syntax for type integer: "x"', None, 32),
        ("insert into items (id) values ('9'::text)", "42804",
         'column "id" is of type integer but expression is of type text', None, 32),
        ("update items set zz = 1", "42703", 'column "zz" of relation "items" does not exist', None, 18),
        ("select name + 1 from items", "42883", "operator does not exist: character varying + integer", None, 13),
        ("select id, count(*) from items", "42803",
         'column "items.id" must appear in the GROUP BY clause or be used in an aggregate function', None, 8),
        ("select id from items where count(*) > 1", "42803", "aggregate functions are not allowed in WHERE", None, 28),
        ("select id from items where id", "42804", "argument of WHERE must be type boolean, not type integer",
         None, 28),
        ("select id from items order by 5", "42P10", "ORDER BY position 5 is not in select list", None, 31),
        ("select id from items limit -1", "2201W", "LIMIT must not be negative", None, None),
        ("select x.id from items", "42P01", 'missing FROM-clause entry for table "x"', None, 8),
        ("select items.nope from items", "42703", "column items.nope does not exist", None, 8),
        ("create table u (x foo)", "42704", 'type "foo" does not exist', None, 19),
        ("create table u (a int, a int)", "42701", 'column "a" specified more than once', None, None),
        ("create index i on items (id)", "0A000", "CREATE INDEX is not supported by pgtop", None, 8),
        ("delete from pg_stat_activity", "55000", 'cannot delete from view "pg_stat_activity"',
         "Views that do not select from a single table or view are not automatically updatable.", None),
    ],
)
def test_table_errors(shop, query, sqlstate, message, detail, position) -> None:
    error = shop.error(query)
    assert (error.sqlstate, error.message, error.detail, error.position) == (sqlstate, message, detail, position)


def test_a_failed_statement_leaves_storage_unchanged(shop) -> None:
    shop.error("insert into items (id, name) values (10, 'x'), (1, 'dup')")
    assert shop.value("select count(*) from items") == "3"


def test_create_table_if_not_exists_and_drop_if_exists_notice(shop) -> None:
    outcome = shop.run("create table if not exists items (x int)")
    assert (outcome.tag, outcome.notices) == ("CREATE TABLE", [("NOTICE", "42P07", 'relation "items" already exists, skipping')])
    outcome = shop.run("drop table if exists nosuch")
    assert (outcome.tag, outcome.notices) == ("DROP TABLE", [("NOTICE", "00000", 'table "nosuch" does not exist, skipping')])


def test_sessions_sharing_a_database_see_each_others_commits() -> None:
    database = MemoryDatabase()
    first, second = Sql(database=database), Sql(database=database)
    first.run("create table t (a int)")
    first.run("insert into t values (1), (2)")
    assert second.value("select count(*) from t") == "2"


@pytest.mark.parametrize(
    ("query", "command"),
    [
        ("create table z (a int)", "CREATE TABLE"),
        ("drop table items", "DROP TABLE"),
        ("insert into items values (5, 'x')", "INSERT"),
        ("update items set id = 5", "UPDATE"),
        ("delete from items", "DELETE"),
    ],
)
def test_writes_are_refused_during_recovery(query, command) -> None:
    env = MemoryEnvironment()
    sql = Sql(env)
    sql.run(ITEMS)
    env.recovery = True
    error = sql.error(query)
    assert (error.sqlstate, error.message) == ("25006", f"cannot execute {command} in a read-only transaction")
    assert sql.rows("select count(*) from items") == [("0",)]  # reads still work


def test_pg_stat_activity_is_served_from_the_environment() -> None:
    from pgtop.runtime.snapshot import BackendActivity

    rows = [BackendActivity(101, "client backend", "alice", "shop", "psql", "127.0.0.1", "active",
                            "select 1", 1_700_000_000.0, 1_700_000_001.5),
            BackendActivity(102, "checkpointer", "", "", "", None, "", "", 1_700_000_000.0, 1_700_000_000.0)]
    sql = Sql(MemoryEnvironment(activity=lambda: rows))
    outcome = sql.run("select pid, backend_type, state, query, backend_start, application_name, client_addr, "
                      "usename, datname from pg_stat_activity where state = 'active'")
    assert outcome.oids == [23, 25, 25, 25, 1184, 25, 869, 19, 19]
    assert outcome.rows == [("101", "client backend", "active", "select 1", "2023-11-14 22:13:20+00", "psql",
                             "127.0.0.1", "alice", "shop")]
    assert sql.run("select * from pg_stat_activity order by pid").names == [
        "datname", "pid", "usename", "application_name", "client_addr", "backend_start", "state_change", "state",
        "query", "backend_type"]
    assert sql.rows("select count(*) from pg_catalog.pg_stat_activity where client_addr is null") == [("1",)]
