"""One cluster's whole dashboard: state, children, backends and server log, from snapshots."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from pgtop.core.state import State
from pgtop.runtime.snapshot import LogRecord, Snapshot
from pgtop.ui.rows import sigkill_countdown
from pgtop.ui.widgets.backends_table import BackendsTable
from pgtop.ui.widgets.children_table import ChildrenTable
from pgtop.ui.widgets.cluster_facts import ClusterFacts
from pgtop.ui.widgets.pmstate_banner import PMStateBanner
from pgtop.ui.widgets.recovery_panel import RecoveryPanel
from pgtop.ui.widgets.server_log import ServerLog
from pgtop.ui.widgets.shutdown_ladder import ShutdownLadder
from pgtop.ui.widgets.state_diagram import StateDiagram


class ClusterPane(Vertical):
    """pmState banner, Shutdown ladder, facts, recovery, state diagram, children, backends
    and server log of one postmaster. The app feeds it; a pane never talks to a cluster.

    | Key | Description |
    | :- | :- |
    | up / down | Select a child (the target of the signal keys). |
    """

    DEFAULT_CSS = """
    ClusterPane {
        height: 1fr;
    }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(id="overview"):
            with Vertical(id="headline"):
                yield PMStateBanner()
                yield ShutdownLadder()
            with Vertical(id="flags"):
                yield ClusterFacts()
                yield RecoveryPanel()
            yield StateDiagram()
        yield ChildrenTable(id="children")
        with Horizontal(id="activity"):
            yield BackendsTable(id="backends")
            yield ServerLog()

    def on_mount(self) -> None:
        self.query_one("#children").border_title = "children"
        self.query_one("#backends").border_title = "backends"

    @property
    def children_table(self) -> ChildrenTable:
        return self.query_one(ChildrenTable)

    def apply(self, snapshot: Snapshot, now: float) -> None:
        """Bring every widget up to this snapshot."""
        state = snapshot.state
        stopped = state.exit_code is not None
        banner = self.query_one(PMStateBanner)
        banner.pm_state = state.pm_state
        banner.fatal_error = state.fatal_error
        banner.stopped = stopped
        banner.observed = snapshot.observed
        diagram = self.query_one(StateDiagram)
        diagram.pm_state = state.pm_state
        diagram.last_transition = state.last_transition
        self.query_one(ShutdownLadder).level = state.shutdown
        facts = self.query_one(ClusterFacts)
        facts.fatal_error = state.fatal_error
        facts.conns_allowed = state.conns_allowed
        facts.startup_status = state.startup_status
        facts.postmaster_pid = snapshot.postmaster_pid
        facts.child_count = len(state.children)
        facts.exit_code = state.exit_code
        facts.observed = snapshot.observed
        self.query_one(RecoveryPanel).progress = snapshot.recovery
        self.children_table.apply(snapshot, now)
        self.query_one(BackendsTable).apply(snapshot)
        self.show_clock(state, now)

    def tick(self, state: State, now: float) -> None:
        """Between snapshots: the clock and the throttle countdowns."""
        self.show_clock(state, now)
        self.children_table.tick(state, now)

    def show_clock(self, state: State, now: float) -> None:
        """Uptime and the SIGKILL countdown: the only texts that change between snapshots."""
        running = state.exit_code is None and state.started_at
        # whole seconds, as shown: a snapshot between two ticks then repaints nothing
        self.query_one(ClusterFacts).uptime = int(now - state.started_at) if running else None
        self.query_one(ShutdownLadder).sigkill_in = sigkill_countdown(state, now)

    def append_log(self, record: LogRecord) -> None:
        self.query_one(ServerLog).append(record)
