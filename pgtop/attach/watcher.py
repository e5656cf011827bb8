"""The attach loop: one thread that watches a real server and publishes what it sees.

It waits on one selector: a pidfd for the postmaster and one per child (a death wakes it
at once) and a wakeup pipe. Between wakeups it polls only what cannot wake it: the log file
(a stat and a read, every `LOG_POLL` s), postmaster.pid and the process table (every
`CALM_SCAN` s, to see new children). While something is in motion (a death the log has
not explained yet, a state that does not last) it looks every `FAST_POLL` s, for at most
`BUSY_FOR` s after the last change. An idle attach wakes four times a second.

When the postmaster exits, the loop keeps following the log and postmaster.pid, and
attaches to the next postmaster that starts in the same data directory.
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import psutil

from pgtop.attach.activity import ActivityReader, activity_from_titles
from pgtop.attach.locate import (
    DEFAULT_SOCKET_DIRS,
    AttachError,
    ServerLocation,
    locate,
    read_pid_status,
)
from pgtop.attach.logfile import LogFollower, parse_log_line
from pgtop.attach.logrules import Fact, classify
from pgtop.attach.model import AttachModel, SeenProcess
from pgtop.attach.observed import ACTIVITY, CHILDREN, LOG, PID_STATUS
from pgtop.attach.proctable import ProcessTable
from pgtop.core.vocabulary import PMState, Shutdown
from pgtop.runtime.snapshot import LogRecord, Snapshot

LOG_POLL = 0.25
CALM_SCAN = 1.5
FAST_POLL = 0.05
BUSY_FOR = 3.0
STATS_INTERVAL = 1.0
RECENT_RECORDS = 4000  # kept to replay a new postmaster's start when we re-attach
BACKLOG_SHOWN = 500  # log lines from before the attach shown in the dashboard

SnapshotSink = Callable[[Snapshot], None]
LogSink = Callable[[LogRecord], None]


class AttachWatcher:
    """Watches one real PostgreSQL server; `subscribe` for snapshots, `log_sinks` for lines."""

    def __init__(self, location: ServerLocation, *, log_path: Path | None = None, follow_log: bool = True, activity: bool = True) -> None:
        self.location = location
        self.log_path = log_path
        self.follow_log = follow_log
        self.want_activity = activity
        self.log_sinks: list[LogSink] = []
        self.latest: Snapshot | None = None
        self.model: AttachModel | None = None
        self.table: ProcessTable | None = None
        self.activity: ActivityReader | None = None
        self.follower = LogFollower(explicit=log_path, data_dir=location.data_dir, postmaster_pid=location.pid)
        self.finished = threading.Event()
        self._sinks: list[SnapshotSink] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wakeup")
        self._thread = threading.Thread(target=self._run, name="pgtop-attach", daemon=True)
        self._titles: dict[int, SeenProcess] = {}
        self._recent: deque[LogRecord] = deque(maxlen=RECENT_RECORDS)
        self._published_version = -1
        self._changed_at = 0.0
        self._next_scan = self._next_stats = self._next_locate = 0.0
        self._stats: dict = {}
        self._pid_status_seen = False

    # -- the outside -------------------------------------------------------------------------

    def subscribe(self, sink: SnapshotSink) -> None:
        with self._lock:
            self._sinks.append(sink)
            latest = self.latest
        if latest is not None:
            sink(latest)

    def unsubscribe(self, sink: SnapshotSink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def start(self) -> None:
        """Attach (synchronously, so errors surface here), then watch in the thread."""
        try:
            self._attach(self.location, first=True)
        except (ProcessLookupError, psutil.NoSuchProcess):
            raise AttachError(f"the postmaster (PID {self.location.pid}) has just exited") from None
        self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._detach()
        self.follower.close()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    @property
    def observed(self) -> frozenset[str]:
        """Which sources are read right now (the names: `pgtop.attach.observed`)."""
        facts = {CHILDREN} if self.table is not None else set()
        if self._pid_status_seen:
            facts.add(PID_STATUS)
        if self._log_followed():
            facts.add(LOG)
        if self.activity is not None and self.activity.latest is not None:
            facts.add(ACTIVITY)
        return frozenset(facts)

    # -- attaching -----------------------------------------------------------------------------

    def _attach(self, location: ServerLocation, *, first: bool) -> None:
        now = time.time()
        self.location = location
        self.follower.postmaster_pid = location.pid
        if self.follow_log:
            self.follower.locate()
        backlog = [parse_log_line(line, now) for line in self.follower.backlog()] if first else []
        self.table = ProcessTable(location.pid, on_unwatch=self._unregister)
        self._selector.register(self.table.postmaster_pidfd, selectors.EVENT_READ, "postmaster")
        model = AttachModel(
            postmaster_pid=location.pid,
            started_at=location.started_at,
            port=location.port,
            log_followed=self._log_followed(),
            major_version=location.major_version or 15,
        )
        self._scan(model, now, {})
        self._read_pid_status(model, now)
        for record in self._since_start(list(self._recent) + backlog, location.pid):
            model.see_log(record)
        model.settle_initial(now)
        model.take_steps()  # the replayed past is summed up by the current state
        self.model = model
        if first:
            self._deliver(backlog[-BACKLOG_SHOWN:])
        self._recent.extend(backlog)
        self._start_activity(location)
        self._publish(now, force=True)

    @staticmethod
    def _since_start(records: list[LogRecord], postmaster_pid: int) -> list[LogRecord]:
        """The lines since this postmaster said "starting PostgreSQL" (none if not found)."""
        for index in range(len(records) - 1, -1, -1):
            record = records[index]
            if record.pid == postmaster_pid and (fact := classify(record.level, record.message, record.pid)) is not None and fact.fact is Fact.STARTING:
                return records[index:]
        return []

    def _start_activity(self, location: ServerLocation) -> None:
        if not self.want_activity:
            return
        dirs = [location.socket_dir] if location.socket_dir else list(DEFAULT_SOCKET_DIRS)
        self.activity = ActivityReader(socket_dirs=dirs, port=location.port, owner=location.owner)
        self.activity.start()

    def _detach(self) -> None:
        if self.activity is not None:
            self.activity.stop()
            self.activity = None
        if self.table is not None:
            self.table.close()
            self.table = None

    def _unregister(self, fd: int) -> None:
        if fd in self._selector.get_map():
            self._selector.unregister(fd)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                events = self._selector.select(self._timeout(time.time()))
                now = time.time()
                died: dict[int, float] = {}
                postmaster_gone = False
                for key, _ in events:
                    if key.data == "wakeup":
                        self._drain()
                    elif key.data == "postmaster":
                        postmaster_gone = True
                    else:
                        died[key.data] = now
                        if self.table is not None:
                            self.table.forget(key.data)  # unregisters, then closes
                if self._stopping.is_set():
                    break
                try:
                    self._cycle(now, died, postmaster_gone)
                except (OSError, psutil.Error):
                    continue  # a process went while we looked at it: the next look sees why
        finally:
            self.finished.set()

    def _timeout(self, now: float) -> float:
        model = self.model
        if model is not None and (model.has_pending or (model.busy and now - self._changed_at < BUSY_FOR)):
            return FAST_POLL
        return max(0.0, min(LOG_POLL, self._next_scan - now, self._next_stats - now))

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _cycle(self, now: float, died: dict[int, float], postmaster_gone: bool) -> None:
        self._read_log(now)
        model, table = self.model, self.table
        if model is None or table is None:
            self._look_for_new_postmaster(now)
            return
        if postmaster_gone or not table.postmaster_alive():
            self._postmaster_exited(now)
            return
        fast = model.has_pending or (model.busy and now - self._changed_at < BUSY_FOR)
        if died or fast or now >= self._next_scan:
            self._scan(model, now, died)
            self._read_pid_status(model, now)
            self._next_scan = now + CALM_SCAN
        model.settle(now)
        if now >= self._next_locate and self.follow_log:
            self.follower.locate()  # the logging collector may have rotated to a new file
            model.log_followed = self._log_followed()
            self._next_locate = now + CALM_SCAN
        stats_due = now >= self._next_stats
        if stats_due:
            self._stats = table.stats()
            self._next_stats = now + STATS_INTERVAL
        self._publish(now, force=stats_due)

    def _scan(self, model: AttachModel, now: float, died: dict[int, float]) -> None:
        table = self.table
        assert table is not None
        seen = table.scan()
        self._titles = seen
        for pidfd, pid in table.pidfds().items():
            if pidfd not in self._selector.get_map():
                self._selector.register(pidfd, selectors.EVENT_READ, pid)
        model.see_children(seen, now, died)

    def _read_pid_status(self, model: AttachModel, now: float) -> None:
        status = read_pid_status(self.location.data_dir)
        self._pid_status_seen = status is not None
        model.see_pid_status(status, now)

    def _log_followed(self) -> bool:
        return self.follower.path is not None and self.follower.problem is None

    def _read_log(self, now: float) -> None:
        lines = self.follower.poll()
        if not lines:
            return
        records = [parse_log_line(line, now) for line in lines]
        self._recent.extend(records)
        self._deliver(records)
        model = self.model
        if model is None:
            return
        for record in records:
            model.see_log(record)
            self._publish(now)  # every transition is its own snapshot

    def _deliver(self, records: list[LogRecord]) -> None:
        for record in records:
            for sink in list(self.log_sinks):
                sink(record)

    def _postmaster_exited(self, now: float) -> None:
        model = self.model
        assert model is not None
        self._read_log(now)  # the last words: "database system is shut down"
        model.see_postmaster_exit(now)
        self._publish(now, force=True)
        self._detach()
        self.model = model  # keep showing the exited postmaster until a new one comes

    def _look_for_new_postmaster(self, now: float) -> None:
        if now < self._next_scan or self.location.data_dir is None:
            return
        self._next_scan = now + CALM_SCAN
        try:
            location = locate(data_dir=self.location.data_dir)
        except AttachError:
            return
        if location.pid != self.location.pid:
            try:
                self._attach(location, first=False)
            except (ProcessLookupError, psutil.NoSuchProcess):
                self._detach()  # that one went too: keep looking

    # -- publishing --------------------------------------------------------------------------

    def _publish(self, now: float, *, force: bool = False) -> None:
        model = self.model
        if model is None or (model.version == self._published_version and not force):
            return
        if model.version != self._published_version:
            self._changed_at = now
        self._published_version = model.version
        if self.activity is not None:
            self.activity.allowed = model.pm_state in (PMState.RUN, PMState.HOT_STANDBY) and model.shutdown == Shutdown.NO
        activity, observed = self._activity(), self.observed
        final = model.state()
        for state in [*(step for step in model.take_steps() if step is not final), final]:
            snapshot = Snapshot(
                state=state,
                postmaster_pid=self.location.pid,
                data_dir=str(self.location.data_dir or ""),
                port=self.location.port,
                at=now,
                stats=dict(self._stats),
                activity=activity,
                observed=observed,
            )
            with self._lock:
                self.latest = snapshot
                sinks = list(self._sinks)
            for sink in sinks:
                sink(snapshot)

    def _activity(self):
        reader = self.activity
        if reader is not None and reader.latest is not None:
            return reader.latest
        return activity_from_titles((p.pid, p.started_at, p.title) for p in self._titles.values())
