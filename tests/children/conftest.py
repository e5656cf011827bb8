"""Fixtures for the child programs' tests: a data directory made by pgtop.storage's initdb and
a miniature postmaster (childtest.Postmaster) around it, cleaned up after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from childtest import Postmaster

from pgtop.storage.initdb import create_cluster_storage


@pytest.fixture
def datadir(tmp_path: Path) -> str:
    """A data directory as `pgtop init` leaves it: pg_control "shut down"."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    create_cluster_storage(str(path))
    return str(path)


@pytest.fixture
def postmaster(datadir: str) -> Iterator[Postmaster]:
    pm = Postmaster(datadir)
    try:
        yield pm
    finally:
        pm.close()
