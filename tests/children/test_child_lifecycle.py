"""Every long-running child kind, for real: its title, the signals it takes and ignores, how it
stops, what SIGQUIT does, and that it exits promptly when the postmaster dies."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from childtest import LOGICAL_LAUNCHER, Postmaster, config, signal_mask, wait_for

from pgtop.core.vocabulary import ChildKind, ExitStatus

PROMPTLY = 0.5  # seconds: the brief asks for ~100 ms; CI machines get some slack


@dataclass(frozen=True)
class Kind:
    """How one child kind behaves, as PostgreSQL 14's does."""

    kind: ChildKind
    title: str
    stop: signal.Signals  # what ends it normally
    stop_code: int
    quit_code: int = 2  # SIGQUIT: quickdie / SignalHandlerForCrashExit
    death_code: int = 1  # postmaster death
    ignores: tuple[signal.Signals, ...] = ()  # SIG_IGN, as pqsignal(..., SIG_IGN)
    settings: dict = field(default_factory=dict)
    bgworker: str | None = None
    standby: bool = False

    @property
    def id(self) -> str:
        return (self.bgworker or self.kind.name.lower()).replace(" ", "_")


KINDS = [
    Kind(ChildKind.CHECKPOINTER, "pgtop: checkpointer", signal.SIGUSR2, 0,
         ignores=(signal.SIGTERM, signal.SIGUSR1)),
    Kind(ChildKind.BGWRITER, "pgtop: background writer", signal.SIGTERM, 0,
         ignores=(signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)),
    Kind(ChildKind.WALWRITER, "pgtop: walwriter", signal.SIGTERM, 0, ignores=(signal.SIGUSR1, signal.SIGUSR2)),
    Kind(ChildKind.AUTOVAC_LAUNCHER, "pgtop: autovacuum launcher", signal.SIGTERM, 0,
         ignores=(signal.SIGINT, signal.SIGUSR1)),
    Kind(ChildKind.ARCHIVER, "pgtop: archiver", signal.SIGUSR2, 0, death_code=0,
         ignores=(signal.SIGINT, signal.SIGUSR1),
         settings={"archive_mode": "on", "archive_command": "true"}),
    Kind(ChildKind.STATS, "pgtop: stats collector", signal.SIGQUIT, 0, quit_code=0, death_code=0,
         ignores=(signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)),
    Kind(ChildKind.BGWORKER, f"pgtop: {LOGICAL_LAUNCHER}", signal.SIGTERM, 1, bgworker=LOGICAL_LAUNCHER,
         ignores=(signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)),
    # SIGUSR1 is the startup process's latch (StartupProcSigUsr1Handler): the walreceiver
    # wakes a wait for WAL with it, so it is taken, not ignored.
    Kind(ChildKind.STARTUP, "pgtop: startup", signal.SIGTERM, 1, standby=True,
         ignores=(signal.SIGINT,)),
]
IDS = [kind.id for kind in KINDS]


def start(postmaster: Postmaster, kind: Kind) -> int:
    if kind.standby:  # a standby's startup process keeps running, waiting for WAL
        Path(postmaster.datadir, "standby.signal").write_text("")
    pid = postmaster.spawn(kind.kind, config(**kind.settings), bgworker=kind.bgworker)
    # A standby's startup process logs its way to a consistent state, then waits for WAL:
    # its lines are all out once its title says so.
    postmaster.wait_started(pid, f"{kind.title} waiting for" if kind.standby else kind.title)
    return pid


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_child_ignores_what_postgresql_ignores_and_stops_as_it_does(postmaster: Postmaster, kind: Kind) -> None:
    pid = start(postmaster, kind)
    # Each signal stays blocked until the child has set its disposition (as BlockSig does),
    # so a stray one sent now would wait; the checks come once the ignores are in place.
    wait_for(lambda: set(kind.ignores) <= signal_mask(pid, "SigIgn"), f"PID {pid} to ignore {kind.ignores}")
    for signum in (signal.SIGHUP, *kind.ignores):  # a reload, and stray signals: all harmless
        os.kill(pid, signum)
    os.kill(pid, kind.stop)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(kind.stop_code)


def test_walwriter_also_stops_on_sigint(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.WALWRITER)
    postmaster.wait_started(pid, "pgtop: walwriter")
    os.kill(pid, signal.SIGINT)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_sigquit_ends_the_child_at_once_without_a_word(postmaster: Postmaster, kind: Kind) -> None:
    pid = start(postmaster, kind)
    before = len(postmaster.log.drain())
    os.kill(pid, signal.SIGQUIT)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(kind.quit_code)
    assert postmaster.log.drain()[before:] == []


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_child_exits_promptly_when_the_postmaster_dies(postmaster: Postmaster, kind: Kind) -> None:
    pid = start(postmaster, kind)
    started = time.monotonic()
    postmaster.die()
    assert postmaster.wait_exit(pid) == ExitStatus.exited(kind.death_code)
    assert time.monotonic() - started < PROMPTLY
