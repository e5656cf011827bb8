"""The postmaster's children, one row each, updated in place from snapshots."""

from __future__ import annotations

from pgtop.core.state import State
from pgtop.runtime.snapshot import Snapshot
from pgtop.ui.rows import (
    CHILD_COLUMN,
    CHILD_COLUMNS,
    ChildRow,
    child_row,
    exited_row,
    next_start,
    throttled_rows,
)
from pgtop.ui.widgets.keyed_table import KeyedTable

EXITED_LINGER = 3.0


class ChildrenTable(KeyedTable):
    """Every child with its supervisor status, restarts, last exit, load and lineage.

    | Key | Description |
    | :- | :- |
    | up / down | Select a child (the target of the signal keys). |

    A child that leaves the snapshot stays on screen as "exited" for a few seconds, or until
    its successor (same kind or worker name) is there; a keep-alive kind held back by a
    restart throttle shows as "throttled" with its countdown.
    """

    COLUMNS = CHILD_COLUMNS
    DROPPABLE = ("started", "rss", "cpu")
    LAST_COLUMN_ROOM = 58  # "20536 → 20567, crash, everyone restarts, back in 43.2 ms", and a margin

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, ChildRow] = {}
        self._exited_at: dict[str, float] = {}

    def apply(self, snapshot: Snapshot, now: float) -> None:
        """Show this snapshot's children."""
        state = snapshot.state
        rows = {str(child.id): child_row(snapshot, child) for child in state.children.values()}
        rows.update((row.key, row) for row in throttled_rows(state, now))
        self._keep_exited(rows, state, now)
        self._rows = rows
        self.sync({key: row.cells for key, row in rows.items()}, sort_column="kind")

    def _keep_exited(self, rows: dict[str, ChildRow], state: State, now: float) -> None:
        successors = {row.lineage_key for row in rows.values() if row.has_lineage}
        for key, row in self._rows.items():
            if key in rows or row.status == "throttled":
                continue
            if row.has_lineage and row.lineage_key in successors:
                continue
            if row.status != "exited":
                rows[key] = exited_row(row, state)
                self._exited_at[key] = now
            elif now - self._exited_at[key] < EXITED_LINGER:
                rows[key] = row
        for key in [key for key in self._exited_at if key not in rows]:
            del self._exited_at[key]

    def tick(self, state: State, now: float) -> None:
        """Count the throttle countdowns down between snapshots."""
        fresh = {row.key: row for row in throttled_rows(state, now)}
        for key, row in self._rows.items():
            if row.status == "throttled":
                cell = fresh[key].cells[CHILD_COLUMN["next_start"]] if key in fresh else next_start(0)
                self.sync_cell(key, "next_start", cell)

    @property
    def selected_row(self) -> ChildRow | None:
        """The child under the cursor."""
        key = self.selected_key
        return self._rows.get(key) if key is not None else None
