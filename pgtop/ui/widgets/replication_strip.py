"""A primary and its standby on two lines: states, replication processes and the lag."""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget

from pgtop.common.shmem_records import format_lsn
from pgtop.core.state import State
from pgtop.core.vocabulary import ChildKind, PMState
from pgtop.runtime.snapshot import ReplicationProgress, Snapshot
from pgtop.ui.rows import size

ROLES = ("primary", "standby")
SENDER = {"primary": ChildKind.WALSENDER, "standby": ChildKind.WALRECEIVER}


class ReplicationStrip(Widget):
    """One line per cluster (the one the keys act on is marked ▶), the standby's line with
    what it has flushed and replayed, how far replay is behind the primary's WAL, and when it
    last heard from the primary.

    | Key | Description |
    | :- | :- |
    | 1 / 2 | Show the primary / the standby (the keys then act on it). |
    """

    DEFAULT_CSS = """
    ReplicationStrip {
        height: 2;
        padding: 0 1;
        background: $boost;
    }
    """

    primary: reactive[Snapshot | None] = reactive(None)
    """The primary's latest snapshot."""

    standby: reactive[Snapshot | None] = reactive(None)
    """The standby's latest snapshot."""

    active: reactive[str] = reactive("primary")
    """The cluster on screen below: "primary" or "standby"."""

    now: reactive[float] = reactive(0.0)
    """The wall clock, for "heard N s ago"."""

    note: reactive[str] = reactive("")
    """What the standby is doing when it has no snapshot yet (base backup, starting)."""

    def render(self) -> Content:
        lines = [self._line(role) for role in ROLES]
        return Content.from_markup("\n".join(lines))

    def _line(self, role: str) -> str:
        snapshot = self.primary if role == "primary" else self.standby
        marker = "[b $accent]▶[/]" if role == self.active else " "
        head = f"{marker} [b]{role}[/]"
        if snapshot is None:
            waiting = self.note if role == "standby" and self.note else "starting"
            return f"{head}  [$text-muted]{escape(waiting)}[/]"
        state = snapshot.state
        pm_state = state.pm_state.pg_name if state.exit_code is None else f"stopped (exit code {state.exit_code})"
        parts = [f"{head}  [b]{pm_state:<15}[/]", f"PID {snapshot.postmaster_pid}", f"port {snapshot.port}"]
        parts.append(_process(state, SENDER[role]))
        if role == "primary" and snapshot.replication is not None:
            parts.append(f"WAL {format_lsn(snapshot.replication.wal_end)}")
        if role == "standby":
            parts.extend(self._lag(snapshot))
        return " · ".join(parts)

    def _lag(self, standby: Snapshot) -> list[str]:
        received = standby.replication
        if received is None or received.role != "standby":
            promoted = standby.state.pm_state is PMState.RUN and standby.state.exit_code is None
            return ["[$text-muted]not a standby any more (promoted)[/]"] if promoted else []
        sent = self.primary.replication if self.primary is not None else None
        wal_end = sent.wal_end if sent is not None and sent.role == "primary" else received.wal_end
        lag = max(0, wal_end - received.replayed)
        colour = "$success" if lag == 0 else "$warning"
        return [
            f"flushed {format_lsn(received.flushed)}",
            f"replayed {format_lsn(received.replayed)}",
            f"[{colour}]replay lag {size(lag)}[/]",
            _heard(received, self.now),
        ]


def _process(state: State, kind: ChildKind) -> str:
    pids = [str(child.pid) for child in state.children.values() if child.kind is kind and child.pid is not None]
    name = kind.value
    return f"{name} {', '.join(pids)}" if pids else f"[$text-muted]no {name}[/]"


def _heard(progress: ReplicationProgress, now: float) -> str:
    if not progress.heard_at:
        return "[$text-muted]no message from the primary yet[/]"
    return f"heard {max(0.0, now - progress.heard_at):.1f} s ago"
