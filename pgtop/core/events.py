"""Events: facts the runtime reports to the postmaster model, in the past tense.

The runtime turns each OS happening into one of these and feeds it to `pgtop.core.step`.
Children are named by the `child_id` the model gave them when it asked for the spawn; the
runtime keeps the mapping to real PIDs and processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from .vocabulary import ExitStatus, PMSignalReason, Sig


@dataclass(frozen=True, slots=True)
class PostmasterStarted:
    """PostmasterMain got past the configuration and the lock file: start everything.

    `version` is PG_VERSION_STR for the "starting %s" line.
    """

    version: str = "PostgreSQL 14.13 (pgtop) on x86_64-pc-linux-gnu, 64-bit"


@dataclass(frozen=True, slots=True)
class ChildStarted:
    """A Spawn succeeded: the child with this id now has a PID."""

    child_id: int
    pid: int


@dataclass(frozen=True, slots=True)
class ForkFailed:
    """A Spawn failed; `error` is the %m text."""

    child_id: int
    error: str


@dataclass(frozen=True, slots=True)
class ChildExit:
    """One reaped child. `child_id` is None for a PID the postmaster never started.

    `slot_released` is the dead-man switch: False if the child's PMChildFlags slot was still
    in use when it died (it never cleaned up shared memory). `query` is what it was running,
    for the crash DETAIL line.
    """

    child_id: int | None
    pid: int
    status: ExitStatus
    slot_released: bool = True
    query: str | None = None


@dataclass(frozen=True, slots=True)
class ChildrenExited:
    """reaper: every child found dead in one wakeup, handled together (spec §2.2)."""

    exits: tuple[ChildExit, ...]


@dataclass(frozen=True, slots=True)
class SignalReceived:
    """SIGHUP, SIGTERM, SIGINT or SIGQUIT reached the postmaster."""

    signal: Sig


@dataclass(frozen=True, slots=True)
class PMSignalRaised:
    """SIGUSR1: the pmsignal flags the runtime read and cleared in shared memory (spec §3.3).

    `promote_file` / `logrotate_file`: whether those files exist in the data directory.
    `walsenders`: ids of BackendList children whose slot now says WALSENDER.
    """

    reasons: frozenset[PMSignalReason] = frozenset()
    promote_file: bool = False
    logrotate_file: bool = False
    walsenders: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ConfigFileRead:
    """The runtime read the configuration file after a ReadConfigFile action.

    `values` maps parameter names (as written) to (raw value, line number); `error` is a
    parse failure message ('syntax error in file "%s" line %u, near ...'), in which case no
    change is applied. `time_zones` are the names in the system's time zone database, which
    the runtime reads for the timezone check hooks (UTC and GMT are always known).
    """

    path: str
    values: Mapping[str, tuple[Any, int]] = field(default_factory=dict)
    error: str | None = None
    time_zones: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ConnectionAccepted:
    """accept() returned a client socket; `cancel_key` is the random key drawn for it."""

    connection_id: int
    cancel_key: int
    remote: str = "[local]"


@dataclass(frozen=True, slots=True)
class Tick:
    """The ServerLoop wait timed out: time passed and the loop body runs."""


Event = Union[
    PostmasterStarted,
    ChildStarted,
    ForkFailed,
    ChildrenExited,
    SignalReceived,
    PMSignalRaised,
    ConfigFileRead,
    ConnectionAccepted,
    Tick,
]
