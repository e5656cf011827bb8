"""WAL replay progress while the startup process is in recovery."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar

from pgtop.runtime.snapshot import RecoveryProgress


class RecoveryPanel(Vertical):
    """Redo start, replay position and end of WAL, with a bar; hidden when not recovering."""

    DEFAULT_CSS = """
    RecoveryPanel {
        height: auto;
        border: round $accent;
        border-title-color: $accent;
        padding: 0 1;
        display: none;
        &.-recovering { display: block; }
        ProgressBar { width: 100%; }
        Bar { width: 1fr; }
    }
    """

    progress: reactive[RecoveryProgress | None] = reactive(None)
    """The startup process's redo progress, or None outside recovery."""

    def compose(self) -> ComposeResult:
        yield Label(id="redo")
        # A total from the start: an indeterminate bar animates at 15 frames a second, even
        # hidden, and that was most of an idle dashboard's CPU.
        yield ProgressBar(total=1, show_eta=False)

    def on_mount(self) -> None:
        self.border_title = "recovery"

    def watch_progress(self, progress: RecoveryProgress | None) -> None:
        self.set_class(progress is not None, "-recovering")
        if progress is None:
            return
        self.query_one("#redo", Label).update(
            f"redo {progress.redo_start} → {progress.replayed} of {progress.end}"
        )
        self.query_one(ProgressBar).update(total=max(1, progress.records_total), progress=progress.records_done)
