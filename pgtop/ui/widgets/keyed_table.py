"""A DataTable that follows a keyed set of rows, changing only the cells that changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class KeyedTable(DataTable):
    """A DataTable kept in step with `{row key: cells}` by `sync`.

    New keys are added, vanished keys removed, and for rows present in both only the cells
    whose text changed are updated in place, so the cursor and scroll position survive and
    a snapshot with hundreds of rows costs a dictionary comparison.
    """

    COLUMNS: Sequence[tuple[str, str, int | None]] = ()
    """(column key, label, width) for each column; a width of None fits the content."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._cells: dict[str, tuple[str, ...]] = {}

    def on_mount(self) -> None:
        for key, label, width in self.COLUMNS:
            self.add_column(label, width=width, key=key)

    def sync(self, rows: Mapping[str, tuple[str, ...]], sort_column: str | None = None) -> None:
        """Make the table show exactly `rows`, in place."""
        selected = self.selected_key
        added = False
        for key in [key for key in self._cells if key not in rows]:
            self.remove_row(key)
            del self._cells[key]
        for key, cells in rows.items():
            previous = self._cells.get(key)
            if previous is None:
                self.add_row(*cells, key=key)
                added = True
            elif previous != cells:
                self._update_changed(key, previous, cells)
            self._cells[key] = cells
        if added and sort_column is not None:
            self.sort(sort_column, key=lambda cell: cell.order)
        if selected in self._cells and self.get_row_index(selected) != self.cursor_row:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def _update_changed(self, key: str, previous: tuple[str, ...], cells: tuple[str, ...]) -> None:
        for (column, _, width), old, new in zip(self.COLUMNS, previous, cells):
            if old != new:
                self.update_cell(key, column, new, update_width=width is None)

    def sync_cell(self, key: str, column: str, text: str) -> None:
        """Change one cell of one row, if its text differs."""
        index = [name for name, _, _ in self.COLUMNS].index(column)
        cells = self._cells[key]
        if cells[index] != text:
            self._cells[key] = cells[:index] + (text,) + cells[index + 1 :]
            self.update_cell(key, column, text)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_count:
            return None
        row_key: RowKey = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return row_key.value
