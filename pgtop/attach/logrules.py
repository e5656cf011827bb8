"""The server log lines that say what the postmaster did (spec §7), as facts.

Each message the postmaster writes at a transition (and LogChildExit's report of a child's
death) becomes one `LogFact`; every other line is just shown. Messages are PostgreSQL's own
texts, unchanged from 13 to 17, without translation (lc_messages must be English for the
inference to work; other languages are shown but say nothing to the model).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from pgtop.core.vocabulary import EXIT_NAME, ChildKind, ExitStatus, LogLevel, Shutdown


class Fact(enum.Enum):
    STARTING = "starting PostgreSQL"
    READY = "database system is ready to accept connections"
    READY_READ_ONLY = "database system is ready to accept read-only connections"
    SHUTDOWN_REQUEST = "received * shutdown request"
    TERMINATING_OTHERS = "terminating any other active server processes"
    SIGKILL_ISSUED = "issuing SIGKILL to recalcitrant children"
    REINITIALIZING = "all server processes terminated; reinitializing"
    REDO_STARTS = "redo starts at"
    CHECKPOINTER_SHUTTING_DOWN = "shutting down"
    SHUT_DOWN = "database system is shut down"
    ABNORMAL_END = "abnormal database system shutdown (or a startup failure, or restart_after_crash off)"
    RELOAD = "received SIGHUP, reloading configuration files"
    RECOVERY_TARGET = "shutdown at recovery target"
    CHILD_EXIT = "LogChildExit"
    FATAL = "a process's FATAL error: it exits with code 1"


@dataclass(frozen=True, slots=True)
class LogFact:
    """What one log line tells: the fact, and its details when it has some."""

    fact: Fact
    shutdown: Shutdown | None = None  # SHUTDOWN_REQUEST: the level asked for
    pid: int | None = None  # CHILD_EXIT: the child; FATAL: the process that wrote it
    name: str | None = None  # CHILD_EXIT: LogChildExit's name ("checkpointer process")
    status: ExitStatus | None = None
    bgworker: str | None = None
    version: str | None = None  # STARTING: "15.18"


EXACT: dict[str, Fact] = {
    "database system is ready to accept connections": Fact.READY,
    "database system is ready to accept read-only connections": Fact.READY_READ_ONLY,
    "terminating any other active server processes": Fact.TERMINATING_OTHERS,
    "issuing SIGKILL to recalcitrant children": Fact.SIGKILL_ISSUED,
    "all server processes terminated; reinitializing": Fact.REINITIALIZING,
    "shutting down": Fact.CHECKPOINTER_SHUTTING_DOWN,
    "database system is shut down": Fact.SHUT_DOWN,
    "abnormal database system shutdown": Fact.ABNORMAL_END,
    "shutting down due to startup process failure": Fact.ABNORMAL_END,
    "aborting startup due to startup process failure": Fact.ABNORMAL_END,
    "shutting down because restart_after_crash is off": Fact.ABNORMAL_END,
    "received SIGHUP, reloading configuration files": Fact.RELOAD,
    "shutdown at recovery target": Fact.RECOVERY_TARGET,
}

SHUTDOWN_REQUEST = re.compile(r"^received (smart|fast|immediate) shutdown request$")
STARTING = re.compile(r"^starting PostgreSQL (\S+)")
# LogChildExit (spec §7): the name, the PID, then how it ended.
CHILD_EXIT = re.compile(
    r'^(?P<name>.+?) \(PID (?P<pid>\d+)\) (?:exited with exit code (?P<code>\d+)'
    r"|was terminated by signal (?P<signal>\d+)(?::.*)?"
    r"|was terminated by exception 0x[0-9A-F]+"
    r"|exited with unrecognized status (?P<raw>\d+))$"
)
BGWORKER_NAME = re.compile(r'^background worker "(?P<name>.*)"$')

# LogChildExit's names back to kinds; "server process" is any BackendList child.
NAME_KIND: dict[str, ChildKind] = {name: kind for kind, name in EXIT_NAME.items() if name != "server process"}


def classify(level: LogLevel, message: str, pid: int) -> LogFact | None:
    """The fact a log line states, or None for lines that change nothing."""
    fact = EXACT.get(message)
    if fact is not None:
        return LogFact(fact)
    if message.startswith("redo starts at "):
        return LogFact(Fact.REDO_STARTS)
    match = SHUTDOWN_REQUEST.match(message)
    if match is not None:
        return LogFact(Fact.SHUTDOWN_REQUEST, shutdown=Shutdown[match.group(1).upper()])
    match = STARTING.match(message)
    if match is not None:
        return LogFact(Fact.STARTING, version=match.group(1))
    if level == LogLevel.FATAL:
        return LogFact(Fact.FATAL, pid=pid, status=ExitStatus.exited(1))
    return _child_exit(message)


def _child_exit(message: str) -> LogFact | None:
    match = CHILD_EXIT.match(message)
    if match is None:
        return None
    if match.group("code") is not None:
        status = ExitStatus.exited(int(match.group("code")))
    elif match.group("signal") is not None:
        status = ExitStatus.killed(int(match.group("signal")))
    else:
        status = None  # Windows exceptions and raw statuses: the death is still a fact
    name = match.group("name")
    worker = BGWORKER_NAME.match(name)
    return LogFact(
        Fact.CHILD_EXIT,
        pid=int(match.group("pid")),
        name=name,
        status=status,
        bgworker=worker.group("name") if worker else None,
    )


def kind_of_exit(fact: LogFact) -> ChildKind:
    """The kind LogChildExit named (a "server process" is taken for a client backend)."""
    if fact.bgworker is not None:
        return ChildKind.BGWORKER
    return NAME_KIND.get(fact.name or "", ChildKind.BACKEND)
