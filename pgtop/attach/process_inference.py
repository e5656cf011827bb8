"""pmState from the process table: the transitions the postmaster does not log, and,
without a log, all of them.

Level-triggered, as PostmasterStateMachine is: after every look at the children the rules
run until nothing changes. Each rule names the postmaster rule it mirrors (spec §5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgtop.attach.verdicts import Death
from pgtop.core.vocabulary import ChildKind, ConnsAllowed, PMState, Shutdown

if TYPE_CHECKING:
    from pgtop.attach.model import AttachModel

    Base = AttachModel
else:
    Base = object

CRASH_WINDOW = 0.5  # auxiliary deaths this close together are one crash (no log)
# PM_WAIT_BACKENDS lasts while any of these lives (T4); the checkpointer counts only in a
# crash or an immediate shutdown.
WAIT_BACKENDS_KINDS = frozenset(
    {
        ChildKind.BACKEND,
        ChildKind.AUTOVAC_WORKER,
        ChildKind.BGWORKER,
        ChildKind.STARTUP,
        ChildKind.WALRECEIVER,
        ChildKind.BGWRITER,
        ChildKind.WALWRITER,
        ChildKind.AUTOVAC_LAUNCHER,
    }
)
AUXILIARY = frozenset({ChildKind.CHECKPOINTER, ChildKind.BGWRITER, ChildKind.WALWRITER, ChildKind.AUTOVAC_LAUNCHER, ChildKind.STARTUP})


class ProcessInference(Base):
    """The process-table rules of `AttachModel`."""

    def _follow_children(self, deaths: list[Death], at: float) -> None:
        """The unlogged transitions, level-triggered: run until nothing changes."""
        for _ in range(len(PMState)):
            before = self.pm_state
            self._advance_from_children(deaths, at)
            if self.pm_state == before:
                return

    def _advance_from_children(self, deaths: list[Death], at: float) -> None:
        kinds, state = self._kinds(), self.pm_state
        if self.fatal_error and state >= PMState.WAIT_BACKENDS and self.shutdown == Shutdown.NO and not self.log_followed:
            self._reinit_from_children(at)
            if self.pm_state != state:
                return
        if state in (PMState.STARTUP, PMState.RECOVERY) and kinds & {ChildKind.WALWRITER, ChildKind.AUTOVAC_LAUNCHER}:
            self._recovery_finished("the walwriter runs (only in PM_RUN)", at)
        elif state in (PMState.RUN, PMState.HOT_STANDBY) and self.conns_allowed is ConnsAllowed.NONE:
            if ChildKind.BACKEND not in kinds:
                self._set_pm_state(PMState.WAIT_BACKENDS, "T2: smart shutdown and no client left", at)
        elif state == PMState.WAIT_BACKENDS and not kinds & WAIT_BACKENDS_KINDS:
            if self.fatal_error or self.shutdown == Shutdown.IMMEDIATE:
                if ChildKind.CHECKPOINTER not in kinds:
                    self._set_pm_state(PMState.WAIT_DEAD_END, "T4a: every child but the last few is gone", at)
            elif ChildKind.CHECKPOINTER in kinds:
                self._set_pm_state(PMState.SHUTDOWN, "T4b: only the checkpointer is left (shutdown checkpoint)", at)
        elif state == PMState.SHUTDOWN and ChildKind.CHECKPOINTER not in kinds:
            self._set_pm_state(PMState.SHUTDOWN_2, "reaper: the checkpointer exited in PM_SHUTDOWN", at)
        elif state == PMState.SHUTDOWN_2 and not kinds & {ChildKind.ARCHIVER, ChildKind.WALSENDER}:
            self._set_pm_state(PMState.WAIT_DEAD_END, "T5: archiver and walsenders are gone", at)
        elif state == PMState.WAIT_DEAD_END and not kinds - {ChildKind.SYSLOGGER, ChildKind.STATS}:
            self._set_pm_state(PMState.NO_CHILDREN, "T6: no child is left but the logger", at)

    def _reinit_from_children(self, at: float) -> None:
        """No log: children born after the crash mean the postmaster reinitialised (T11).
        Born after it: started after the first death was seen, or not known before the look
        at ps that saw the crash (a busy watcher sees a death late, and on a fast machine the
        new children may predate that moment; the crash cycle leaves no old one alive)."""
        crash = self.happened.crashes[-1] if self.happened.crashes else at
        reborn = [
            c for c in self.children.values()
            if c.kind in AUXILIARY and ((c.started_at or 0) >= crash - 0.01 or c.pid not in self._pre_crash)
        ]
        if reborn:
            self._set_pm_state(PMState.NO_CHILDREN, "every child exited (inferred)", at)
            self._set_pm_state(PMState.STARTUP, "T11: new children after the crash: reinitialised", at)

    def _crash_from_deaths(self, deaths: list[Death], at: float) -> None:
        """No log: the checkpointer dying, or two auxiliary processes within CRASH_WINDOW,
        outside a shutdown, is a crash (HandleChildCrash)."""
        if not deaths or self.fatal_error or self.shutdown > Shutdown.NO or self.pm_state not in (
            PMState.STARTUP, PMState.RECOVERY, PMState.HOT_STANDBY, PMState.RUN
        ):
            return
        recent = [d for d in self._recent_deaths if d.child.kind in AUXILIARY and at - d.at <= CRASH_WINDOW]
        if not any(d.child.kind is ChildKind.CHECKPOINTER for d in deaths) and len(recent) < 2:
            return
        crasher = next((d for d in deaths if d.child.kind is ChildKind.CHECKPOINTER), None) or min(recent, key=lambda d: d.at)
        self._blame(crasher)
        first = min(d.at for d in recent) if recent else at
        self.happened.crashes.append(first)
        self._pre_crash = self._known_before
        self._update(fatal_error=True, abort_start_time=first)
        self._set_pm_state(PMState.WAIT_BACKENDS, "HandleChildCrash: auxiliary processes died (inferred)", at)
