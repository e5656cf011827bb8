"""What each scripted action does to the cluster: through the dashboard's controller (real
signals), the dashboard itself (keys), the demo's clients, or the data directory's files.

Captions and waits are the player's business (pacing); everything else is done here.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Protocol

from pgtop.core.state import Child
from pgtop.core.vocabulary import Sig
from pgtop.demo import expectations
from pgtop.demo import scenario as sc
from pgtop.demo.observer import Observer
from pgtop.demo.stage import DemoController
from pgtop.runtime.snapshot import CommandRefused, ShutdownMode

SHUTDOWN_SIGNALS = {Sig.TERM: ShutdownMode.SMART, Sig.INT: ShutdownMode.FAST, Sig.QUIT: ShutdownMode.IMMEDIATE}


class StepFailed(Exception):
    """A step could not be done, or an expectation did not hold: one line for the report."""


class KeyPresser(Protocol):
    def press(self, key: str, child_id: int | None) -> None: ...


class Actor:
    """Does the actions; remembers the children it froze, so none is left SIGSTOPped."""

    def __init__(self, controller: DemoController, observer: Observer, keys: KeyPresser, tell: Callable[[str], None]) -> None:
        self.controller = controller
        self.observer = observer
        self.keys = keys
        self.tell = tell  # the script's own actions, for the presenter's overlay
        self._stopped_children: set[int] = set()

    def act(self, action: sc.Action) -> str:
        """Do it; a one-line account of what was done. Raises StepFailed or CommandRefused."""
        match action:
            case sc.Key(key, child):
                child_id = self._child(child).id if child is not None else None
                self.keys.press(key, child_id)
                return f"key {key}" + (f" on {child.label}" if child else "")
            case sc.SignalPostmaster(sig):
                return self._signal_postmaster(sig)
            case sc.SignalChild(ref, sig):
                return self._signal_child(ref, sig)
            case sc.Load(on):
                return self.controller.clients.set_load(on)
            case sc.Sessions(count):
                return self._sessions(count)
            case sc.ReloadConfig():
                return self._reload_config(action)
            case sc.Start():
                return self.start()
            case sc.Corrupt(what):
                if self.controller.running:
                    raise StepFailed("stop the cluster first: pg_control is only damaged while it is down")
                self.controller.cluster.corrupt_control_file()
                return f"one byte of {what} flipped"
        raise AssertionError(action)

    def start(self) -> str:
        """Start the cluster; a postmaster that cannot start is news, not a failed step (the
        expectations check what it said)."""
        try:
            return self.controller.start() or "postmaster started"
        except CommandRefused as refusal:
            if self.controller.startup_error is None:
                raise
            return f"the postmaster could not start: {refusal}"

    def thaw(self) -> None:
        """SIGCONT to every child the script froze and that may still be frozen."""
        for pid in list(self._stopped_children):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass  # gone already
        self._stopped_children.clear()

    def _signal_postmaster(self, sig: Sig) -> str:
        latest = self.observer.latest
        pid = latest.postmaster_pid if latest is not None else "?"
        if sig is Sig.HUP:
            self.controller.reload()
        elif sig in SHUTDOWN_SIGNALS:
            self.controller.shutdown(SHUTDOWN_SIGNALS[sig])
        else:
            raise StepFailed(f"SIG{sig.name} is not a signal the postmaster takes from a demo")
        return self._did(f"SIG{sig.name} sent to the postmaster (PID {pid})")

    def _signal_child(self, ref: sc.ChildRef, sig: Sig) -> str:
        child = self._child(ref)
        assert child.pid is not None and child.started_at is not None
        self.controller.signal_child(child.pid, child.started_at, sig)
        if sig is Sig.STOP:
            self._stopped_children.add(child.pid)
        elif sig is Sig.CONT:
            self._stopped_children.discard(child.pid)
        return self._did(f"SIG{sig.name} sent to {ref.label} (PID {child.pid})")

    def _did(self, text: str) -> str:
        self.tell(text)
        return text

    def _child(self, ref: sc.ChildRef) -> Child:
        child = expectations.find_child(self.observer.latest, ref)
        if child is None:
            raise StepFailed(f"no running {ref.label}")
        return child

    def _sessions(self, count: int) -> str:
        clients = self.controller.clients
        if count == 0:
            clients.close_sessions()
            return "client sessions closed"
        connected = clients.open_sessions(count)
        if connected < count:
            raise StepFailed(f"{connected} of {count} client sessions connected")
        return f"{count} client session(s) open"

    def _reload_config(self, change: sc.ReloadConfig) -> str:
        cluster = self.controller.cluster
        if change.settings:
            cluster.set(dict(change.settings))
            text = "set " + ", ".join(f"{name} = {value}" for name, value in change.settings)
        elif change.append is not None:
            cluster.append(change.append)
            text = f"wrote {change.append.strip()!r} into pgtop.yaml"
        else:
            cluster.revert()
            text = "pgtop.yaml put back as it was"
        if change.reload:
            self.controller.reload()
            text += ", then SIGHUP to the postmaster"
        return self._did(text)


def describe_step(step: sc.Step) -> str:
    """A step as a one-line summary, as the report prints it."""
    what = step.what
    match what:
        case sc.Expect(conditions, _, during):
            text = "expect " + ", ".join(expectations.describe(c) for c in conditions)
            return text + (f" (for {during:g} s)" if during else "")
        case sc.Caption(text):
            return f'caption "{text[:60]}{"…" if len(text) > 60 else ""}"'
        case sc.Key(key, child):
            return f"key {key}" + (f" on {child.label}" if child else "")
        case sc.SignalPostmaster(sig):
            return f"signal SIG{sig.name} to the postmaster"
        case sc.SignalChild(child, sig):
            return f"SIG{sig.name} to {child.label}"
        case sc.Load(on):
            return f"client load {'on' if on else 'off'}"
        case sc.Sessions(count):
            return f"open {count} client session(s)" if count else "close the client sessions"
        case sc.ReloadConfig():
            return "change pgtop.yaml" + (" and reload" if what.reload else "")
        case sc.Wait(seconds, pause):
            return "pause for the presenter" if pause and not seconds else f"wait {seconds:g} s" + (" then pause" if pause else "")
        case sc.Start():
            return "start the cluster"
        case sc.Corrupt(target):
            return f"corrupt {target}"
    raise AssertionError(what)

