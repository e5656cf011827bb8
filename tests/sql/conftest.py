"""Drive the engine one statement at a time, as a session would: parse, analyse, bind, execute,
inside a transaction that commits (or rolls back on error)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pgtop.sql import Engine, MemoryDatabase, MemoryEnvironment, MemoryStorage, SqlError
from pgtop.wire.executor import Result
from pgtop.wire.startup import StartupMessage


@dataclass
class Outcome:
    """What a client would see: column names and type OIDs, rows as text, the tag, notices."""

    names: list[str] | None
    oids: list[int] | None
    rows: list[tuple[str | None, ...]]
    tag: str
    notices: list[tuple[str, str, str]]


class Sql:
    def __init__(self, env: MemoryEnvironment | None = None, database: MemoryDatabase | None = None) -> None:
        self.env = env or MemoryEnvironment()
        self.storage = MemoryStorage(database)
        self.engine = Engine(self.env, self.storage)
        self.engine.start_session(StartupMessage("alice", "shop"))

    def result(self, query: str, params: tuple[bytes | None, ...] = (), types: tuple[int, ...] | None = None) -> Result:
        statements = self.engine.parse(query)
        assert len(statements) == 1, statements
        self.engine.begin()
        try:
            prepared = self.engine.analyze(statements[0], types if types is not None else (None if not params else (0,) * len(params)))
            bound = self.engine.bind(prepared, params, (0,) * len(params), (0,) * len(prepared.columns or ()))
            result = self.engine.execute(bound)
        except BaseException:
            self.engine.rollback()
            raise
        self.engine.commit()
        return result

    def run(self, query: str, *params: str | None) -> Outcome:
        encoded = tuple(None if p is None else p.encode() for p in params)
        result = self.result(query, encoded)
        columns = result.columns
        return Outcome(
            [c.name for c in columns] if columns is not None else None,
            [c.type_oid for c in columns] if columns is not None else None,
            [tuple(None if v is None else v.decode() for v in row) for row in result.rows],
            result.tag,
            [(n.severity, n.sqlstate, n.message) for n in result.notices],
        )

    def rows(self, query: str, *params: str | None) -> list[tuple[str | None, ...]]:
        return self.run(query, *params).rows

    def value(self, query: str, *params: str | None) -> str | None:
        rows = self.rows(query, *params)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return rows[0][0]

    def error(self, query: str) -> SqlError:
        with pytest.raises(SqlError) as caught:
            self.run(query)
        return caught.value


@pytest.fixture
def sql() -> Sql:
    return Sql()
