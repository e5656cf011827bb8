"""A running cluster shared by the tests of one module that leave it as they found it, and
the pgbench script the speed goals use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One `pgtop run` for the whole module; it must still be in PM_RUN at the end, and it
    leaves nothing behind."""
    running = Cluster(tmp_path_factory.mktemp("clients") / "data").start()
    try:
        yield running
        assert running.status()["pm_state"] == "PM_RUN"
    finally:
        running.close()


@pytest.fixture
def select1(tmp_path: Path) -> Path:
    script = tmp_path / "select1.sql"
    script.write_text("select 1;\n")
    return script
