"""The snapshotter builds snapshots for viewers only: none while nobody is subscribed, and
`latest` is the newest state all the same."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from pgtop.core.config import Config
from pgtop.core.state import initial_state
from pgtop.core.vocabulary import PMState
from pgtop.runtime.snapshotter import Snapshotter


@dataclasses.dataclass
class FakeSupervisor:
    """What the snapshotter reads of a supervisor (no shared memory: no activity rows)."""

    datadir: Path
    state: object = None
    exit_code: int | None = None
    pid: int = 4242
    config: Config = dataclasses.field(default_factory=Config)
    segment: None = None
    finished: threading.Event = dataclasses.field(default_factory=threading.Event)


def test_without_a_subscriber_nothing_is_built_until_latest_is_asked_for(tmp_path, monkeypatch) -> None:
    supervisor = FakeSupervisor(tmp_path, initial_state(Config(), 0.0))
    snapshots = Snapshotter(supervisor)  # type: ignore[arg-type]
    built = []
    original = Snapshotter._activity
    monkeypatch.setattr(Snapshotter, "_activity", lambda self: built.append(1) or original(self))

    snapshots.publish()
    supervisor.state = dataclasses.replace(supervisor.state, pm_state=PMState.RUN)
    snapshots.publish()
    assert built == []

    assert snapshots.latest.state.pm_state is PMState.RUN
    assert snapshots.latest.state.pm_state is PMState.RUN
    assert built == [1]  # once, for the newest state


def test_a_late_subscriber_gets_the_current_state_then_every_change(tmp_path) -> None:
    supervisor = FakeSupervisor(tmp_path, initial_state(Config(), 0.0))
    snapshots = Snapshotter(supervisor)  # type: ignore[arg-type]
    snapshots.publish()  # nobody watches yet
    seen: list[PMState] = []
    snapshots.subscribe(lambda snapshot: seen.append(snapshot.state.pm_state))
    supervisor.state = dataclasses.replace(supervisor.state, pm_state=PMState.RUN)
    snapshots.publish()
    assert seen == [PMState.INIT, PMState.RUN]
