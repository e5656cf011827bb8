"""A ThreadedServer per test; it must survive the test and leave no thread behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import ThreadedServer


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer() as running:
        yield running
        assert running.alive, "the server's accept loop died"
