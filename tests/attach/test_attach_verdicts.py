"""Deaths no log line explains: the status is inferred only where PostgreSQL's logging rules
leave one possibility; otherwise the children table says "unknown", never a guessed code."""

from __future__ import annotations

from test_attach_model import AUX, PM, T0, log, running, seen

from pgtop.attach.model import AttachModel
from pgtop.core.vocabulary import ExitStatus
from pgtop.runtime.snapshot import Snapshot
from pgtop.ui.rows import CHILD_COLUMN, child_row, exited_row

UNKNOWN = None  # how ExitRecord says "unknown" in attach mode


def snapshot(model: AttachModel, at: float) -> Snapshot:
    return Snapshot(state=model.state(), postmaster_pid=PM, data_dir="/data", port=5432, at=at)


def shown(model: AttachModel, at: float, kind: str) -> dict[str, str]:
    """The children-table row of the running child of this kind, as cells by column."""
    snap = snapshot(model, at)
    child = next(c for c in snap.state.children.values() if c.kind.value == kind)
    cells = child_row(snap, child).cells
    return {column: cells[index] for column, index in CHILD_COLUMN.items()}


def test_without_a_log_a_lone_death_has_an_unknown_status_and_says_why():
    model = running(log_followed=False)
    model.see_children(seen({p: t for p, t in AUX.items() if p != 5996}, T0 + 0.1), T0 + 10.0, {5996: T0 + 10.0})
    model.see_children({**seen({p: t for p, t in AUX.items() if p != 5996}, T0 + 0.1), **seen({6100: "background writer"}, T0 + 10.2)}, T0 + 10.3)
    record = model.state().last_exit("background writer")
    assert (record.pid, record.status, record.verdict) == (5996, UNKNOWN, "exit seen in ps only (no log to say how)")
    row = shown(model, T0 + 11, "background writer")
    assert row["last_exit"] == "unknown"
    assert row["lineage"].startswith("5996 → 6100, exit seen in ps only (no log to say how), back in ")


def test_without_a_log_the_death_a_crash_is_inferred_from_is_judged_again():
    """Two auxiliary deaths one look apart: the first was judged alone, then it turned out
    to be where the crash began."""
    model = running(log_followed=False)
    alive = {p: t for p, t in AUX.items() if p != 5996}
    model.see_children(seen(alive, T0 + 0.1), T0 + 10.0, {5996: T0 + 10.0})
    assert model.state().last_exit("background writer").verdict == "exit seen in ps only (no log to say how)"
    model.see_children(seen({p: t for p, t in alive.items() if p != 5999}, T0 + 0.1), T0 + 10.2, {5999: T0 + 10.2})
    state = model.state()
    assert state.fatal_error
    first = state.last_exit("background writer")
    assert (first.status, first.verdict) == (UNKNOWN, "crash, everyone restarts (inferred)")
    second = state.last_exit("walwriter")
    assert (second.status, second.verdict) == (UNKNOWN, "quit in the crash cycle (inferred)")


def test_with_the_log_an_unlogged_exit_of_a_kind_that_logs_every_failure_was_exit_0():
    model = running()
    model.see_children(seen({p: t for p, t in AUX.items() if p != 5996}, T0 + 0.1), T0 + 10.0, {5996: T0 + 10.0})
    model.settle(T0 + 11)
    record = model.state().last_exit("background writer")
    assert (record.status, record.verdict) == (ExitStatus.exited(0), "clean exit, restart this one (inferred)")


def test_with_the_log_an_unlogged_exit_that_may_have_been_0_or_1_is_unknown():
    """The archiver's exit 1 goes unlogged as its exit 0 does (reaper: neither is a crash)."""
    model = running()
    with_archiver = {**AUX, 6002: "archiver"}
    model.see_children(seen(with_archiver, T0 + 0.1), T0 + 2)
    model.see_children(seen(AUX, T0 + 0.1), T0 + 10.0, {6002: T0 + 10.0})
    model.settle(T0 + 11)
    record = model.state().last_exit("archiver")
    assert (record.status, record.verdict) == (UNKNOWN, "exit, restart throttled to one per 10 s (inferred)")
    model.see_children(seen({**AUX, 6200: "archiver"}, T0 + 20.0), T0 + 20.1)
    row = shown(model, T0 + 21, "archiver")
    assert (row["last_exit"], row["restarts"]) == ("unknown", "1")


def test_a_logged_crash_still_gives_its_victims_quickdies_exit_2():
    model = running()
    model.see_children(seen({p: t for p, t in AUX.items() if p != 5995}, T0 + 0.1), T0 + 10.000, {5995: T0 + 10.000})
    log(model, T0 + 10.001, "checkpointer process (PID 5995) was terminated by signal 9: Killed")
    log(model, T0 + 10.001, "terminating any other active server processes")
    model.see_children({}, T0 + 10.004)
    model.settle(T0 + 11)
    assert model.state().last_exit("walwriter").status == ExitStatus.exited(2)


def test_an_exited_row_says_unknown_too():
    model = running(log_followed=False)
    before = snapshot(model, T0 + 5)
    bgwriter = next(c for c in before.state.children.values() if c.pid == 5996)
    row = child_row(before, bgwriter)
    model.see_children(seen({p: t for p, t in AUX.items() if p != 5996}, T0 + 0.1), T0 + 10.0, {5996: T0 + 10.0})
    gone = exited_row(row, model.state())
    assert gone.cells[CHILD_COLUMN["status"]] == "exited"
    assert gone.cells[CHILD_COLUMN["last_exit"]] == "unknown"
    assert gone.cells[CHILD_COLUMN["lineage"]] == "exit seen in ps only (no log to say how)"
