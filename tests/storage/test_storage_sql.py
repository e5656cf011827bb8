"""The SQL engine (pgtop.sql) on WAL-logged storage: statements from two sessions, a crash."""

from __future__ import annotations

import pytest
from storage_helpers import recover

from pgtop.storage.database import Database

sql_engine = pytest.importorskip("pgtop.sql.engine")
from pgtop.sql.memory import MemoryEnvironment
from pgtop.storage.sqlstorage import WalStorage
from pgtop.wire.errors import PgError


class Session:
    """Runs statements the way a backend does: each in its own transaction."""

    def __init__(self, datadir: str) -> None:
        self.database = Database(datadir)
        self.engine = sql_engine.Engine(MemoryEnvironment(), WalStorage(self.database))

    def run(self, sql: str) -> list[tuple[str, list[list[bytes | None]]]]:
        results = []
        for statement in self.engine.parse(sql):
            self.engine.begin()
            try:
                bound = self.engine.bind(self.engine.analyze(statement, None), [], [], [])
                result = self.engine.execute(bound)
            except BaseException:
                self.engine.rollback()
                raise
            self.engine.commit()
            results.append((result.tag, result.rows))
        return results

    def close(self) -> None:
        self.database.close()


def test_sql_statements_are_durable_and_shared(running):
    first, second = Session(running), Session(running)
    try:
        first.run("CREATE TABLE t (a int PRIMARY KEY, b varchar(10), c numeric(5,2))")
        assert first.run("INSERT INTO t VALUES (1, 'x', 1.5), (2, 'y', 2)") == [("INSERT 0 2", [])]
        first.run("UPDATE t SET b = 'z' WHERE a = 2; DELETE FROM t WHERE a = 1")
        assert second.run("SELECT a, b, c FROM t") == [("SELECT 1", [[b"2", b"z", b"2.00"]])]
        with pytest.raises(PgError) as raised:
            second.run("CREATE TABLE t (a int)")
        assert raised.value.sqlstate == "42P07"
    finally:
        first.close()
        second.close()
    recover(running)  # a crash: nothing was checkpointed
    after = Session(running)
    try:
        assert after.run("SELECT a, b, c FROM t") == [("SELECT 1", [[b"2", b"z", b"2.00"]])]
        assert after.engine.storage.get_table("t").columns[1].type_modifier == 14  # varchar(10)
    finally:
        after.close()
