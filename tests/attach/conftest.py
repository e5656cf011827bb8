"""Real PostgreSQL servers for the attach tests, run as `postgres` (as root) on ports of
their own in /tmp directories, stopped and deleted at the end even when a test fails."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from attach_helpers import same_process_alive, wait_until

from pgtop.attach.proctable import process_start_time
from pgtop.attach.spawn import SERVER_USER, ThrowawayCluster, missing_binaries

# Servers live in memory (tmpfs): copying and deleting a data directory takes a blink.
MEMORY = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None


@pytest.fixture(scope="session")
def template_data_dir() -> Iterator[Path]:
    """One initdb for the whole session; each server starts from a copy of it."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"PostgreSQL is not installed: {', '.join(missing)} not found on PATH or in /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root but there is no `{SERVER_USER}` user to run the server as")
    template = ThrowawayCluster(base=MEMORY)
    try:
        template.initdb()
        yield template.data_dir
    finally:
        template.close()


@pytest.fixture
def make_server(template_data_dir: Path) -> Iterator[Callable[..., ThrowawayCluster]]:
    """Start real servers (settings as `-c name=value`); afterwards their processes and
    their directories are gone."""
    made: list[ThrowawayCluster] = []
    postmasters: list[tuple[int, float]] = []
    segments: list[int] = []

    def make(**settings: str) -> ThrowawayCluster:
        # Unix socket only: the socket directory is the cluster's own, so no two servers
        # (of this run or of another) can ever want the same port.
        cluster = ThrowawayCluster(base=MEMORY, settings={"listen_addresses": "", **settings})
        made.append(cluster)
        cluster.initdb(template=template_data_dir)
        postmaster = cluster.start()
        postmasters.append((postmaster, process_start_time(postmaster)))
        segments.append(shared_memory_id(cluster))
        return cluster

    yield make
    for cluster in made:
        cluster.close()
        assert not cluster.root.exists(), f"{cluster.root} was left behind"
    for pid, started_at in postmasters:
        wait_until(lambda pid=pid, started_at=started_at: not same_process_alive(pid, started_at), f"the end of postmaster {pid}", timeout=5)
    left = set(segments) & system_v_segments()
    assert not left, f"shared memory segments left behind: {sorted(left)}"


def shared_memory_id(cluster: ThrowawayCluster) -> int:
    """The System V segment the server made (postmaster.pid line 7: key, id)."""
    return int((cluster.data_dir / "postmaster.pid").read_text().split("\n")[6].split()[1])


def system_v_segments() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


@pytest.fixture
def server(make_server: Callable[..., ThrowawayCluster]) -> ThrowawayCluster:
    """A running real server with the default settings, the log going to `pg_ctl -l`."""
    return make_server()
