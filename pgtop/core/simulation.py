"""A deterministic stand-in for the operating system around the postmaster model.

`SimulatedCluster` executes the model's actions without processes: spawns get made-up PIDs,
signals are delivered to simulated children that react the way PostgreSQL's children do
(spec §4.4 and §8: a SIGQUIT'd backend exits 2, the checkpointer writes the shutdown
checkpoint on SIGUSR2 and exits 0, the archiver ignores SIGTERM, the logger ignores
everything...). Tests script faults on top (kill -9 a child, stop one with SIGSTOP) and read
the log and the states. The dashboard's offline demo uses it too. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .actions import Action, Exit, Log, ReadConfigFile, SignalChild, Spawn
from .config import Config
from .events import (
    ChildExit,
    ChildrenExited,
    ChildStarted,
    ConfigFileRead,
    ConnectionAccepted,
    Event,
    ForkFailed,
    PMSignalRaised,
    PostmasterStarted,
    SignalReceived,
    Tick,
)
from .serverloop import next_deadline
from .state import Child, State, initial_state
from .step import step
from .vocabulary import ChildKind, ExitStatus, PMSignalReason, PMState, Sig

PM_STATE_CHANGE = "updating PMState from "
FATAL_SIGNALS = frozenset({Sig.KILL, Sig.SEGV, Sig.ABRT, Sig.BUS, Sig.ILL, Sig.FPE})


@dataclass
class SimChild:
    """A simulated process: what it does with the next signal it gets."""

    pid: int
    child_id: int
    kind: ChildKind
    dead_end: bool = False
    bgworker: str | None = None
    stopped: bool = False
    pending: list[Sig] = field(default_factory=list)
    held: list[Sig] = field(default_factory=list)


@dataclass(frozen=True)
class LogLine:
    """A postmaster log line with the pmState it was written in."""

    pm_state: PMState
    level: str
    message: str
    detail: str | None = None
    hint: str | None = None


class SimulatedCluster:
    """Runs the model against simulated children. Time only moves when told to."""

    def __init__(self, config: Config | None = None, now: float = 1_000_000.0, first_pid: int = 1000) -> None:
        self.config = config or Config()
        self.now = now
        self.state: State = initial_state(self.config, now)
        self.next_pid = first_pid
        self.procs: dict[int, SimChild] = {}  # by child id
        self.log: list[LogLine] = []
        self.actions: list[Action] = []
        self.signals: list[tuple[int, ChildKind, Sig]] = []
        self.fail_forks: set[ChildKind] = set()
        self.config_file: dict[str, tuple[object, int]] = {}
        self.config_error: str | None = None
        self.exit_code: int | None = None
        self.next_connection = 1
        self._log_state = self.state.pm_state

    # -- driving the model -----------------------------------------------------------

    def feed(self, event: Event) -> list[Action]:
        # Log lines are stamped with the pmState they were written in: the state before the
        # step, followed through the "updating PMState" lines of the one funnel.
        self._log_state = self.state.pm_state
        self.state, actions = step(self.state, event, self.now)
        self.actions.extend(actions)
        followups: list[Event] = []
        for action in actions:
            followups.extend(self._execute(action))
        for followup in followups:
            self.feed(followup)
        return actions

    def _execute(self, action: Action) -> Iterable[Event]:
        if isinstance(action, Log):
            self.log.append(LogLine(self._log_state, action.level.name, action.message, action.detail, action.hint))
            if action.message.startswith(PM_STATE_CHANGE):
                self._log_state = PMState[action.message.rsplit(" PM_", 1)[1]]
        elif isinstance(action, Spawn):
            if action.kind in self.fail_forks:
                return [ForkFailed(action.child_id, "Resource temporarily unavailable")]
            pid = self.next_pid
            self.next_pid += 1
            self.procs[action.child_id] = SimChild(pid, action.child_id, action.kind, action.dead_end, action.bgworker)
            return [ChildStarted(action.child_id, pid)]
        elif isinstance(action, SignalChild):
            proc = self.procs.get(action.child_id)
            if proc is not None:
                self.signals.append((proc.pid, proc.kind, action.signal))
                proc.pending.append(action.signal)
        elif isinstance(action, ReadConfigFile):
            return [ConfigFileRead("pgtop.yaml", dict(self.config_file), self.config_error)]
        elif isinstance(action, Exit):
            self.exit_code = action.code
        return []

    def boot(self) -> SimulatedCluster:
        self.feed(PostmasterStarted())
        return self

    def start_and_run(self) -> SimulatedCluster:
        """Boot and let the startup process finish recovery: PM_RUN."""
        self.boot()
        self.finish_startup()
        return self

    # -- faults and requests -------------------------------------------------------------

    def child(self, kind: ChildKind, index: int = 0) -> Child:
        matches = [c for c in self.state.children.values() if c.kind is kind and not c.dead_end]
        return sorted(matches, key=lambda c: c.id)[index]

    def pid(self, kind: ChildKind, index: int = 0) -> int:
        pid = self.child(kind, index).pid
        assert pid is not None
        return pid

    def pids(self) -> dict[str, int | None]:
        return {c.lineage_key: c.pid for c in self.state.children.values()}

    def exit(self, pid: int, code: int | None = None, signal: int | None = None, **extra: object) -> None:
        """A child exits on its own (or is killed from outside: pass `signal`)."""
        proc = next(p for p in self.procs.values() if p.pid == pid)
        del self.procs[proc.child_id]
        status = ExitStatus(code=code, signal=signal)
        self.feed(ChildrenExited((ChildExit(proc.child_id, pid, status, **extra),)))  # type: ignore[arg-type]

    def kill(self, kind: ChildKind, sig: Sig = Sig.KILL, index: int = 0) -> int:
        """`kill -SIG` of a child from another terminal; returns the PID hit."""
        pid = self.pid(kind, index)
        proc = next(p for p in self.procs.values() if p.pid == pid)
        proc.pending.append(sig)
        self.settle()
        return pid

    def stop(self, kind: ChildKind) -> int:
        """SIGSTOP a child: it will not react to anything but SIGKILL and SIGCONT."""
        pid = self.pid(kind)
        next(p for p in self.procs.values() if p.pid == pid).stopped = True
        return pid

    def signal(self, sig: Sig) -> None:
        self.feed(SignalReceived(sig))
        self.settle()

    def pmsignal(self, *reasons: PMSignalReason, **extra: object) -> None:
        self.feed(PMSignalRaised(frozenset(reasons), **extra))  # type: ignore[arg-type]
        self.settle()

    def connect(self, remote: str = "127.0.0.1") -> Child:
        """A client connects; returns its (possibly dead_end) child."""
        connection = self.next_connection
        self.next_connection += 1
        self.feed(ConnectionAccepted(connection, cancel_key=connection * 7919, remote=remote))
        return max(self.state.children.values(), key=lambda c: c.id)

    def finish_startup(self, code: int = 0) -> None:
        self.exit(self.pid(ChildKind.STARTUP), code=code)
        self.settle()

    def advance(self, seconds: float) -> None:
        """Let time pass, waking the loop at each deadline as ServerLoop would."""
        end = self.now + seconds
        while self.exit_code is None:
            deadline = next_deadline(self.state, self.now)
            if deadline > end:
                break
            self.now = max(deadline, self.now + 0.001) if deadline <= self.now else deadline
            self.feed(Tick())
            self.settle()
        self.now = end

    # -- the children's side ---------------------------------------------------------

    def settle(self) -> None:
        """Deliver pending signals until every simulated child has reacted."""
        for _ in range(10_000):
            reacted = False
            for proc in sorted(self.procs.values(), key=lambda p: p.pid):
                if proc.pending:
                    sig = proc.pending.pop(0)
                    status = self._react(proc, sig)
                    if status is not None:
                        reacted = True
                        del self.procs[proc.child_id]
                        self.feed(ChildrenExited((ChildExit(proc.child_id, proc.pid, status),)))
                        break
            if not reacted and not any(p.pending for p in self.procs.values()):
                return
        raise RuntimeError("simulated children did not settle")

    def _react(self, proc: SimChild, sig: Sig) -> ExitStatus | None:
        """How each kind answers each signal (spec §4.4, §8)."""
        if sig in FATAL_SIGNALS:
            return ExitStatus.killed(int(sig))  # no child handles these
        if sig == Sig.STOP:
            proc.stopped = True
            return None
        if sig == Sig.CONT:
            proc.stopped = False
            proc.pending.extend(proc.held)  # delivered now
            proc.held.clear()
            return None
        if proc.stopped:
            proc.held.append(sig)  # a stopped process reacts to nothing but KILL and CONT
            return None
        kind = proc.kind
        if kind is ChildKind.SYSLOGGER:
            return None  # ignores SIGQUIT, SIGTERM and SIGINT
        if sig == Sig.QUIT:
            if kind is ChildKind.STATS:
                return ExitStatus.exited(0)  # writes its file and exits
            return ExitStatus.exited(2)  # quickdie
        if sig == Sig.TERM:
            return _on_sigterm(proc)
        if sig == Sig.USR2:
            if kind in (ChildKind.CHECKPOINTER, ChildKind.ARCHIVER, ChildKind.WALSENDER):
                return ExitStatus.exited(0)  # shutdown checkpoint / last cycle done
            if kind is ChildKind.STARTUP:
                return ExitStatus.exited(0)  # promoted: recovery ends
            return None
        return None  # SIGHUP, SIGUSR1, SIGINT: handled in place


def _on_sigterm(proc: SimChild) -> ExitStatus | None:
    kind = proc.kind
    if kind in (ChildKind.CHECKPOINTER, ChildKind.ARCHIVER, ChildKind.STATS):
        return None  # the checkpointer waits for SIGUSR2; the archiver ignores SIGTERM
    if kind in (ChildKind.BACKEND, ChildKind.STARTUP, ChildKind.WALRECEIVER, ChildKind.BGWORKER):
        return ExitStatus.exited(1)  # FATAL: terminating ... due to administrator command
    if kind is ChildKind.WALSENDER:
        return None  # spared until the shutdown checkpoint is written
    return ExitStatus.exited(0)  # bgwriter, walwriter, autovacuum: clean exit


def messages(lines: Iterable[LogLine], *, min_level: str = "LOG") -> list[str]:
    """The messages of lines at LOG level (the server log's default), in order."""
    skip = {"DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5"} if min_level == "LOG" else set()
    return [line.message for line in lines if line.level not in skip]
