"""The pgbench lines (`pgbench -C` and persistent, SELECT 1): bench/connections.py (which
another part of the bench owns) runs them against this run's servers; this only turns its
results into report figures."""

from __future__ import annotations

from bench.report import Figure, Goal
from bench.servers import Server

CLIENTS = 8  # issue 4: pgbench -n -C -c 8 -T 10 -f select1.sql


def figures(pgtop: Server, postgres: Server, quick: bool) -> list[Figure]:
    try:
        from bench import connections
    except ImportError:
        missing = "bench/connections.py is not there: not measured"
        return [Figure("pgbench (-C and persistent, SELECT 1)", "tps", notes=[missing], higher_is_better=True)]
    seconds, rounds = (2, 2) if quick else (10, 3)  # pgbench -T takes whole seconds
    lines = connections.compare(pgtop, postgres, clients=CLIENTS, seconds=seconds, rounds=rounds, progress=False)  # type: ignore[arg-type]
    return [
        Figure(
            f"{line.load.name}, SELECT 1, -c {CLIENTS} -T {seconds:g}", "tps", line.pgtop, line.postgres,
            Goal(f"tps ≥ {line.load.goal:.0%} of PostgreSQL's", "ratio", at_least=line.load.goal),
            notes=[f"{rounds} runs per server, alternating; measured by bench/connections.py"],
            higher_is_better=True,
        )
        for line in lines
    ]
