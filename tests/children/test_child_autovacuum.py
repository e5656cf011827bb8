"""The autovacuum launcher and worker, and the logical replication launcher, for real."""

from __future__ import annotations

import os
import signal

from childtest import LOGICAL_LAUNCHER, Postmaster, config, title_of, wait_for

from pgtop.core.vocabulary import ChildKind, ExitStatus, PMSignalReason
from pgtop.storage.database import Database


def test_launcher_asks_for_a_worker_every_naptime(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.AUTOVAC_LAUNCHER, config(autovacuum_naptime=1, log_min_messages="debug1"))
    postmaster.log.wait_for(r"DEBUG:  autovacuum launcher started$")
    postmaster.wait_pmsignal(PMSignalReason.START_AUTOVAC_WORKER)
    assert postmaster.segment.avworker_database() == "postgres"
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    postmaster.log.wait_for(r"DEBUG:  autovacuum launcher shutting down$")


def test_launcher_asks_again_when_the_postmaster_could_not_fork_the_worker(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.AUTOVAC_LAUNCHER, config(autovacuum_naptime=60))
    postmaster.wait_started(pid, "pgtop: autovacuum launcher")
    postmaster.segment.set_avworker_failed()  # what the postmaster does, then SIGUSR2
    os.kill(pid, signal.SIGUSR2)
    postmaster.wait_pmsignal(PMSignalReason.START_AUTOVAC_WORKER)
    assert not postmaster.segment.take_avworker_failed()


def test_launcher_started_with_autovacuum_off_asks_for_one_worker_and_leaves(postmaster: Postmaster) -> None:
    """START_AUTOVAC_LAUNCHER near xid wraparound: the emergency mode."""
    pid = postmaster.spawn(ChildKind.AUTOVAC_LAUNCHER, config(autovacuum=False))
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    postmaster.wait_pmsignal(PMSignalReason.START_AUTOVAC_WORKER)


def test_worker_processes_the_database_it_was_given_and_exits_0(postmaster: Postmaster) -> None:
    with Database(postmaster.datadir) as database:
        database.create_table("t", [("a", "int")])
        database.insert("t", [(1,), (2,)])
    postmaster.segment.set_avworker_database("postgres")
    slot = postmaster.segment.assign_slot()
    pid = postmaster.spawn(ChildKind.AUTOVAC_WORKER, config(log_min_messages="debug2"), slot=slot)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    postmaster.log.wait_for(r'DEBUG:  autovacuum: processing database "postgres"$')
    postmaster.log.wait_for(r'DEBUG:  "t": found 0 removable, 2 nonremovable row versions$')
    assert postmaster.counters().autovacuum_runs == 1
    assert postmaster.segment.release_slot(slot)  # it cleaned up after itself


def test_sigterm_makes_a_busy_worker_exit_with_fatal(postmaster: Postmaster) -> None:
    with Database(postmaster.datadir) as database:  # enough rows to keep it busy a while
        database.create_table("big", [("a", "int"), ("b", "text")])
        database.insert("big", [(i, "x" * 20) for i in range(60000)])
    slot = postmaster.segment.assign_slot()
    pid = postmaster.spawn(ChildKind.AUTOVAC_WORKER, config(), slot=slot)
    wait_for(lambda: title_of(pid) == "pgtop: autovacuum worker postgres", "the worker at work")
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(r"FATAL:  terminating autovacuum process due to administrator command$")
    assert postmaster.counters().autovacuum_runs == 0


def test_logical_replication_launcher_exits_1_on_sigterm_so_it_is_restarted(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.BGWORKER, config(log_min_messages="debug1"), bgworker=LOGICAL_LAUNCHER)
    postmaster.log.wait_for(r"DEBUG:  logical replication launcher started$")
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    line = postmaster.log.wait_for(r"DEBUG:  logical replication launcher shutting down$")
    assert f"[{pid}]" in line
    assert not any("FATAL" in line for line in postmaster.log.drain())
