"""A real postmaster as pgtop's `State`, inferred honestly from what can be seen.

Rules and theory:

- Three sources, each optional: postmaster.pid's status line (`pid_status`), the
  postmaster's children in the process table (`children`), and the server log (`log`).
  pmState is never visible; it is always inferred. The log, when followed, is the
  authority: the postmaster writes a line at most transitions (spec §7), and those lines
  drive the state here. The process table fills in the transitions that are not logged
  (PM_SHUTDOWN → PM_SHUTDOWN_2 when the checkpointer exits, WAIT_DEAD_END, NO_CHILDREN) and,
  without a log, everything: a crash when the checkpointer or several auxiliary processes
  die at once, the reinitialisation when new children appear, PM_RUN once the walwriter
  (which only runs in PM_RUN) is back.
- Children are the real processes with their real PIDs and kernel start times. A death is
  seen the moment it happens; how the child ended is taken from the log (LogChildExit, or
  a FATAL line: exit 1) within `GRACE` seconds, else inferred (see `verdicts`). A status
  nothing seen tells is recorded as None (`ExitRecord.status`): "unknown" on screen.
- Every pmState change goes through `_set_pm_state`, which records the rule that made it;
  `transitions` keeps them all, so a viewer (or a test) can see every state a crash cycle
  passed through even when they all happen within one poll.
- Pure: no OS access. The watcher feeds observations in; `state()` hands the result out.
  The rules live in two mixins: `log_inference` (what each log line means) and
  `process_inference` (what the process table means); this module keeps the state, the
  children and their exit records.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from pgtop.attach.log_inference import LogInference
from pgtop.attach.logrules import Fact, LogFact, classify
from pgtop.attach.process_inference import ProcessInference
from pgtop.attach.titles import ProcessTitle
from pgtop.attach.verdicts import (
    CRASH,
    INFERRED,
    Death,
    Happenings,
    inferred_verdict,
    reaper_verdict,
)
from pgtop.core.config import Config
from pgtop.core.state import HISTORY_LENGTH, Child, ExitRecord, State, Transition
from pgtop.core.vocabulary import (
    ChildKind,
    ConnsAllowed,
    ExitStatus,
    PidStatus,
    PMState,
    Shutdown,
    StartupStatus,
)
from pgtop.runtime.snapshot import LogRecord

GRACE = 0.5  # seconds a death waits for the log line that says how the child ended
UNTITLED_GRACE = 0.25  # seconds a new child may show the postmaster's command line


@dataclass(frozen=True, slots=True)
class SeenProcess:
    """A child of the postmaster as the process table shows it."""

    pid: int
    started_at: float  # the kernel's start time
    title: ProcessTitle


class AttachModel(LogInference, ProcessInference):
    """The inferred state of one real postmaster (one PID: a new postmaster is a new model)."""

    def __init__(self, *, postmaster_pid: int, started_at: float, port: int, log_followed: bool, major_version: int = 15) -> None:
        self.postmaster_pid = postmaster_pid
        self.started_at = started_at
        self.config = Config(port=port)
        self.log_followed = log_followed
        self.major_version = major_version
        self.pm_state = PMState.INIT
        self.shutdown = Shutdown.NO
        self.fatal_error = False
        self.startup_status = StartupStatus.NOT_RUNNING
        self.conns_allowed = ConnsAllowed.ALL
        self.abort_start_time = 0.0
        self.reached_normal_running = False
        self.pid_status: PidStatus | None = None
        self.exit_code: int | None = None
        self.children: dict[int, Child] = {}  # by PID
        self.history: list[ExitRecord] = []
        self.restarts: dict[str, int] = {}
        self.transitions: list[Transition] = []
        self.happened = Happenings(crashes=[], sigkills=[])
        self.version = 0  # bumped by every change, so the watcher knows when to publish
        self._next_id = 1
        self._lineages: set[str] = set()
        self._pending: dict[int, Death] = {}
        self._explained: dict[int, tuple[ExitStatus | None, LogFact]] = {}  # logged before seen dead
        self._recent_deaths: deque[Death] = deque(maxlen=16)
        self._victims: set[int] = set()  # unexplained deaths pending when a crash was logged
        self._crashers: set[int] = set()  # (no log) the deaths a crash was inferred from
        self._known_before: frozenset[int] = frozenset()  # PIDs known before the last look at ps
        self._pre_crash: frozenset[int] = frozenset()  # (no log) PIDs known when the crash was seen
        self._shut_down_logged = False
        self._abnormal_end = False
        self._archive_recovery = False
        self._state: State | None = None
        self._steps: list[State] = []  # the state right after each transition, not yet handed out

    # -- the one door for pmState ----------------------------------------------------------

    def _set_pm_state(self, new: PMState, rule: str, at: float) -> None:
        if new == self.pm_state:
            return
        self.transitions.append(Transition(self.pm_state, new, rule, at))
        self.pm_state = new
        self._changed()
        self._steps.append(self.state())

    def _changed(self) -> None:
        self.version += 1
        self._state = None

    def _update(self, **values: object) -> None:
        for name, value in values.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                self._changed()

    def _recovery_finished(self, why: str, at: float) -> None:
        self._update(
            fatal_error=False,
            abort_start_time=0.0,
            startup_status=StartupStatus.NOT_RUNNING,
            conns_allowed=ConnsAllowed.ALL,
            reached_normal_running=True,
        )
        self._set_pm_state(PMState.RUN, why, at)

    # -- observations ------------------------------------------------------------------------

    def see_pid_status(self, status: PidStatus | None, at: float) -> None:
        """Line 8 of postmaster.pid (None when it cannot be read)."""
        if status is None or status == self.pid_status:
            return
        self._update(pid_status=status)
        if status is PidStatus.STOPPING and self.shutdown == Shutdown.NO:
            # pmdie writes "stopping" for every accepted request; which one only the log says.
            self._shutdown_requested(Shutdown.SMART, at, "postmaster.pid says stopping")

    def see_children(self, seen: Mapping[int, SeenProcess], at: float, died_at: Mapping[int, float] | None = None) -> None:
        """The postmaster's children now; `died_at` has exact death times from pidfds."""
        died_at = died_at or {}
        self._known_before = frozenset(self.children)
        deaths = [self._child_died(pid, died_at.get(pid, at)) for pid in list(self.children) if pid not in seen]
        for process in seen.values():
            known = self.children.get(process.pid)
            if known is None and not self._untitled(process, at):
                self._child_appeared(process)
            elif known is not None and self._relabelled(known, process.title):
                self._child_appeared(process, known.id)
        if not self.log_followed:
            self._crash_from_deaths(deaths, at)  # first: the deaths are judged in its light
        for death in deaths:
            self._judge(death)
        self._follow_children(deaths, at)

    def see_log(self, record: LogRecord) -> None:
        """One server log line, in order."""
        fact = classify(record.level, record.message, record.pid)
        if fact is not None:
            self._apply_fact(fact, record)
        elif record.message.startswith("database system was ") and self.pm_state == PMState.INIT:
            self._set_pm_state(PMState.STARTUP, "the startup process began (log)", record.at)
        elif record.message in ("entering standby mode", "starting archive recovery"):
            self._archive_recovery = True

    def see_postmaster_exit(self, at: float) -> None:
        """The postmaster process is gone (its pidfd said so)."""
        for pid in list(self.children):
            self._judge(self._child_died(pid, at))
        self.settle(at + GRACE)
        self._set_pm_state(PMState.NO_CHILDREN, "the postmaster exited", at)
        clean = self._shut_down_logged and not self._abnormal_end
        if not self.log_followed:
            clean = self.shutdown > Shutdown.NO  # it was asked to stop and it did
        self._update(exit_code=0 if clean else 1, abort_start_time=0.0)

    def settle(self, now: float) -> None:
        """Give deaths the log did not explain within GRACE their inferred verdicts."""
        for pid, death in list(self._pending.items()):
            if now - death.at >= GRACE:
                del self._pending[pid]
                self._record_inferred(death)

    def settle_initial(self, at: float) -> None:
        """After the first look: a state for a postmaster whose past we did not watch."""
        if self.pm_state != PMState.INIT:
            return
        kinds = self._kinds()
        status = self.pid_status
        if status is PidStatus.STARTING:
            self._set_pm_state(PMState.STARTUP, "postmaster.pid says starting", at)
        elif status is PidStatus.STANDBY:
            self._set_pm_state(PMState.RECOVERY, "postmaster.pid says standby", at)
        elif self.shutdown > Shutdown.NO:
            self._set_pm_state(PMState.WAIT_BACKENDS, "postmaster.pid says stopping", at)
        elif ChildKind.STARTUP in kinds:
            self._set_pm_state(PMState.HOT_STANDBY, "ready, and the startup process still runs", at)
        elif kinds & {ChildKind.CHECKPOINTER, ChildKind.WALWRITER} or status is PidStatus.READY:
            self._set_pm_state(PMState.RUN, "ready, with the checkpointer and walwriter running", at)
            self._update(reached_normal_running=True)
        self._follow_children([], at)

    # -- children ------------------------------------------------------------------------------

    def _child(self, process: SeenProcess, child_id: int) -> Child:
        title = process.title
        return Child(
            id=child_id,
            kind=title.kind,
            pid=process.pid,
            spawned_at=process.started_at,
            started_at=process.started_at,
            bgworker=title.bgworker,
            remote=title.host,
        )

    def _relabelled(self, known: Child, title: ProcessTitle) -> bool:
        """A child shows the postmaster's command line until it sets its title (never the
        other way round: an exiting process's title reads empty for a moment)."""
        if title.state == "starting" and title.kind is ChildKind.BACKEND:
            return False
        return known.kind != title.kind or known.bgworker != title.bgworker

    @staticmethod
    def _untitled(process: SeenProcess, at: float) -> bool:
        """Forked a moment ago and still untitled: wait a little to learn its kind (a
        connection that stays untitled is shown as one: it waits for its startup packet)."""
        return process.title.state == "starting" and at - process.started_at < UNTITLED_GRACE

    def _child_appeared(self, process: SeenProcess, child_id: int | None = None) -> None:
        if child_id is None:
            child_id, self._next_id = self._next_id, self._next_id + 1
        child = self._child(process, child_id)
        self.children[process.pid] = child
        key = child.lineage_key
        if (child.kind.special or child.kind is ChildKind.BGWORKER) and key in self._lineages:
            self.restarts[key] = self.restarts.get(key, 0) + 1
            self._before_successor(child)
        self._lineages.add(key)
        if child.kind is ChildKind.STARTUP:
            self._update(startup_status=StartupStatus.RUNNING)
        self._changed()

    def _child_died(self, pid: int, at: float) -> Death:
        child = self.children.pop(pid)
        death = Death(child, at, self.pm_state, self.shutdown)
        self._recent_deaths.append(death)
        if child.kind is ChildKind.STARTUP:
            self._update(startup_status=StartupStatus.NOT_RUNNING)
        self._changed()
        return death

    def _judge(self, death: Death) -> None:
        """Record how the child ended: as logged, after GRACE for the log to say it, or
        inferred at once when there is no log."""
        pid = death.child.pid or 0
        explained = self._explained.pop(pid, None)
        if explained is not None:
            self._record_logged(death, explained[0], explained[1])
        elif self.log_followed:
            self._pending[pid] = death
        else:
            self._record_inferred(death)

    def _record(self, child: Child, pid: int, status: ExitStatus | None, at: float, verdict: str) -> None:
        """Into the history; `status` None: unknown (ExitRecord holds it, the rows say so)."""
        if child.kind is ChildKind.BACKEND and "crash" not in verdict:
            return  # sessions come and go: only their crashes are history, as in the core
        successor = self._successor(child.lineage_key)
        if successor is not None and successor.started_at is not None:
            at = min(at, successor.started_at)
        record = ExitRecord(child.lineage_key, child.kind, pid, status, at, verdict)
        self.history = (self.history + [record])[-HISTORY_LENGTH:]
        self._changed()

    def _successor(self, key: str) -> Child | None:
        """The running child of a lineage (a special kind or a named worker), if any."""
        return next((c for c in self.children.values() if c.lineage_key == key and (c.kind.special or c.kind is ChildKind.BGWORKER)), None)

    def _before_successor(self, child: Child) -> None:
        """A death is seen a moment after it happens (more when the machine is busy), but
        the postmaster starts a successor only after reaping its predecessor: a death
        recorded after the successor's start happened before it."""
        started = child.started_at or 0.0
        for index in range(len(self.history) - 1, -1, -1):
            record = self.history[index]
            if record.key == child.lineage_key:
                if record.at > started:
                    self.history[index] = dataclasses.replace(record, at=started)
                return

    def _record_logged(self, death: Death, status: ExitStatus | None, fact: LogFact) -> None:
        child = death.child
        if status is None:
            return
        verdict = reaper_verdict(child.kind, status, death.pm_state, death.shutdown, child.bgworker)
        if fact.fact is Fact.FATAL:
            verdict = f"FATAL, {verdict}"
        self._record(child, child.pid or 0, status, death.at, verdict)

    def _record_inferred(self, death: Death) -> None:
        pid = death.child.pid or 0
        if pid in self._crashers:  # no log: a crash was inferred from it, how it died is unseen
            self._record(death.child, pid, None, death.at, CRASH + INFERRED)
            return
        victim = pid in self._victims
        self._victims.discard(pid)
        status, verdict = inferred_verdict(death, self.happened, log_followed=self.log_followed, victim=victim)
        self._record(death.child, pid, status, death.at, verdict)

    def _blame(self, crasher: Death) -> None:
        """No log: a crash was inferred from this death. Judged already (it died a look
        earlier than the second death), its record is judged again."""
        pid = crasher.child.pid or 0
        self._crashers.add(pid)
        for index in range(len(self.history) - 1, -1, -1):
            if self.history[index].pid == pid:
                self.history[index] = dataclasses.replace(self.history[index], status=None, verdict=CRASH + INFERRED)
                self._changed()
                return

    def _kinds(self) -> set[ChildKind]:
        return {child.kind for child in self.children.values()}

    # -- the result ------------------------------------------------------------------------------

    def state(self) -> State:
        """The inferred postmaster as the dashboard's State (cached until something changes)."""
        if self._state is None:
            children = {child.id: child for child in self.children.values()}
            self._state = State(
                config=self.config,
                pm_state=self.pm_state,
                shutdown=self.shutdown,
                fatal_error=self.fatal_error,
                startup_status=self.startup_status,
                conns_allowed=self.conns_allowed,
                abort_start_time=self.abort_start_time,
                reached_normal_running=self.reached_normal_running,
                started_at=self.started_at,
                pid_status=self.pid_status,
                exit_code=self.exit_code,
                children=children,
                next_child_id=self._next_id,
                last_transition=self.transitions[-1] if self.transitions else None,
                history=tuple(self.history),
                restarts=dict(self.restarts),
            )
        return self._state

    def take_steps(self) -> list[State]:
        """The state after each transition since the last call, so that a viewer sees every
        pmState even when several happen in one step (the last one is `state()`)."""
        steps, self._steps = self._steps, []
        return steps

    @property
    def has_pending(self) -> bool:
        """Deaths wait for the log to say how the child ended."""
        return bool(self._pending)

    @property
    def busy(self) -> bool:
        """Something is in motion: deaths to explain, or a state that does not last."""
        return bool(self._pending) or self.pm_state not in (PMState.RUN, PMState.HOT_STANDBY, PMState.RECOVERY)
