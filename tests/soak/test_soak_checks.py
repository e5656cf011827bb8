"""The soak's after-checks find what they look for: a grown postmaster, a surviving process,
a stale socket file, a missing committed row (so a passing soak means something)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for bench/

from bench.soak_checks import (
    ResourceSample,
    flatness,
    identify,
    segment_leaks,
    stale_files,
    survivors,
)
from bench.soak_load import Ledger, Load
from bench.soak_report import SoakResult

MIB = 2**20


def samples(fds: list[int], rss_mib: list[float], postmaster: int = 100) -> list[ResourceSample]:
    return [ResourceSample(10.0 * i, postmaster, fd, int(rss * MIB), 1) for i, (fd, rss) in enumerate(zip(fds, rss_mib))]


def test_flatness_passes_a_steady_postmaster_and_fails_a_growing_one() -> None:
    assert flatness(samples([15, 15, 15, 15], [41.0, 41.2, 41.1, 41.3]))[0]
    ok, detail = flatness(samples([15, 15, 16, 17], [41.0, 41.0, 41.0, 41.0]))
    assert not ok and "15 -> 16" in detail
    assert not flatness(samples([15, 15, 15, 15], [41.0, 41.0, 60.0, 61.0]))[0]


def test_a_dip_at_the_start_is_not_growth() -> None:
    """The soak's quiet sample at 20 s once caught the postmaster between two spare children."""
    assert flatness(samples([17, 16, 17, 17, 17], [42.1, 42.5, 42.8, 43.4, 43.5]))[0]
    assert not flatness(samples([17, 16, 18, 18, 18], [42.1, 42.5, 42.8, 43.4, 43.5]))[0]


def test_a_growing_fd_count_says_what_the_new_fds_are() -> None:
    kinds = [("pipe", "socket"), ("pipe", "socket"), ("pipe", "socket", "socket"), ("pipe", "socket", "socket")]
    grown = [ResourceSample(10.0 * i, 100, len(k), 41 * MIB, 1, k) for i, k in enumerate(kinds)]
    ok, detail = flatness(grown)
    assert not ok and "0 s 1 pipe, 1 socket" in detail and "30 s 1 pipe, 2 socket" in detail


def test_flatness_compares_the_longest_lived_postmaster_only() -> None:
    short = samples([40, 90], [10.0, 90.0], postmaster=1)
    long = [ResourceSample(100 + s.at, 2, s.fds, s.rss, 1) for s in samples([15, 15, 15], [41.0, 41.0, 41.0])]
    ok, detail = flatness(short[:1] + long)
    assert ok and detail.startswith("postmaster 2 ")


def test_a_second_shared_memory_segment_is_reported() -> None:
    leaked = [ResourceSample(5.0, 7, 15, 41 * MIB, 2)]
    assert segment_leaks(leaked) == ["postmaster 7 held 2 shared-memory segments at 5 s"]


def test_a_surviving_process_is_found_and_a_reused_pid_is_not() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        seen = identify([sleeper.pid])
        assert survivors(seen, timeout=0.1) == ([sleeper.pid], [])
        assert survivors({sleeper.pid: seen[sleeper.pid] - 100}, timeout=0.1) == ([], [])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert survivors(seen, timeout=0.1) == ([], [])


def test_stale_socket_and_pid_files_are_found(tmp_path: Path) -> None:
    assert stale_files(tmp_path, tmp_path) == []
    (tmp_path / ".s.PGSQL.5432").touch()
    (tmp_path / "postmaster.pid").touch()
    assert sorted(Path(p).name for p in stale_files(tmp_path, tmp_path)) == [".s.PGSQL.5432", "postmaster.pid"]


def test_a_committed_row_missing_from_the_table_is_a_problem(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    load = Load("/nowhere", 1, clients=2, seed=0)
    load.ledgers = [Ledger(0, 3, committed={0, 1}, uncertain={2}), Ledger(1, 1, committed={0})]
    table = [(0, 0), (0, 2), (1, 0), (1, 0), (5, 1)]  # (0, 1) lost; (1, 0) twice; worker 5 unknown

    class FakeConnection:
        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def execute(self, query: str):  # type: ignore[no-untyped-def]
            return self

        def fetchall(self) -> list[tuple[int, int]]:
            return table

    monkeypatch.setattr(load, "connect", FakeConnection)
    problems = load.verify()
    assert any("worker 0: 1 committed rows missing, e.g. [1]" in p for p in problems)
    assert any("more than once" in p for p in problems)
    assert any("unknown workers [5]" in p for p in problems)


def test_a_repeated_check_keeps_its_first_failure() -> None:
    result = SoakResult(seed=1)
    result.check("no orphan", True, "none", repeatable=True)
    result.check("no orphan", False, "[4242]", repeatable=True)
    result.check("no orphan", True, "none", repeatable=True)
    assert result.problems == ["no orphan: [4242]"]
    assert result.checks["no orphan"].times == 3
