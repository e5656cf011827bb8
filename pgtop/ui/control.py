"""The keys that command the cluster: each is one controller call, guarded and confirmed."""

from __future__ import annotations

from collections.abc import Callable

from pgtop.core.vocabulary import Shutdown, Sig
from pgtop.runtime.snapshot import CommandRefused, ShutdownMode
from pgtop.ui.screens.confirm_screen import ConfirmScreen

READ_ONLY = "read-only: nothing sent"


class ClusterCommands:
    """Actions for the command keys, mixed into `PgtopApp`.

    Read-only mode answers every one of them with "read-only: nothing sent"; destructive ones
    ask first unless confirmations are off; a `CommandRefused` becomes a one-line message.
    """

    # -- the guard every command goes through ------------------------------------------------

    def command(
        self, what: str, call: Callable[[], object], *, question: str | None = None, confirm_label: str = ""
    ) -> None:
        """Send `call` (after asking `question`, if given), then say `what` was done."""
        if self.readonly:
            self.say(READ_ONLY, "warning")
        elif question is None:
            self.send(what, call)
        else:
            self.ask(question, confirm_label, lambda: self.send(what, call))

    def ask(self, question: str, confirm_label: str, then: Callable[[], object]) -> None:
        """Run `then` once the user confirms (at once when confirmations are off)."""
        if not self.confirm:
            then()
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                then()
            else:
                self.say("cancelled: nothing sent")

        self.push_screen(ConfirmScreen(question, confirm_label), answered)

    def send(self, what: str, call: Callable[[], object]) -> bool:
        try:
            result = call()
        except CommandRefused as refusal:
            self.say(str(refusal), "warning")
            return False
        except OSError as error:
            self.say(f"{what}: failed: {error.strerror or error}", "error")
            return False
        self.say(result if isinstance(result, str) and result else what)
        return True

    # -- the postmaster ----------------------------------------------------------------------

    def action_reload(self) -> None:
        self.command(f"reload requested: SIGHUP sent to postmaster {self._postmaster()}", self.controller.reload)

    def action_shutdown(self, mode_name: str) -> None:
        mode = ShutdownMode(mode_name)
        if self.readonly:
            self.say(READ_ONLY, "warning")
            return
        try:
            self._check_shutdown(mode)
        except CommandRefused as refusal:
            self.say(str(refusal), "warning")
            return
        signal = f"SIG{mode.signal.name}"
        pid = self._postmaster()
        self.command(
            f"{mode.value} shutdown requested: {signal} sent to postmaster {pid}",
            lambda: self._request_shutdown(mode),
            question=f"Send {signal} ({mode.value} shutdown) to the postmaster (PID {pid})?",
            confirm_label=f"Send {signal}",
        )

    def _check_shutdown(self, mode: ShutdownMode) -> None:
        """The postmaster ignores a request that is not stronger than the current level."""
        if self.snapshot is None:
            return
        state = self.snapshot.state
        if state.exit_code is not None:
            raise CommandRefused(f"{mode.value} shutdown ignored: the cluster is not running")
        if Shutdown[mode.name] <= state.shutdown:
            current = state.shutdown.name.lower()
            article = "an" if current[0] in "aeiou" else "a"
            raise CommandRefused(f"{mode.value} shutdown ignored: {article} {current} shutdown is already under way")

    def _request_shutdown(self, mode: ShutdownMode) -> None:
        self._check_shutdown(mode)  # again: the level may have risen while the dialog was open
        self.controller.shutdown(mode)

    def action_start(self) -> None:
        if self.snapshot is not None and self.snapshot.state.exit_code is None and not self.readonly:
            self.say("start ignored: the cluster is running", "warning")
            return
        self.command("starting the cluster", self.controller.start)

    def action_promote(self) -> None:
        pid = self._postmaster()
        self.command(
            f"promote requested (postmaster {pid})",
            self.controller.promote,
            question=f"Promote the standby (postmaster PID {pid}) to a primary?",
            confirm_label="Promote",
        )

    def _postmaster(self) -> str:
        return str(self.snapshot.postmaster_pid) if self.snapshot is not None else "?"

    # -- the selected child ------------------------------------------------------------------

    def action_signal_child(self, signal_name: str) -> None:
        signal = Sig[signal_name]
        if self.readonly:
            self.say(READ_ONLY, "warning")
            return
        row = self.pane.children_table.selected_row
        if row is None or not row.signalable:
            self.say("no running child selected: nothing sent", "warning")
            return
        pid, started_at, label = row.pid, row.started_at, row.kind_label
        name = f"SIG{signal.name}"
        self.command(
            f"{name} sent to {label} (PID {pid})",
            lambda: self.controller.signal_child(pid, started_at, signal),
            question=None if signal is Sig.CONT else f"Send {name} to {label} (PID {pid})?",
            confirm_label=f"Send {name}",
        )

    # -- optional extras of some controllers -------------------------------------------------

    def action_load_toggle(self) -> None:
        self._optional("load_toggle", "client load toggled", "client load unavailable here")

    def action_open_session(self) -> None:
        self._optional("open_session", "client session opened", "client sessions unavailable here")

    def _optional(self, method: str, what: str, unavailable: str) -> None:
        call = getattr(self.controller, method, None)
        if self.readonly:
            self.say(READ_ONLY, "warning")
        elif call is None:
            self.say(unavailable, "warning")
        else:
            self.command(what, call)
