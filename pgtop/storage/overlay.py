"""One transaction's own changes, laid over the committed tables its session sees.

Until COMMIT, only the session that made them sees them: tables it created or dropped, rows
it inserted, updated or deleted. At COMMIT the session checks, under the WAL insert lock,
that the tables it relied on are still the ones it saw (another session may have dropped or
created them meanwhile).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pgtop.storage import errors
from pgtop.storage.errors import StorageError
from pgtop.storage.tables import Row, Table


@dataclass(slots=True)
class Transaction:
    explicit: bool  # BEGIN ... COMMIT, or one statement's implicit transaction
    xid: int | None = None  # assigned at the first write
    failed: bool = False
    created: dict[str, Table] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # committed tables dropped: relfilenode
    inserted: dict[str, dict[int, Row]] = field(default_factory=dict)  # into committed tables
    updated: dict[str, dict[int, Row]] = field(default_factory=dict)  # committed rows, new values
    deleted: dict[str, set[int]] = field(default_factory=dict)  # committed rows deleted
    depends: dict[str, int] = field(default_factory=dict)  # committed tables written: relfilenode

    def resolve(self, name: str, committed: Mapping[str, Table]) -> Table | None:
        if name in self.created:
            return self.created[name]
        if name in self.dropped:
            return None
        return committed.get(name)

    def names(self, committed: Iterable[str]) -> list[str]:
        return sorted((set(committed) - set(self.dropped)) | set(self.created))

    def is_local(self, table: Table) -> bool:
        return self.created.get(table.name) is table

    def visible(self, table: Table) -> dict[int, Row]:
        """The table's rows as this transaction sees them, by row id."""
        name = table.name
        if self.is_local(table) or not (name in self.inserted or name in self.updated or name in self.deleted):
            return table.rows
        deleted = self.deleted.get(name, set())
        updated = self.updated.get(name, {})
        rows = {row_id: updated.get(row_id, row) for row_id, row in table.rows.items() if row_id not in deleted}
        rows.update(self.inserted.get(name, {}))
        return rows

    def create(self, table: Table) -> None:
        self.created[table.name] = table

    def drop(self, table: Table) -> None:
        if self.is_local(table):
            del self.created[table.name]
            return
        self.dropped[table.name] = table.relfilenode
        for changes in (self.inserted, self.updated, self.deleted, self.depends):
            changes.pop(table.name, None)

    def insert(self, table: Table, rows: Mapping[int, Row]) -> None:
        target = table.rows if self.is_local(table) else self._writing(table, self.inserted, dict)
        target.update(rows)

    def update(self, table: Table, rows: Mapping[int, Row]) -> None:
        if self.is_local(table):
            table.rows.update(rows)
            return
        inserted = self.inserted.get(table.name, {})
        updated = self._writing(table, self.updated, dict)
        for row_id, row in rows.items():
            (inserted if row_id in inserted else updated)[row_id] = row

    def delete(self, table: Table, row_ids: Iterable[int]) -> None:
        if self.is_local(table):
            for row_id in row_ids:
                table.rows.pop(row_id, None)
            return
        inserted = self.inserted.get(table.name, {})
        deleted = self._writing(table, self.deleted, set)
        for row_id in row_ids:
            if inserted.pop(row_id, None) is None:
                deleted.add(row_id)
                self.updated.get(table.name, {}).pop(row_id, None)

    def _writing(self, table: Table, changes: dict, empty: type) -> dict | set:  # type: ignore[type-arg]
        self.depends[table.name] = table.relfilenode
        return changes.setdefault(table.name, empty())

    def conflict(self, committed: Mapping[str, Table]) -> StorageError | None:
        """What makes this transaction impossible to commit now, if anything."""
        for name in self.created:
            table = committed.get(name)
            if table is not None and self.dropped.get(name) != table.relfilenode:
                return errors.duplicate_table(name)
        for name, relfilenode in {**self.depends, **self.dropped}.items():
            table = committed.get(name)
            if table is None or table.relfilenode != relfilenode:
                return errors.undefined_table(name)
        return None
