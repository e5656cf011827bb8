"""pmState from the server log: each line the postmaster writes at a transition (spec §7)
moves the model as the postmaster moved; LogChildExit and FATAL lines say how children
ended. Lines are taken in order, stamped with the server's own time.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, assert_never

from pgtop.attach.logrules import Fact, LogFact, kind_of_exit
from pgtop.attach.verdicts import reaper_verdict
from pgtop.core.state import Child
from pgtop.core.vocabulary import (
    ChildKind,
    ConnsAllowed,
    PidStatus,
    PMState,
    Shutdown,
    StartupStatus,
)
from pgtop.runtime.snapshot import LogRecord

if TYPE_CHECKING:
    from pgtop.attach.model import AttachModel

    Base = AttachModel
else:
    Base = object


class LogInference(Base):
    """The log rules of `AttachModel`."""

    def _apply_fact(self, fact: LogFact, record: LogRecord) -> None:
        at = record.at
        match fact.fact:
            case Fact.STARTING:
                major = re.match(r"\d+", fact.version or "")
                self.major_version = int(major.group()) if major else self.major_version
            case Fact.READY:
                self._recovery_finished("reaper S5: ready to accept connections (log)", at)
            case Fact.READY_READ_ONLY:
                self._update(conns_allowed=ConnsAllowed.ALL, fatal_error=False)
                self._set_pm_state(PMState.HOT_STANDBY, "BEGIN_HOT_STANDBY: ready for read-only connections (log)", at)
            case Fact.SHUTDOWN_REQUEST:
                self._shutdown_requested(fact.shutdown or Shutdown.SMART, at, "log")
            case Fact.TERMINATING_OTHERS:
                self._crash_logged(at)
            case Fact.SIGKILL_ISSUED:
                self.happened.sigkills.append(at)
                self._update(abort_start_time=0.0)
            case Fact.REINITIALIZING:
                self._last_steps_to_exit(at)  # the line may come before the last deaths are seen
                self._set_pm_state(PMState.NO_CHILDREN, "T6: every child exited (log: reinitializing)", at)
                self._set_pm_state(PMState.STARTUP, "T11: all server processes terminated; reinitializing (log)", at)
                self._update(abort_start_time=0.0, startup_status=StartupStatus.RUNNING)
            case Fact.REDO_STARTS:
                if self.pm_state == PMState.STARTUP and self.shutdown == Shutdown.NO and (self.major_version >= 15 or self._archive_recovery):
                    self._update(fatal_error=False, abort_start_time=0.0)
                    self._set_pm_state(PMState.RECOVERY, "RECOVERY_STARTED: redo starts (log)", at)
            case Fact.CHECKPOINTER_SHUTTING_DOWN:
                if self.pm_state < PMState.SHUTDOWN:
                    self._set_pm_state(PMState.SHUTDOWN, "T4b: the checkpointer is shutting down (log)", at)
            case Fact.SHUT_DOWN:
                self._shut_down_logged = True
                self._last_steps_to_exit(at)
                self._set_pm_state(PMState.NO_CHILDREN, "database system is shut down (log)", at)
            case Fact.ABNORMAL_END:
                self._abnormal_end = True
                self._last_steps_to_exit(at)
                self._set_pm_state(PMState.NO_CHILDREN, f"{record.message} (log)", at)
            case Fact.RECOVERY_TARGET:
                self._shutdown_requested(Shutdown.SMART, at, "log: shutdown at recovery target", quiet=True)
            case Fact.CHILD_EXIT | Fact.FATAL:
                self._exit_logged(fact, at)
            case Fact.RELOAD:
                pass  # shown in the log; the state does not change
            case _ as unknown:
                assert_never(unknown)

    def _last_steps_to_exit(self, at: float) -> None:
        """The postmaster exits, or reinitialises after a crash, only from PM_NO_CHILDREN:
        the states it must have passed on the way, when the log jumps there before we saw
        the last children go."""
        if self.pm_state == PMState.SHUTDOWN:
            self._set_pm_state(PMState.SHUTDOWN_2, "reaper: the checkpointer exited in PM_SHUTDOWN (inferred)", at)
        if self.pm_state in (PMState.SHUTDOWN_2, PMState.WAIT_BACKENDS):
            self._set_pm_state(PMState.WAIT_DEAD_END, "T4a/T5: the last children exited (inferred)", at)

    def _shutdown_requested(self, level: Shutdown, at: float, source: str, *, quiet: bool = False) -> None:
        """pmdie (spec §3.2): only a stronger request counts."""
        if level <= self.shutdown:
            return
        self._update(shutdown=level)
        if not quiet:
            self._update(pid_status=PidStatus.STOPPING)
        name = f"{level.name.lower()} shutdown"
        state = self.pm_state
        if level == Shutdown.IMMEDIATE:
            self.happened.immediate_at = at
            self._update(abort_start_time=at)
            self._set_pm_state(PMState.WAIT_BACKENDS, f"pmdie: {name} ({source})", at)
        elif state in (PMState.STARTUP, PMState.RECOVERY) or (level == Shutdown.FAST and state in (PMState.RUN, PMState.HOT_STANDBY)):
            self._set_pm_state(PMState.WAIT_BACKENDS, f"pmdie: {name} → PM_STOP_BACKENDS ({source})", at)
        elif state in (PMState.RUN, PMState.HOT_STANDBY):
            self._update(conns_allowed=ConnsAllowed.NONE)
        self._follow_children([], at)

    def _crash_logged(self, at: float) -> None:
        """HandleChildCrash's first crash (spec §4.2)."""
        self.happened.crashes.append(at)
        self._victims.update(self._pending)  # the crashed child's own line came first
        if self.shutdown != Shutdown.IMMEDIATE:
            self._update(fatal_error=True)
        if self.abort_start_time == 0.0:
            self._update(abort_start_time=at)
        if any(c.kind is ChildKind.STARTUP for c in self.children.values()):
            self._update(startup_status=StartupStatus.SIGNALED)
        if self.pm_state in (PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY, PMState.RUN, PMState.STOP_BACKENDS, PMState.SHUTDOWN):
            self._set_pm_state(PMState.WAIT_BACKENDS, "HandleChildCrash: terminating any other active server processes (log)", at)

    def _exit_logged(self, fact: LogFact, at: float) -> None:
        """LogChildExit or a FATAL line: the status of a death seen, about to be, or missed."""
        pid = fact.pid
        if pid is None or pid == self.postmaster_pid:
            return
        death = self._pending.pop(pid, None)
        if death is not None:
            # The line is stamped after the reap: the death was no later than that.
            self._record_logged(dataclasses.replace(death, at=min(death.at, at)), fact.status, fact)
        elif pid in self.children:
            previous = self._explained.get(pid)
            if previous is None or fact.fact is Fact.CHILD_EXIT:
                self._explained[pid] = (fact.status, fact)
        elif fact.fact is Fact.CHILD_EXIT and fact.status is not None:
            # A child we never saw (it lived between two looks, or before we attached).
            kind = kind_of_exit(fact)
            ghost = Child(id=0, kind=kind, pid=pid, spawned_at=at, bgworker=fact.bgworker)
            verdict = reaper_verdict(kind, fact.status, self.pm_state, self.shutdown, fact.bgworker)
            self._record(ghost, pid, fact.status, at, verdict)
