"""A DataTable that follows a keyed set of rows, changing only the cells that changed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Self

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

SegmentLines = list[list[Segment]]
RENDERED_CELLS = 4096  # a screenful of 500 backends' rows, with and without the cursor
ROWS_REPAINTED_ALONE = 16  # more changed rows than this: one repaint of the whole table


class KeyedTable(DataTable):
    """A DataTable kept in step with `{row key: cells}` by `sync`.

    New keys are added, vanished keys removed, and for rows present in both only the cells
    whose text changed are updated in place, so the cursor and scroll position survive and
    a snapshot with hundreds of rows costs a dictionary comparison.

    Repainting is kept as cheap as the change. DataTable keys its cell cache on a counter
    that every `update_cell` bumps, and repaints the whole table: one new CPU% figure
    re-rendered every visible cell through Rich (about 10 ms for the children, every stats
    round) and sent every line to the terminal. This table keys its own cache on the
    cell's text instead, and repaints only the rows that changed (the whole table once when
    many did). (`_render_cell` is DataTable's, hence the `textual` pin to one major version;
    tests/ui/test_ui_tables.py fails if the cache or the row repaints stop applying.)

    A table narrower than its columns gives up the `DROPPABLE` ones, first to last, until
    the last column (the one sized to its content) has `LAST_COLUMN_ROOM` cells, and takes
    them back when it widens: on a presenter's large font, the lineage of a restart matters
    more than a child's RSS.
    """

    COLUMNS: Sequence[tuple[str, str, int | None]] = ()
    """(column key, label, width) for each column; a width of None fits the content."""
    DROPPABLE: Sequence[str] = ()
    """Keys of columns the table may hide when it is narrow, the first hidden first."""
    LAST_COLUMN_ROOM = 0
    """The cells the last column should have before any column is hidden."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._cells: dict[str, tuple[str, ...]] = {}  # every column's text, shown or not
        self._shown: tuple[int, ...] = tuple(range(len(self.COLUMNS)))  # indices into COLUMNS
        self._rendered: LRUCache[tuple, SegmentLines] = LRUCache(RENDERED_CELLS)

    def on_mount(self) -> None:
        self._add_columns()

    def on_resize(self) -> None:
        shown = self.columns_for(self.scrollable_content_region.width)
        if shown != self._shown:
            self._shown = shown
            self._rebuild()

    def columns_for(self, width: int) -> tuple[int, ...]:
        """The indices of the columns to show in a table `width` cells wide."""
        shown = list(range(len(self.COLUMNS)))
        droppable = [i for key in self.DROPPABLE for i, (name, _, _) in enumerate(self.COLUMNS) if name == key]
        padding = 2 * self.cell_padding
        while droppable:
            fixed = sum((self.COLUMNS[i][2] or 0) + padding for i in shown[:-1])
            if width - fixed - padding >= self.LAST_COLUMN_ROOM:
                break
            shown.remove(droppable.pop(0))
        return tuple(shown)

    def _add_columns(self) -> None:
        for index in self._shown:
            key, label, width = self.COLUMNS[index]
            self.add_column(label, width=width, key=key)

    def _rebuild(self) -> None:
        """Show the columns of `_shown`: the rows again in their order, the cursor on the
        same row."""
        selected = self.selected_key
        order = [row.key.value for row in self.ordered_rows]
        self.clear(columns=True)
        self._add_columns()
        for key in order:
            self.add_row(*self._visible(self._cells[key]), key=key)
        if selected is not None:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def _visible(self, cells: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(cells[index] for index in self._shown)

    def sync(self, rows: Mapping[str, tuple[str, ...]], sort_column: str | None = None) -> None:
        """Make the table show exactly `rows`, in place."""
        selected = self.selected_key
        added = False
        for key in [key for key in self._cells if key not in rows]:
            self.remove_row(key)
            del self._cells[key]
        with self._repainting_changed_rows():
            for key, cells in rows.items():
                previous = self._cells.get(key)
                if previous is None:
                    self.add_row(*self._visible(cells), key=key)  # appended: the noted rows keep their places
                    added = True
                elif previous != cells:
                    self._update_changed(key, previous, cells)
                self._cells[key] = cells
        if added and sort_column is not None:
            self.sort(sort_column, key=lambda cell: cell.order)
        if selected in self._cells and self.get_row_index(selected) != self.cursor_row:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def _update_changed(self, key: str, previous: tuple[str, ...], cells: tuple[str, ...]) -> None:
        self._row_being_updated = self.get_row_index(key)
        try:
            for index in self._shown:
                if previous[index] != cells[index]:
                    column, _, width = self.COLUMNS[index]
                    self.update_cell(key, column, cells[index], update_width=width is None)
        finally:
            self._row_being_updated = None

    def sync_cell(self, key: str, column: str, text: str) -> None:
        """Change one cell of one row, if its text differs."""
        index = [name for name, _, _ in self.COLUMNS].index(column)
        cells = self._cells[key]
        if cells[index] != text:
            updated = cells[:index] + (text,) + cells[index + 1 :]
            with self._repainting_changed_rows():
                self._update_changed(key, cells, updated)
            self._cells[key] = updated

    # -- rendering ---------------------------------------------------------------------------

    _row_being_updated: int | None = None
    _changed_rows: set[int] | None = None

    @contextmanager
    def _repainting_changed_rows(self) -> Iterator[None]:
        """`update_cell` repaints the whole table, every time. Within this, the row is only
        noted, and at the end the noted rows are repainted: each alone when there are a
        few (a stats round at idle), the whole table at once when there are many (finding
        a row's place costs a pass over all rows, and 500 backends change together)."""
        self._changed_rows = set()
        try:
            yield
        finally:
            changed, self._changed_rows = self._changed_rows, None
            if len(changed) > ROWS_REPAINTED_ALONE:
                self.refresh()
            else:
                for row in changed:
                    self.refresh_row(row)

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Self:
        """See `_repainting_changed_rows`. (A column that has to widen still relayouts the
        table, through `layout`.)"""
        row, changed = self._row_being_updated, self._changed_rows
        if row is not None and changed is not None and not regions and repaint and not layout and not recompose:
            changed.add(row)
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _render_cell(
        self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool = False, hover: bool = False
    ) -> SegmentLines:
        if column_index < 0:  # row labels: none here
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        column_key = self._column_locations.get_key(column_index)
        if row_index < 0:  # the header
            row_key, text = self._header_row_key, self.columns[column_key].label.plain
        else:
            row_key = self._row_locations.get_key(row_index)
            text = self._data[row_key][column_key]
        key = (
            row_key, column_key, row_index, text, base_style, width,
            cursor, hover, self._show_hover_cursor, self._pseudo_class_state,
        )  # DataTable's own key, with the cell's text (and width) for its update counter
        lines = self._rendered.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._rendered[key] = lines
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()  # the cursor, padding, fixed rows... changed
        self._rendered.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()  # a theme or CSS change: new colours everywhere
        self._rendered.clear()

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_count:
            return None
        row_key: RowKey = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return row_key.value
