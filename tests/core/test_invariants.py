"""Random event sequences against the model, with invariants checked after every step.

Invariants (each is a promise the postmaster makes; each step of the model must keep them):
  I1  Shutdown never falls.
  I2  At most one child of each special kind (one startup process, one checkpointer, ...).
  I3  A walwriter is only started in PM_RUN.
  I4  Between a crash and the reinit, nothing is started but the syslogger and dead_end
      children (and the startup process at the reinit itself). One exception, as in
      postmaster.c: a startup process we SIGQUIT'd that still exits 0 was "too late" to
      kill, and reaper S5 commences normal operations.
  I5  FatalError is never true in PM_RUN, PM_HOT_STANDBY or PM_SHUTDOWN. (It can be in
      PM_SHUTDOWN_2: a crash there leaves pmState as it is, spec §4.2 step 10.)
  I6  Every signal targets a live child.
  I7  In PM_NO_CHILDREN only the syslogger is alive.
  I8  dead_end children are only ever signalled with SIGQUIT (by HandleChildCrash).
  I9  Once a shutdown was requested, postmaster.pid never says "ready" or "standby" again.
  I10 The postmaster exits only from PM_NO_CHILDREN, from PM_STARTUP (S3), or when the
      startup process cannot be forked; and never twice.
  I11 Connections are accepted only when canAcceptConnections allows them: a child is a
      dead_end exactly when the verdict was neither OK nor SUPERUSER.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pgtop.core.actions import Exit, SignalChild, Spawn, WritePidStatus
from pgtop.core.config import Config
from pgtop.core.events import Event
from pgtop.core.simulation import SimulatedCluster
from pgtop.core.vocabulary import (
    CAC,
    SPECIAL_KINDS,
    ChildKind,
    PidStatus,
    PMSignalReason,
    PMState,
    Shutdown,
    Sig,
)

NO_FATAL_STATES = {PMState.RUN, PMState.HOT_STANDBY, PMState.SHUTDOWN}


class CheckedCluster(SimulatedCluster):
    """A simulated cluster that checks the step-level invariants on every event."""

    def feed(self, event: Event) -> list:  # type: ignore[override]
        before = self.state
        live_before = set(before.children)
        actions = super().feed(event)
        after = self.state
        spawned = {a.child_id for a in actions if isinstance(a, Spawn)}
        assert after.shutdown >= before.shutdown, "I1"
        for action in actions:
            if isinstance(action, Spawn):
                if action.kind is ChildKind.WALWRITER:
                    assert after.pm_state == PMState.RUN, "I3"
                crash_wait = before.fatal_error and before.pm_state in (
                    PMState.WAIT_BACKENDS,
                    PMState.WAIT_DEAD_END,
                )
                rule = after.last_transition.rule if after.last_transition else ""
                reinit = rule == "T11"
                if crash_wait and rule != "reaper S5":
                    # After the reinit, in the same wakeup, STARTUP's own keep-alive may start a
                    # walreceiver that the startup process had asked for.
                    allowed = action.kind is ChildKind.SYSLOGGER or action.dead_end or (
                        reinit and action.kind in (ChildKind.STARTUP, ChildKind.WALRECEIVER)
                    )
                    assert allowed, f"I4: {action.kind} started during a crash cycle"
                if action.cac is not None:
                    assert action.dead_end == (action.cac not in (CAC.OK, CAC.SUPERUSER)), "I11"
            elif isinstance(action, SignalChild):
                assert action.child_id in live_before | spawned, "I6"
                target = before.children.get(action.child_id)
                if target is not None and target.dead_end:
                    assert action.signal == Sig.QUIT, "I8"
            elif isinstance(action, WritePidStatus) and before.shutdown > Shutdown.NO:
                assert action.status in (PidStatus.STOPPING, PidStatus.STARTING), "I9"
            elif isinstance(action, Exit):
                assert before.exit_code is None, "I10: exits twice"
                assert after.pm_state in (PMState.NO_CHILDREN, PMState.STARTUP) or (
                    after.pm_state == PMState.INIT
                ), f"I10: exit from {after.pm_state.pg_name}"
        return actions


class PostmasterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = CheckedCluster(Config(archive_mode="on", logging_collector=True))
        self.cluster.boot()

    @property
    def alive(self) -> bool:
        return self.cluster.exit_code is None

    def _kinds_running(self) -> list[tuple[ChildKind, int]]:
        counts: dict[ChildKind, int] = {}
        for child in self.cluster.state.children.values():
            if not child.dead_end and child.pid is not None:
                counts[child.kind] = counts.get(child.kind, 0) + 1
        return sorted(counts.items(), key=lambda item: item[0].value)

    @precondition(lambda self: not self.alive)
    @rule()
    def start_the_cluster_again(self) -> None:
        self.cluster = CheckedCluster(self.cluster.config)
        self.cluster.boot()

    @precondition(lambda self: self.alive)
    @rule(data=st.data(), sig=st.sampled_from([Sig.KILL, Sig.SEGV, Sig.TERM, Sig.QUIT, Sig.USR2, Sig.INT]))
    def kill_a_child(self, data: st.DataObject, sig: Sig) -> None:
        running = self._kinds_running()
        if not running:
            return
        kind, count = data.draw(st.sampled_from(running))
        self.cluster.kill(kind, sig, data.draw(st.integers(0, count - 1)))

    @precondition(lambda self: self.alive)
    @rule(data=st.data())
    def stop_or_continue_a_child(self, data: st.DataObject) -> None:
        running = self._kinds_running()
        if not running:
            return
        kind, _ = data.draw(st.sampled_from(running))
        sig = data.draw(st.sampled_from([Sig.STOP, Sig.CONT]))
        self.cluster.kill(kind, sig)

    @precondition(lambda self: self.alive)
    @rule(code=st.sampled_from([0, 0, 0, 1, 3]))
    def startup_process_exits(self, code: int) -> None:
        if any(c.kind is ChildKind.STARTUP for c in self.cluster.state.children.values()):
            self.cluster.finish_startup(code)

    @precondition(lambda self: self.alive)
    @rule(code=st.sampled_from([0, 1, 2]), data=st.data())
    def a_child_exits_by_itself(self, code: int, data: st.DataObject) -> None:
        children = [c for c in self.cluster.state.children.values() if c.pid is not None]
        if not children:
            return
        child = data.draw(st.sampled_from(sorted(children, key=lambda c: c.id)))
        self.cluster.exit(child.pid, code=code, slot_released=data.draw(st.booleans()))
        self.cluster.settle()

    @precondition(lambda self: self.alive)
    @rule(sig=st.sampled_from([Sig.HUP, Sig.TERM, Sig.INT, Sig.QUIT]))
    def signal_the_postmaster(self, sig: Sig) -> None:
        self.cluster.signal(sig)

    @precondition(lambda self: self.alive)
    @rule(
        reasons=st.frozensets(st.sampled_from(list(PMSignalReason)), max_size=3),
        promote=st.booleans(),
    )
    def a_child_raises_pmsignals(self, reasons: frozenset[PMSignalReason], promote: bool) -> None:
        self.cluster.pmsignal(*reasons, promote_file=promote)

    @precondition(lambda self: self.alive)
    @rule()
    def a_client_connects(self) -> None:
        self.cluster.connect()

    @precondition(lambda self: self.alive)
    @rule(seconds=st.sampled_from([0.05, 1.0, 5.0, 11.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.cluster.advance(seconds)

    @precondition(lambda self: self.alive)
    @rule(kind=st.sampled_from([ChildKind.CHECKPOINTER, ChildKind.WALWRITER, ChildKind.BGWORKER, ChildKind.BACKEND]))
    def forks_of_a_kind_start_failing_or_recover(self, kind: ChildKind) -> None:
        self.cluster.fail_forks ^= {kind}

    @invariant()
    def special_children_are_unique(self) -> None:  # I2
        for kind in SPECIAL_KINDS:
            count = sum(1 for c in self.cluster.state.children.values() if c.kind is kind and not c.dead_end)
            assert count <= 1, f"I2: {count} of {kind.value}"

    @invariant()
    def fatal_error_only_where_it_may_be(self) -> None:  # I5
        state = self.cluster.state
        assert not (state.fatal_error and state.pm_state in NO_FATAL_STATES), f"I5 in {state.pm_state.pg_name}"

    @invariant()
    def no_children_means_only_the_logger(self) -> None:  # I7
        state = self.cluster.state
        if state.pm_state == PMState.NO_CHILDREN:
            kinds = {c.kind for c in state.children.values()}
            assert kinds <= {ChildKind.SYSLOGGER}, f"I7: {kinds}"


PostmasterMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPostmasterInvariants = PostmasterMachine.TestCase
