"""Builds the snapshots viewers see and hands them to every subscriber.

A snapshot is published after every ServerLoop wakeup that changed something; subscribers
(the dashboard, the control socket) get the newest one. With no subscriber, none is built
until someone asks for `latest` (`pgtop ctl status`): a headless postmaster under a stream
of connections would otherwise read every activity row twice per connection for nobody.
psutil figures (CPU%, RSS) are sampled every two seconds by a small thread, and only while
a viewer asked for them (`start_sampling`), so an idle `pgtop run` stays idle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import psutil

from pgtop.common.shmem_records import Counters
from pgtop.core.state import State
from pgtop.core.vocabulary import ChildKind
from pgtop.runtime.snapshot import (
    BackendActivity,
    ProcessStats,
    ReplicationProgress,
    Snapshot,
)
from pgtop.storage.recovery import STANDBY_SIGNAL

if TYPE_CHECKING:
    from pgtop.runtime.supervisor import Supervisor

SnapshotSink = Callable[[Snapshot], None]
STATS_INTERVAL = 2.0  # between htop's default (1.5 s) and top's (3 s): each round repaints every figure that moved


class Snapshotter:
    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self._sinks: list[SnapshotSink] = []
        self._lock = threading.Lock()
        self._latest: Snapshot | None = None
        self._stale = False  # the state moved while nobody was subscribed
        self.want_stats = False
        self._processes: dict[int, psutil.Process] = {}
        self._stats: dict[int, ProcessStats] = {}
        self._stats_at = 0.0
        self._published_state: object = None
        self._publish_lock = threading.Lock()  # the loop and the sampler both publish
        self._sampler: threading.Thread | None = None

    def subscribe(self, sink: SnapshotSink) -> None:
        """Add `sink`, and give it the newest snapshot at once (before any later one)."""
        with self._publish_lock:
            if self._stale:
                self._publish(force=True)  # to the sinks there were: this one gets it below
            with self._lock:
                self._sinks.append(sink)
            if self._latest is not None:
                sink(self._latest)

    def unsubscribe(self, sink: SnapshotSink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def start_sampling(self) -> None:
        """Refresh CPU% and RSS every STATS_INTERVAL until the postmaster exits."""
        self.want_stats = True
        if self._sampler is None:
            self._sampler = threading.Thread(target=self._sample_loop, name="pgtop-stats", daemon=True)
            self._sampler.start()

    def _sample_loop(self) -> None:
        while not self._supervisor.finished.wait(STATS_INTERVAL):
            self.publish(force=True)

    @property
    def latest(self) -> Snapshot | None:
        """The newest snapshot, built now if the state moved since the last one was."""
        if self._stale:
            self.publish(force=True)
        return self._latest

    def publish(self, *, force: bool = False) -> None:
        """Build and hand out a snapshot if the state changed (or stats are due)."""
        with self._publish_lock:
            self._publish(force)

    def _publish(self, force: bool) -> None:
        supervisor = self._supervisor
        state = supervisor.state
        if state is None:
            return
        now = time.time()
        stats_due = self.want_stats and now - self._stats_at >= STATS_INTERVAL
        if state is self._published_state and not stats_due and not force and supervisor.exit_code is None:
            return
        with self._lock:
            sinks = list(self._sinks)
        if not sinks and not force:
            self._stale = True  # built when asked for (`latest`)
            return
        self._stale = False
        self._published_state = state
        if stats_due:
            self._sample_stats(state, now)
        counters = self._counters()
        standby_mode = (supervisor.datadir / STANDBY_SIGNAL).exists()  # removed by promotion
        replication = _replication(state, counters, standby_mode=standby_mode)
        snapshot = Snapshot(
            state=state,
            postmaster_pid=supervisor.pid,
            data_dir=str(supervisor.datadir),
            port=supervisor.config.port,
            at=now,
            stats=dict(self._stats),
            activity=self._activity(),
            recovery=counters.recovery_progress() if counters is not None else None,
            standby_of=_standby_of(supervisor.config.primary_conninfo, replication),
            replication=replication,
        )
        self._latest = snapshot
        for sink in sinks:
            sink(snapshot)

    def _activity(self) -> tuple[BackendActivity, ...]:
        segment = self._supervisor.segment
        if segment is None:
            return ()
        try:
            return tuple(row.as_backend_activity() for row in segment.activity())
        except (ValueError, OSError):  # the segment is being replaced (crash reinit)
            return ()

    def _counters(self) -> Counters | None:
        segment = self._supervisor.segment
        if segment is None:
            return None
        try:
            return segment.counters()
        except (ValueError, OSError):  # the segment is being replaced (crash reinit)
            return None

    def _sample_stats(self, state: object, now: float) -> None:
        self._stats_at = now
        pids = {self._supervisor.pid}
        for child in self._supervisor.state.children.values():  # type: ignore[union-attr]
            if child.pid is not None:
                pids.add(child.pid)
        for gone in set(self._processes) - pids:
            del self._processes[gone]
        stats: dict[int, ProcessStats] = {}
        for pid in pids:
            process = self._processes.get(pid)
            try:
                if process is None:
                    process = self._processes[pid] = psutil.Process(pid)
                with process.oneshot():
                    stats[pid] = ProcessStats(process.cpu_percent(None), process.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._processes.pop(pid, None)
        self._stats = stats


def _replication(state: State, counters: Counters | None, *, standby_mode: bool) -> ReplicationProgress | None:
    """A standby (standby.signal, as StandbyModeRequested) or a primary whose walsender has
    heard from a standby; None for a cluster that never replicated."""
    if counters is None:
        return None
    running = {child.kind for child in state.children.values() if child.pid is not None}
    if standby_mode:
        return ReplicationProgress(
            role="standby",
            streaming=ChildKind.WALRECEIVER in running,
            wal_end=max(counters.walrcv_latest_end_lsn, counters.walrcv_flushed_lsn),
            # As pg_stat_wal_receiver: flushed starts at the streaming start point.
            flushed=max(counters.walrcv_flushed_lsn, counters.walrcv_receive_start_lsn),
            replayed=counters.replay_lsn,
            heard_at=counters.walrcv_last_msg_receipt_time,
        )
    if counters.walsnd_reply_time:
        return ReplicationProgress(
            role="primary",
            streaming=ChildKind.WALSENDER in running,
            wal_end=max(counters.wal_flush_lsn, counters.walsnd_sent_lsn),
            flushed=counters.walsnd_flush_lsn,
            replayed=counters.walsnd_replay_lsn,
            heard_at=counters.walsnd_reply_time,
        )
    return None


def _standby_of(primary_conninfo: str, replication: ReplicationProgress | None) -> str | None:
    return primary_conninfo or None if replication is not None and replication.role == "standby" else None
