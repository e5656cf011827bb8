"""Client backends as pg_stat_activity shows them."""

from __future__ import annotations

from pgtop.runtime.snapshot import Snapshot
from pgtop.ui.rows import BACKEND_COLUMNS, backend_cells, is_session
from pgtop.ui.widgets.keyed_table import KeyedTable


class BackendsTable(KeyedTable):
    """One row per entry of `snapshot.activity`: PID, user, state, since, query."""

    COLUMNS = BACKEND_COLUMNS

    def apply(self, snapshot: Snapshot) -> None:
        """Show this snapshot's backend activity."""
        self.sync({str(a.pid): backend_cells(a, snapshot.at) for a in snapshot.activity if is_session(a)})
