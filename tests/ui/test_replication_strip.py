"""The primary/standby strip of `pgtop --with-standby`, line by line: waiting, streaming with a
lag, caught up, never heard from, promoted, stopped (the tmux tests cover the live path)."""

from __future__ import annotations

from dataclasses import replace

from pgtop.core.state import Child
from pgtop.core.vocabulary import ChildKind, PMState
from pgtop.runtime.snapshot import ReplicationProgress, Snapshot
from pgtop.ui import fake
from pgtop.ui.widgets.replication_strip import ReplicationStrip

NOW = fake.NOW
MIB = 1024 * 1024


def with_child(snapshot: Snapshot, kind: ChildKind, pid: int) -> Snapshot:
    state = snapshot.state
    children = {**state.children, 99: Child(99, kind, pid, NOW - 5, NOW - 5)}
    return replace(snapshot, state=replace(state, children=children))


def primary(wal_end: int = 0x3000148) -> Snapshot:
    progress = ReplicationProgress("primary", True, wal_end, wal_end, wal_end, NOW - 0.5)
    return with_child(fake.snapshot_of(fake.running_state(), replication=progress), ChildKind.WALSENDER, 5001)


def standby(replayed: int, *, heard_at: float = NOW - 0.4, pm_state: PMState = PMState.HOT_STANDBY) -> Snapshot:
    progress = ReplicationProgress("standby", True, replayed, replayed, replayed, heard_at)
    state = replace(fake.running_state(), pm_state=pm_state)
    snapshot = fake.snapshot_of(state, postmaster_pid=6000, port=5433, replication=progress)
    return with_child(snapshot, ChildKind.WALRECEIVER, 6001)


def lines(**values: object) -> list[str]:
    """The strip's two lines as they read on screen, for these reactive values."""
    strip = ReplicationStrip()
    for name, value in values.items():
        setattr(strip, name, value)
    return strip.render().plain.splitlines()


def test_before_the_standby_runs_the_strip_says_what_it_waits_for() -> None:
    shown = lines(primary=primary(), note="making the standby: base backup of the primary")
    assert shown[0].startswith("▶ primary  PM_RUN")
    assert "walsender 5001 · WAL 0/3000148" in shown[0]
    assert shown[1] == "  standby  making the standby: base backup of the primary"


def test_a_lagging_standby_shows_how_far_replay_is_behind_the_primary() -> None:
    shown = lines(primary=primary(0x3000148 + 2 * MIB), standby=standby(0x3000148), now=NOW, active="standby")
    assert shown[0].startswith("  primary")
    assert shown[1] == (
        "▶ standby  PM_HOT_STANDBY  · PID 6000 · port 5433 · walreceiver 6001 · flushed 0/3000148"
        " · replayed 0/3000148 · replay lag 2.0 MiB · heard 0.4 s ago"
    )


def test_a_standby_that_never_heard_from_the_primary_says_so() -> None:
    shown = lines(primary=primary(), standby=standby(0x3000148, heard_at=0.0), now=NOW)
    assert shown[1].endswith("replay lag 0 B · no message from the primary yet")


def test_a_promoted_standby_and_a_stopped_primary() -> None:
    promoted = fake.snapshot_of(fake.running_state(), postmaster_pid=6000, port=5433)  # no startup, no walreceiver
    stopped = fake.snapshot_of(fake.stopped_state())
    shown = lines(primary=stopped, standby=promoted)
    assert shown[0].startswith("▶ primary  stopped (exit code 0) · PID")
    assert shown[0].endswith("no walsender")
    assert shown[1].endswith("· PID 6000 · port 5433 · no walreceiver · not a standby any more (promoted)")
