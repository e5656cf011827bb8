"""A demo scenario: a cluster's settings and the steps a presentation plays, as plain data.

Steps are actions (a caption, a dashboard key, a signal, a kill, client load, a config edit, a
wait) and expectations (conditions on what the audience sees, each with a deadline). Every
step remembers its line in the YAML file, so a failure points at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgtop.core.vocabulary import ChildKind, PMState, Shutdown, Sig

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ChildRef:
    """A child named by kind ("walwriter") or by background worker name."""

    kind: ChildKind
    bgworker: str | None = None

    @property
    def label(self) -> str:
        return self.bgworker or self.kind.value


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caption:
    """Text for the audience; it explains the rule in play."""

    text: str


@dataclass(frozen=True, slots=True)
class Key:
    """A dashboard key, pressed as the presenter would (on `child`'s row, if given)."""

    key: str
    child: ChildRef | None = None


@dataclass(frozen=True, slots=True)
class SignalPostmaster:
    signal: Sig


@dataclass(frozen=True, slots=True)
class SignalChild:
    """kill / stop / cont: a signal to the running child of this kind."""

    child: ChildRef
    signal: Sig


@dataclass(frozen=True, slots=True)
class Load:
    """Client load: a client that INSERTs rows, committing each, and retries when refused."""

    on: bool


@dataclass(frozen=True, slots=True)
class Sessions:
    """Open this many idle client sessions (0 closes them all)."""

    count: int


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    """Change pgtop.yaml (set parameters, append raw text, or put the file back), then SIGHUP."""

    settings: tuple[tuple[str, Any], ...] = ()
    append: str | None = None
    revert: bool = False
    reload: bool = True


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait `seconds`, or until the presenter resumes (`pause`; headless runs go on)."""

    seconds: float = 0.0
    pause: bool = False


@dataclass(frozen=True, slots=True)
class Start:
    """Start the cluster (again) on the same data directory."""


@dataclass(frozen=True, slots=True)
class Corrupt:
    """Damage a file of the stopped cluster: `pg_control` gets one byte flipped."""

    what: str


# -- expectations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PmStateIs:
    """The latest snapshot is in this pmState."""

    state: PMState


@dataclass(frozen=True, slots=True)
class PmStateReached:
    """Some snapshot since the last action was in this pmState (catches transient states)."""

    state: PMState


@dataclass(frozen=True, slots=True)
class LogSeen:
    """A server log line since the last action matches this regex."""

    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class PidChanged:
    """The child runs with another PID than at the last action (it was restarted)."""

    child: ChildRef


@dataclass(frozen=True, slots=True)
class PidSame:
    """The child runs with the PID it had at the last action."""

    child: ChildRef


@dataclass(frozen=True, slots=True)
class Running:
    child: ChildRef


@dataclass(frozen=True, slots=True)
class Absent:
    """No running child of this kind."""

    child: ChildRef


@dataclass(frozen=True, slots=True)
class ExitCode:
    """The postmaster exited with this code."""

    code: int


@dataclass(frozen=True, slots=True)
class ShutdownIs:
    level: Shutdown


@dataclass(frozen=True, slots=True)
class FatalErrorIs:
    value: bool


@dataclass(frozen=True, slots=True)
class ClientSaw:
    """A demo client got a message (error, warning, notice) matching this regex since the
    last action."""

    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """A new connection is refused with a message matching this regex."""

    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class RowsSurvive:
    """Every row whose INSERT committed under the client load is there."""


Condition = (
    PmStateIs | PmStateReached | LogSeen | PidChanged | PidSame | Running | Absent | ExitCode
    | ShutdownIs | FatalErrorIs | ClientSaw | ConnectionRefused | RowsSurvive
)

CLIENT_CONDITIONS = (ClientSaw, ConnectionRefused, RowsSurvive)


@dataclass(frozen=True, slots=True)
class Expect:
    """All conditions must hold together before `timeout`, then go on holding for `during`."""

    conditions: tuple[Condition, ...]
    timeout: float = DEFAULT_TIMEOUT
    during: float = 0.0


Action = Caption | Key | SignalPostmaster | SignalChild | Load | Sessions | ReloadConfig | Wait | Start | Corrupt


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the script. `stage_only` steps are skipped by headless runs (a wait too
    long for the test suite's budget)."""

    line: int
    what: Action | Expect
    stage_only: bool = False

    @property
    def is_action(self) -> bool:
        return not isinstance(self.what, Expect)

    @property
    def needs_clients(self) -> bool:
        what = self.what
        if isinstance(what, (Load, Sessions)):
            return True
        return isinstance(what, Expect) and any(isinstance(c, CLIENT_CONDITIONS) for c in what.conditions)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    path: Path
    settings: tuple[tuple[str, Any], ...] = ()
    steps: tuple[Step, ...] = ()
    autostart: bool = True
    needs: frozenset[str] = field(default_factory=frozenset)  # e.g. {"clients", "standby"}

    @property
    def needs_clients(self) -> bool:
        return "clients" in self.needs or any(step.needs_clients for step in self.steps)
