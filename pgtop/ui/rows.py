"""What each table row says, computed from a snapshot: pure functions, no Textual."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Self

from pgtop.core.bgworkers import bgworker_should_start_now
from pgtop.core.serverloop import (  # the throttles the dashboard can see coming (§8)
    PGARCH_RESTART_INTERVAL,
    PGSTAT_RESTART_INTERVAL,
    SIGKILL_CHILDREN_AFTER_SECS,
)
from pgtop.core.state import Child, ExitRecord, State
from pgtop.core.vocabulary import ChildKind, PMState, Shutdown
from pgtop.runtime.snapshot import BackendActivity, Snapshot

# (column key, label, width); None sizes the column to its content.
CHILD_COLUMNS = (
    ("kind", "kind", 28),
    ("pid", "PID", 7),
    ("status", "status", 9),
    ("started", "started", 12),
    ("restarts", "↻", 2),
    ("last_exit", "last exit", 9),
    ("cpu", "CPU%", 5),
    ("rss", "RSS", 9),
    ("next_start", "next start", 10),
    ("lineage", "lineage", None),
)

CHILD_COLUMN = {key: index for index, (key, _, _) in enumerate(CHILD_COLUMNS)}

BACKEND_COLUMNS = (
    ("pid", "PID", 7),
    ("user", "user", 10),
    ("state", "state", 19),
    ("since", "since", 8),  # the longest: "999.9 ms"
    ("query", "query", None),
)

# Auxiliary processes first, then workers, then the many client backends.
KIND_ORDER = {
    kind: rank
    for rank, kind in enumerate(
        [k for k in ChildKind if k.special]
        + [ChildKind.BGWORKER, ChildKind.AUTOVAC_WORKER, ChildKind.WALSENDER, ChildKind.BACKEND]
    )
}


class SortableCell(str):
    """A cell's text that also carries the row's place in the table."""

    order: tuple

    def __new__(cls, text: str, order: tuple) -> Self:
        cell = super().__new__(cls, text)
        cell.order = order
        return cell


@dataclass(frozen=True, slots=True)
class ChildRow:
    """One children-table row: its cells, and what a signal key needs to pin its process."""

    key: str
    cells: tuple[str, ...]
    status: str
    kind_label: str
    lineage_key: str
    pid: int | None = None
    started_at: float | None = None
    has_lineage: bool = False

    @property
    def signalable(self) -> bool:
        return self.pid is not None and self.started_at is not None and self.status != "exited"


def escape(text: str) -> str:
    """DataTable parses strings as Rich markup; a query like `a[1]` must stay literal."""
    return text.replace("[", r"\[")


def clock_time(at: float | None) -> str:
    if not at:
        return ""
    stamp = time.strftime("%H:%M:%S", time.localtime(at))
    return f"{stamp}.{int(at * 1000) % 1000:03d}"


def duration(seconds: float) -> str:
    """4.9 ms, 2.3 s, 4m 12s, 3h 05m."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def uptime(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def size(rss: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if rss < 1024 or unit == "GiB":
            return f"{rss:.0f} {unit}" if unit == "B" else f"{rss:.1f} {unit}"
        rss /= 1024
    return ""


def kind_label(child: Child) -> str:
    return child.bgworker if child.bgworker is not None else child.kind.value


def has_lineage(child: Child) -> bool:
    """A "same child across restarts" exists for special kinds and named workers only."""
    return child.kind.special or child.kind is ChildKind.BGWORKER


def shutting_down(state: State) -> bool:
    return state.shutdown > Shutdown.NO or state.pm_state >= PMState.STOP_BACKENDS


def child_status(state: State, child: Child) -> str:
    if child.pid is None or child.started_at is None:
        return "starting"
    return "stopping" if shutting_down(state) else "running"


def lineage(child: Child, record: ExitRecord | None) -> str:
    """e.g. "4411 → 4518, clean exit, restart this one, back in 4.9 ms" (the kind is in
    the row already)."""
    if record is None or (child.started_at is not None and record.at > child.started_at):
        return ""
    if child.pid is None or child.started_at is None:
        return f"{record.pid} → (starting), {record.verdict}"
    back = duration(max(0.0, child.started_at - record.at))
    return f"{record.pid} → {child.pid}, {record.verdict}, back in {back}"


def exit_text(record: ExitRecord | None) -> str:
    """The last-exit cell: "exit 0", "SIGKILL"; "unknown" when nothing seen told the status
    (attach mode, a death seen in ps only: its status is None)."""
    if record is None:
        return ""
    return record.status.describe() if record.status is not None else "unknown"


def order(kind: ChildKind, name: str | None, child_id: int) -> tuple:
    return (KIND_ORDER[kind], name or "", child_id)


def child_row(snapshot: Snapshot, child: Child) -> ChildRow:
    state = snapshot.state
    record = state.last_exit(child.lineage_key) if has_lineage(child) else None
    stats = snapshot.stats.get(child.pid) if child.pid is not None else None
    label = kind_label(child)
    status = child_status(state, child)
    cells = (
        SortableCell(escape(label), order(child.kind, child.bgworker, child.id)),
        str(child.pid or ""),
        status,
        clock_time(child.started_at),
        str(state.restarts.get(child.lineage_key, 0)),
        exit_text(record),
        f"{stats.cpu_percent:.1f}" if stats else "",
        size(stats.rss) if stats else "",
        "",
        escape(lineage(child, record)),
    )
    return ChildRow(
        str(child.id), cells, status, label, child.lineage_key, child.pid, child.started_at, has_lineage(child)
    )


def exited_row(row: ChildRow, state: State) -> ChildRow:
    """A child that left the snapshot: keep showing it, marked exited, for a moment."""
    record = next((r for r in reversed(state.history) if r.pid == row.pid), None)
    cells = list(row.cells)
    cells[CHILD_COLUMN["status"]] = "exited"
    for column in ("cpu", "rss", "next_start", "lineage"):
        cells[CHILD_COLUMN[column]] = ""
    if record is not None:
        cells[CHILD_COLUMN["last_exit"]] = exit_text(record)
        cells[CHILD_COLUMN["lineage"]] = escape(record.verdict)
    return ChildRow(
        row.key, tuple(cells), "exited", row.kind_label, row.lineage_key, row.pid, row.started_at, row.has_lineage
    )


def throttled_row(key: str, kind: ChildKind, name: str | None, wait: float, state: State) -> ChildRow:
    label = name if name is not None else kind.value
    lineage_key = f"background worker {name}" if name is not None else kind.value
    record = state.last_exit(lineage_key)
    cells = (
        SortableCell(escape(label), order(kind, name, 0)),
        "",
        "throttled",
        "",
        str(state.restarts.get(lineage_key, 0)),
        exit_text(record),
        "",
        "",
        next_start(wait),
        escape(f"{record.pid} → (throttled), {record.verdict}") if record else "",
    )
    return ChildRow(key, cells, "throttled", label, lineage_key, has_lineage=True)


def next_start(wait: float) -> str:
    return f"in {math.ceil(wait)} s" if wait > 0 else "due"


def throttled_rows(state: State, now: float) -> list[ChildRow]:
    """Keep-alive kinds that are missing because a restart throttle holds them back."""
    rows = []
    config = state.config
    archiver_wanted = (config.archiving_active and state.pm_state == PMState.RUN) or (
        config.archive_mode == "always" and state.pm_state in (PMState.RECOVERY, PMState.HOT_STANDBY)
    )
    wait = state.last_pgarch_start_time + PGARCH_RESTART_INTERVAL - now
    if archiver_wanted and state.special(ChildKind.ARCHIVER) is None and wait > 0:
        rows.append(throttled_row("throttled:archiver", ChildKind.ARCHIVER, None, wait, state))
    stats_wanted = state.pm_state in (PMState.RUN, PMState.HOT_STANDBY)
    wait = state.last_pgstat_start_time + PGSTAT_RESTART_INTERVAL - now
    if stats_wanted and state.special(ChildKind.STATS) is None and wait > 0:
        rows.append(throttled_row("throttled:stats", ChildKind.STATS, None, wait, state))
    for worker in state.bgworkers:
        # Only a worker the postmaster will start when its wait is over: none once a
        # shutdown or a crash cycle has left the states that start workers.
        startable = bgworker_should_start_now(state.pm_state, worker.start_time) and not state.fatal_error
        if startable and worker.crashed_at is not None and worker.child_id is None and not worker.never_restart:
            wait = worker.crashed_at + worker.restart_time - now
            key = f"throttled:bgworker:{worker.name}"
            rows.append(throttled_row(key, ChildKind.BGWORKER, worker.name, wait, state))
    return rows


# pg_stat_activity also lists the auxiliary processes; the backends pane is for sessions.
SESSION_TYPES = frozenset({"client backend", "walsender", "autovacuum worker"})


def is_session(activity: BackendActivity) -> bool:
    return activity.backend_type in SESSION_TYPES


def backend_cells(activity: BackendActivity, at: float) -> tuple[str, ...]:
    since = duration(max(0.0, at - activity.state_change)) if activity.state_change else ""
    return (
        str(activity.pid),
        escape(activity.user),
        escape(activity.state),
        since,
        escape(" ".join(activity.query.split())),
    )


def sigkill_countdown(state: State, now: float) -> float | None:
    """Seconds until "issuing SIGKILL to recalcitrant children", while the stopwatch runs."""
    if not state.abort_start_time:
        return None
    return state.abort_start_time + SIGKILL_CHILDREN_AFTER_SECS - now
