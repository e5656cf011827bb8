"""Fixtures for the storage tests: a fresh cluster, a started one, worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from storage_helpers import Worker, recover

from pgtop.storage.initdb import create_cluster_storage


@pytest.fixture
def datadir(tmp_path) -> str:
    """A cluster just made by initdb: pg_control says "shut down"."""
    path = str(tmp_path / "data")
    os.mkdir(path)
    create_cluster_storage(path)
    return path


@pytest.fixture
def running(datadir: str) -> str:
    """A cluster whose startup process has finished: pg_control says "in production"."""
    recover(datadir)
    return datadir


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    """Start workers; every one still alive at the end of the test is killed and reaped."""
    workers: list[Worker] = []

    def start(*args: str) -> Worker:
        worker = Worker(list(args))
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait(timeout=10)
        for stream in (worker.process.stdin, worker.process.stdout, worker.process.stderr):
            if stream is not None:
                stream.close()
