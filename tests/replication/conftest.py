"""Fixtures for real primary/standby pairs: a pgtop primary (make_cluster) and standbys made
from it with `pgtop init --standby-of`'s base backup; both are stopped and checked for
leftovers after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standby_support import Standby


@pytest.fixture
def make_standby(tmp_path: Path) -> Iterator[Any]:
    """Build standbys of a running primary: `make_standby(primary, **settings)`."""
    made: list[Standby] = []

    def make(primary: Any, **settings: Any) -> Standby:
        standby = Standby(tmp_path / f"standby{len(made)}", primary, **settings)
        made.append(standby)
        return standby

    yield make
    for standby in made:
        standby.close()
