"""The chaos soak, short and bounded: signals, crashes, reloads and shutdowns under INSERT load,
then every committed row is there and nothing is left behind (bench/soak.py does the work)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for bench/

from bench.soak import SoakOptions, run_soak

EVERY_CHECK = {
    "cluster ready again after the chaos",
    "every committed row present, nothing else",
    "client threads all finished",
    "no zombie child while running",
    "no process of any postmaster left",
    "no pgtop /dev/shm entry",
    "no stale socket, lock or pid file after the final fast shutdown",
    "final fast shutdown exit code 0",
    "postmaster fd count and RSS flat",
    "one shared-memory segment at every quiet point",
}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_short_soak_loses_no_committed_row_and_leaves_nothing_behind() -> None:
    result = run_soak(SoakOptions(minutes=0.75, seed=8, clients=3, echo=lambda line: None))
    report = result.render()
    assert EVERY_CHECK <= result.checks.keys(), report
    assert result.problems == [], report
    assert result.committed > 0, report
    assert result.log_counts["crash cycles (all server processes terminated; reinitializing)"] > 0, report
    assert sum(count for action, count in result.actions.items() if action.startswith("postmaster ")) > 0, report
    assert sum(count for action, count in result.actions.items() if action.startswith("child ")) > 0, report
