"""The benchmark run: every figure, pgtop and PostgreSQL 15 side by side on this machine.

Trials alternate between the two servers (one pgtop trial, one PostgreSQL trial, ...) so a
burst of load from something else on the machine hits both alike.
"""

from __future__ import annotations

import os
import statistics
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from bench import pgbench_lines
from bench.dashboard import Dashboard
from bench.idle import idle_cpu
from bench.many import ManyBackends
from bench.proctable import children_of
from bench.report import Figure, Goal, render
from bench.respawn import CrashTimes, clean_exit_respawn
from bench.servers import PgtopServer, PostgresServer, Server
from bench.supervisord import SupervisorUnavailable, supervisord_respawns

MAX_CONNECTIONS = 510  # 500 sessions plus room for the superuser reserve


@dataclass(frozen=True)
class Plan:
    """How many trials of each kind; --quick keeps the whole run under 3 minutes."""

    respawns: int
    crashes: int
    supervisord: int
    idle_seconds: float
    idle_slices: int
    keys: int
    many_trials: int
    many_connections: int
    quick: bool

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        if quick:
            return cls(10, 5, 5, 10.0, 5, 5, 1, 500, True)
        return cls(40, 15, 15, 60.0, 12, 15, 3, 500, False)


class Run:
    """One benchmark run; figures are printed as they are measured."""

    def __init__(self, plan: Plan, *, install: bool = True, dashboard: bool = True, echo: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.install = install
        self.with_dashboard = dashboard
        self.echo = echo
        self.figures: list[Figure] = []

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        self.echo(render(figure) + "\n")

    def section(self, name: str, measure: Callable[[], None]) -> None:
        """Run one part; a failure becomes a note and the run goes on."""
        self.echo(f"-- {name} ...")
        began = time.perf_counter()
        try:
            measure()
        except Exception as error:  # noqa: BLE001 - one broken part must not lose the others
            self.echo(f"   {name} failed: {error!r}\n{traceback.format_exc(limit=3)}")
            self.add(Figure(name, "-", notes=[f"failed: {error!r}"]))
        self.echo(f"   ({time.perf_counter() - began:.1f} s)")

    def execute(self) -> list[Figure]:
        self.echo(machine_line())
        with ExitStack() as stack:
            dashboard = stack.enter_context(Dashboard()) if self.with_dashboard else None
            pgtop = stack.enter_context(PgtopServer(max_connections=MAX_CONNECTIONS)).start()
            postgres = stack.enter_context(PostgresServer(max_connections=MAX_CONNECTIONS)).start()
            self.section("idle CPU", lambda: self.idle(pgtop, postgres, dashboard))
            self.section("clean-exit respawn", lambda: self.respawn(pgtop, postgres))
            self.section("crash cycle", lambda: self.crash(pgtop, postgres))
            if dashboard is not None:
                self.section("key press to new PID on screen", lambda: self.keys(dashboard))
                dashboard.close()  # done with it: leave the machine to the 500 backends
            self.section("pgbench", lambda: self.pgbench(pgtop, postgres))
            self.section("500 backends", lambda: self.many(pgtop, postgres))
        if dashboard is not None and dashboard.leftover_note:
            self.echo(f"note: {dashboard.leftover_note}")
        self.echo(machine_line())
        return self.figures

    # -- the parts -------------------------------------------------------------------------

    def idle(self, pgtop: Server, postgres: Server, dashboard: Dashboard | None) -> None:
        time.sleep(2.0)  # let start-up work (first autovacuum round, stats) pass
        groups = {
            "pgtop postmaster": lambda: [pgtop.postmaster_pid],
            "pgtop children": lambda: children_of(pgtop.postmaster_pid),
            "postgres postmaster": lambda: [postgres.postmaster_pid],
            "postgres children": lambda: children_of(postgres.postmaster_pid),
        }
        if dashboard is not None:
            groups["dashboard"] = dashboard.pids
            groups["dashboard children"] = dashboard.children
        fine, coarse = idle_cpu(groups, self.plan.idle_seconds, self.plan.idle_slices)
        window = f"{self.plan.idle_seconds:.0f} s in {self.plan.idle_slices} slices"
        self.add(Figure(
            "idle CPU of `pgtop run`, postmaster process (all its threads)", "%",
            fine["pgtop postmaster"], fine["postgres postmaster"],
            Goal("median ≤ 0.1% of a core", "median", at_most=0.1),
            notes=[window, _coarse_note(coarse, "pgtop postmaster", "postgres postmaster")],
        ))
        self.add(Figure(
            "idle CPU of `pgtop run`, children (fork server and auxiliary processes)", "%",
            fine["pgtop children"], fine["postgres children"],
            notes=[window, _coarse_note(coarse, "pgtop children", "postgres children")],
        ))
        if dashboard is not None:
            self.add(Figure(
                "idle CPU of the dashboard `pgtop -D DIR` in tmux (its process, supervisor thread included)", "%",
                fine["dashboard"], None, Goal("median ≤ 1% of a core", "median", at_most=1.0),
                notes=[window, f"its children (fork server, auxiliary processes): median {statistics.median(fine['dashboard children']):.3f}%",
                       f"psutil cpu_times over the window: {coarse['dashboard']:.3f}%"],
            ))

    def respawn(self, pgtop: Server, postgres: Server) -> None:
        mine, theirs, mine_dead, theirs_dead = [], [], [], []
        for _ in range(self.plan.respawns):
            for server, total, dead in ((pgtop, mine, mine_dead), (postgres, theirs, theirs_dead)):
                elapsed, died = clean_exit_respawn(server)
                total.append(elapsed)
                dead.append(died)
        peers: dict[str, list[float]] = {}
        notes = [
            "kill -TERM of the walwriter → a new walwriter titled in the process table (polled every 0.2 ms)",
            (f"of which kill → the old walwriter dead (its own exit): pgtop median {statistics.median(mine_dead):.2f} ms, "
             f"PostgreSQL {statistics.median(theirs_dead):.2f} ms"),
        ]
        try:
            peers["supervisord"] = supervisord_respawns(self.plan.supervisord, self.install)
            notes.append("supervisord: kill -TERM of a `sleep` program (autorestart=true, startsecs=0) → its new PID")
        except SupervisorUnavailable as error:
            notes.append(f"supervisord skipped: {error}")
        self.add(Figure("clean-exit respawn", "ms", mine, theirs, Goal("median ≤ PostgreSQL's", "ratio", at_most=1.0), peers, notes))

    def crash(self, pgtop: Server, postgres: Server) -> None:
        mine, theirs = CrashTimes(), CrashTimes()
        CrashTimes().add(pgtop)  # a warm-up each: PostgreSQL's first crash recovery also
        CrashTimes().add(postgres)  # fsyncs the data directory that initdb --no-sync left
        for _ in range(self.plan.crashes):
            mine.add(pgtop)
            theirs.add(postgres)
        notes = []
        if mine.syncing and theirs.syncing:
            notes.append(
                "of which between \"was interrupted\" and \"automatic recovery in progress\" (PostgreSQL fsyncs the "
                f"whole data directory there): pgtop median {statistics.median(mine.syncing):.1f} ms, "
                f"PostgreSQL {statistics.median(theirs.syncing):.1f} ms"
            )
        self.add(Figure(
            "crash cycle (kill -9 walwriter → ready, every child back)", "ms", mine.cycle, theirs.cycle,
            Goal("median ≤ PostgreSQL's", "ratio", at_most=1.0), notes=notes,
        ))
        self.add(Figure(
            "death → noticed (pidfd wake of the bench → postmaster's log line read)", "ms", mine.noticed, theirs.noticed,
            Goal("median ≤ 1 ms", "median", at_most=1.0),
            notes=["upper bound: includes the pipe write and the bench's reader-thread wakeup; can be < 0 when the bench wakes late"],
        ))
        self.add(Figure(
            "kill → noticed by the line's %m timestamp (cross-check)", "ms", mine.stamped, theirs.stamped,
            notes=["%m has millisecond resolution and truncates; the kill is stamped with time.time() just before os.kill"],
        ))

    def keys(self, dashboard: Dashboard) -> None:
        totals, tables = [], []
        for _ in range(self.plan.keys):
            total, table = dashboard.key_to_screen()
            totals.append(total)
            if table is not None:
                tables.append(table)
        notes = ["SIGTERM key on the walwriter row, timed from the confirming 'y'; tmux capture-pane polled (a few ms each)"]
        if tables:
            notes.append(f"of which key → new walwriter in the process table: median {statistics.median(tables):.1f} ms")
        self.add(Figure("key press → new PID on screen (dashboard in tmux)", "ms", totals, None,
                        Goal("median ≤ 100 ms", "median", at_most=100.0), notes=notes))

    def many(self, pgtop: Server, postgres: Server) -> None:
        mine, theirs = ManyBackends(), ManyBackends()
        count = self.plan.many_connections
        for _ in range(self.plan.many_trials):
            mine.add(pgtop, count)
            theirs.add(postgres, count)
        opened = f"opening {count} sessions took {statistics.median(mine.open_seconds):.1f} s (pgtop) and {statistics.median(theirs.open_seconds):.1f} s (PostgreSQL)"
        self.add(Figure(f"crash cycle with {count} backends (kill -9 one → ready, auxiliary children back)", "ms",
                        mine.cycle, theirs.cycle, Goal("median ≤ 2 s", "median", at_most=2000.0), notes=[opened]))
        self.add(Figure("USS per idle backend", "MiB", mine.uss, theirs.uss, Goal("≤ 2× PostgreSQL's", "ratio", at_most=2.0),
                        notes=["psutil memory_full_info().uss of every backend of every trial"]))

    def pgbench(self, pgtop: Server, postgres: Server) -> None:
        for figure in pgbench_lines.figures(pgtop, postgres, self.plan.quick):
            self.add(figure)


def _coarse_note(coarse: dict[str, float], mine: str, theirs: str) -> str:
    return f"psutil cpu_times over the window: pgtop {coarse[mine]:.3f}%, PostgreSQL {coarse[theirs]:.3f}%"


def machine_line() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    warning = "   (busy machine: figures are noisy)" if os.getloadavg()[0] > (os.cpu_count() or 1) * 0.5 else ""
    return f"machine: {os.cpu_count()} CPUs, load average {load}{warning}"
