"""Shared fixtures: real pgtop clusters on temporary data directories."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.cluster import Cluster  # noqa: E402


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Any]:
    """Build real clusters on temporary data directories; each is closed and checked for
    leftovers (processes, socket files) at the end of the test."""
    made: list[Cluster] = []

    def make(**settings: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"data{len(made)}", **settings)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
