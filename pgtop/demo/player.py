"""The player: plays a scenario's steps against a real cluster, in a thread of its own.

Actions go through the dashboard's controller (real signals) or the dashboard itself (keys);
expectations wait on what the supervisor published, each with its deadline. Three paces:
`stage` waits for the presenter at every pause, `auto` waits a few seconds there, `headless`
goes straight on and skips stage-only steps (the test suite's way). The presenter may pause,
step, resume or restart at any time; a restart stops the cluster and plays from a fresh one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from pgtop.core.vocabulary import PMState
from pgtop.demo import expectations
from pgtop.demo import scenario as sc
from pgtop.demo.actions import Actor, StepFailed, describe_step
from pgtop.demo.observer import Mark, Observer
from pgtop.demo.stage import DemoController
from pgtop.runtime.snapshot import CommandRefused, Snapshot

AUTO_PAUSE = 4.0  # seconds an `auto` play rests at each pause
AUTO_READING = 3.0  # seconds an `auto` play leaves each caption alone
READY_TIMEOUT = 30.0  # seconds an autostarted cluster may take to reach PM_RUN
CONTEXT_LINES = 12  # server log lines a headless failure report ends with
POLL = 0.1  # seconds between looks at the flags while waiting
PROBE_INTERVAL = 0.3  # seconds between connection attempts of a probing expectation
MARKLESS = (sc.Caption, sc.Wait)  # actions that change nothing the expectations look at


@dataclass(frozen=True, slots=True)
class PlayerEvent:
    """What the player tells its viewer: `kind` is caption, step, passed, failed, skipped,
    action, paused, playing, context (after a headless failure) or finished."""

    kind: str
    text: str
    index: int = -1
    line: int = 0
    ok: bool = True


class Viewer(Protocol):
    """The dashboard (on a terminal or headless): shows events, presses keys."""

    def player_event(self, event: PlayerEvent) -> None: ...

    def press(self, key: str, child_id: int | None) -> None: ...


class _Interrupted(Exception):
    """The presenter asked for a restart, or the play is being stopped."""


class Player:
    """Plays one scenario, again on a fresh cluster after each restart."""

    def __init__(self, scenario: sc.Scenario, controller: DemoController, observer: Observer, viewer: Viewer, *, pace: str = "stage") -> None:
        self.scenario = scenario
        self.controller = controller
        self.observer = observer
        self.viewer = viewer
        self.pace = pace
        self.failures: list[str] = []
        self.finished = threading.Event()
        self._flags = threading.Condition()
        self._paused = False
        self._steps_left: int | None = None  # after "n": play this many steps, then pause
        self._restart = False
        self._stop = False
        self.actor = Actor(controller, observer, viewer, lambda text: self._say("action", text))
        self._mark: Mark = observer.mark()
        self._thread = threading.Thread(target=self._run, name="pgtop-demo-player", daemon=True)

    # -- the presenter's controls (any thread) -------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def toggle_pause(self) -> None:
        with self._flags:
            self._paused = not self._paused
            self._steps_left = None
            self._flags.notify_all()
        self._say("paused" if self._paused else "playing", "")

    def step_once(self) -> None:
        with self._flags:
            self._paused, self._steps_left = False, 1
            self._flags.notify_all()

    def restart(self) -> None:
        with self._flags:
            self._restart, self._paused, self._steps_left = True, False, None
            self._flags.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        with self._flags:
            self._stop = True
            self._flags.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.actor.thaw()

    @property
    def passed(self) -> bool:
        return self.finished.is_set() and not self.failures

    # -- the play -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    self._play()
                    self._finish()
                    if self.pace == "headless":
                        return
                    self._wait_for_restart()
                except _Interrupted:
                    pass
                if self._stop:
                    return
                self._reset()
        except Exception as error:  # noqa: BLE001 - a bug must end the play visibly, not hang it
            self.failures.append(f"internal error: {type(error).__name__}: {error}")
            self._say("failed", self.failures[-1], ok=False)
            self._finish()

    def _play(self) -> None:
        self.failures.clear()
        self.finished.clear()
        self._mark = self.observer.mark()
        if self.scenario.autostart:
            try:
                self._say("action", self.actor.start(), index=-1)
                self._wait_ready()
            except (StepFailed, CommandRefused) as error:
                self.failures.append(f"start: {error}")
                self._say("failed", self.failures[-1], ok=False)
                return
        steps = self.scenario.steps
        for index, step in enumerate(steps):
            self._gate()
            if step.stage_only and self.pace == "headless":
                self._say("skipped", f"line {step.line}: stage-only, skipped: {self._describe(step)}", index, step.line)
                continue
            self._say("step", self._describe(step), index, step.line)
            started = time.monotonic()
            try:
                text = self._act(step.what) if step.is_action else self._expect(step.what)
            except (StepFailed, CommandRefused, OSError) as error:
                message = f"line {step.line}: {self._describe(step)}: {error}"
                self.failures.append(message)
                self._say("failed", message, index, step.line, ok=False)
                if self.pace == "headless":
                    self._tell_context()
                    return
                self._pause_after_failure()
                continue
            if not isinstance(step.what, sc.Caption):
                took = time.monotonic() - started
                self._say("passed", f"line {step.line}: {self._describe(step)}: {text} ({took:.1f} s)", index, step.line)

    def _tell_context(self) -> None:
        """After a failure: the last server log lines and the children, for whoever debugs it."""
        latest = self.observer.latest
        if latest is not None:
            state = latest.state
            children = ", ".join(f"{c.bgworker or c.kind.value} {c.pid}" for c in state.children.values())
            self._say("context", f"{state.pm_state.pg_name}, Shutdown {state.shutdown.name}, children: {children}")
        for record in self.observer.logs_since(Mark(0, 0, 0, None))[-CONTEXT_LINES:]:
            self._say("context", record.text or record.message)

    def _wait_ready(self) -> None:
        """An autostarted cluster is ready in PM_RUN (a standby: PM_HOT_STANDBY) with every
        child forked."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not _ready(self.observer.latest):
            if time.monotonic() >= deadline:
                raise StepFailed(f"the cluster did not reach PM_RUN or PM_HOT_STANDBY within {READY_TIMEOUT:g} s")
            self._check_interrupt()
            self.observer.wait_for_news(POLL)

    def _finish(self) -> None:
        self.finished.set()
        verdict = "every expectation held" if not self.failures else f"{len(self.failures)} step(s) failed"
        self._say("finished", f"{self.scenario.name}: {verdict}", ok=not self.failures)

    def _reset(self) -> None:
        """A fresh cluster for the next play."""
        with self._flags:
            self._restart = False
        self._say("action", "restarting: stopping the cluster and making a fresh one")
        self.actor.thaw()
        self.controller.close()
        self.controller.cluster.recreate()
        self.controller.clients.forget_rows()

    # -- pacing -----------------------------------------------------------------------------

    def _check_interrupt(self) -> None:
        if self._stop or self._restart:
            raise _Interrupted

    def _gate(self) -> None:
        """Before each step: wait while paused; count down a single step."""
        with self._flags:
            if self._steps_left == 0:
                self._paused, self._steps_left = True, None
        if self._paused:
            self._gate_wait()
        with self._flags:
            self._check_interrupt()
            if self._steps_left is not None:
                self._steps_left -= 1

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._flags:
            while (remaining := deadline - time.monotonic()) > 0:
                self._check_interrupt()
                self._flags.wait(min(POLL, remaining))
            self._check_interrupt()

    def _presenter_pause(self) -> None:
        if self.pace == "headless":
            return
        if self.pace == "auto":
            self._sleep(AUTO_PAUSE)
            return
        with self._flags:
            self._paused = True
        self._gate_wait()

    def _pause_after_failure(self) -> None:
        if self.pace == "stage":
            with self._flags:
                self._paused = True
            self._gate_wait()

    def _gate_wait(self) -> None:
        self._say("paused", "")
        with self._flags:
            while self._paused and not (self._stop or self._restart):
                self._flags.wait(POLL)
            self._check_interrupt()
        self._say("playing", "")

    def _wait_for_restart(self) -> None:
        with self._flags:
            while not (self._stop or self._restart):
                self._flags.wait(POLL)

    # -- actions ----------------------------------------------------------------------------

    def _act(self, action: sc.Action) -> str:
        if not isinstance(action, MARKLESS):
            self._mark = self.observer.mark()  # expectations look at what came after this
        match action:
            case sc.Caption(text):
                self._say("caption", text)
                if self.pace == "auto":
                    self._sleep(AUTO_READING)  # nobody presses a key: give the room time to read
                return text
            case sc.Wait(seconds, pause):
                self._sleep(seconds)
                if pause:
                    self._presenter_pause()
                return "waited"
        return self.actor.act(action)

    # -- expectations -----------------------------------------------------------------------

    def _expect(self, expect: sc.Expect) -> str:
        deadline = time.monotonic() + expect.timeout
        while True:
            verdicts = self._verdicts(expect)
            failing = [(c, v) for c, v in verdicts if not v.holds]
            if not failing:
                break
            if time.monotonic() >= deadline:
                condition, verdict = failing[0]
                raise StepFailed(f"not met within {expect.timeout:g} s: {expectations.describe(condition)}; saw: {verdict.saw}")
            self._wait_news(expect, deadline)
        if expect.during:
            self._hold(expect)
        return "; ".join(v.saw for _, v in verdicts)

    def _verdicts(self, expect: sc.Expect) -> list[tuple[sc.Condition, expectations.Verdict]]:
        return [(c, expectations.check(c, self.observer, self._mark, self.controller)) for c in expect.conditions]

    def _wait_news(self, expect: sc.Expect, deadline: float) -> None:
        self._check_interrupt()
        probing = any(expectations.is_probe(c) for c in expect.conditions)
        slice_ = min(PROBE_INTERVAL if probing else POLL, max(0.0, deadline - time.monotonic()))
        if probing:
            self._sleep(slice_)
        else:
            self.observer.wait_for_news(slice_)

    def _hold(self, expect: sc.Expect) -> None:
        """The conditions must go on holding for `during` seconds."""
        until = time.monotonic() + expect.during
        while (remaining := until - time.monotonic()) > 0:
            self._wait_news(expect, time.monotonic() + min(remaining, POLL))
            for condition, verdict in self._verdicts(expect):
                if not verdict.holds:
                    held = expect.during - remaining
                    raise StepFailed(f"held only {held:.1f} s of {expect.during:g} s: {expectations.describe(condition)}; saw: {verdict.saw}")

    # -- telling the viewer -----------------------------------------------------------------

    def _say(self, kind: str, text: str, index: int = -1, line: int = 0, *, ok: bool = True) -> None:
        self.viewer.player_event(PlayerEvent(kind, text, index, line, ok))

    def _describe(self, step: sc.Step) -> str:
        return describe_step(step)


def _ready(snapshot: Snapshot | None) -> bool:
    if snapshot is None or snapshot.state.pm_state not in (PMState.RUN, PMState.HOT_STANDBY):
        return False
    return all(child.pid is not None for child in snapshot.state.children.values())
