"""What the table cells and countdowns say, computed without Textual."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgtop.core.config import Config
from pgtop.core.state import Child, ExitRecord
from pgtop.core.vocabulary import ChildKind, ExitStatus
from pgtop.ui import fake
from pgtop.ui.rows import (
    BACKEND_COLUMNS,
    child_row,
    duration,
    lineage,
    sigkill_countdown,
    size,
    throttled_rows,
    uptime,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0049, "4.9 ms"), (2.34, "2.3 s"), (252, "4m 12s"), (11100, "3h 05m")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.6367, 0.9999, 59.9, 3599, 86399])
def test_the_backends_since_column_holds_every_duration_whole(seconds):
    """A 636.7 ms state was cut to "636.7 m" in a 7-wide column: minutes, to a reader."""
    width = next(width for key, _, width in BACKEND_COLUMNS if key == "since")
    assert len(duration(seconds)) <= width


def test_uptime_and_size():
    assert uptime(3723.9) == "01:02:03"
    assert uptime(90061) == "1d 01:01:01"
    assert size(512) == "512 B"
    assert size(20 * 1024 * 1024) == "20.0 MiB"


def test_lineage_of_a_child_still_starting():
    record = ExitRecord("walwriter", ChildKind.WALWRITER, 4411, ExitStatus.killed(9), 10.0, "crash, everyone restarts")
    child = Child(7, ChildKind.WALWRITER, None, 10.5)
    assert lineage(child, record) == "4411 → (starting), crash, everyone restarts"


def test_lineage_ignores_an_exit_after_this_child_started():
    record = ExitRecord("walwriter", ChildKind.WALWRITER, 4411, ExitStatus.exited(0), 20.0, "clean exit, restart this one")
    child = Child(7, ChildKind.WALWRITER, 4518, 9.0, 9.5)
    assert lineage(child, record) == ""


def test_backends_have_no_lineage_even_after_another_backend_exited():
    state = fake.running_state()
    record = ExitRecord("client backend", ChildKind.BACKEND, 4300, ExitStatus.exited(0), fake.NOW - 5, "backend exit")
    state = replace(state, history=(record,))
    backend = next(c for c in state.children.values() if c.kind is ChildKind.BACKEND)
    cells = child_row(fake.snapshot_of(state), backend).cells
    assert (cells[5], cells[9]) == ("", "")


def test_bgworkers_are_shown_by_name():
    state = fake.running_state()
    worker = next(c for c in state.children.values() if c.kind is ChildKind.BGWORKER)
    assert child_row(fake.snapshot_of(state), worker).cells[0] == "logical replication launcher"


def test_sigkill_countdown_runs_only_with_abort_start_time():
    assert sigkill_countdown(fake.running_state(), fake.NOW) is None
    assert sigkill_countdown(fake.crash_cycle_state(), fake.NOW) == pytest.approx(3.0)


def test_no_throttled_row_once_the_throttle_has_passed():
    state = fake.throttled_state()
    assert [row.key for row in throttled_rows(state, fake.NOW + 11)] == ["throttled:bgworker:logical replication launcher"]
    assert throttled_rows(replace(state, config=Config()), fake.NOW)[0].key.startswith("throttled:bgworker")
