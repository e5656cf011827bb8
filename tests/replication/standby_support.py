"""A pgtop standby made by `pgtop init --standby-of`'s base backup, and a client session."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
from support.cluster import Cluster

from pgtop.runtime.datadir import init_datadir

READ_ONLY_READY = "database system is ready to accept read-only connections"


class Standby(Cluster):
    """A pgtop cluster whose storage is a base backup of a running `primary` (over TCP),
    with primary_conninfo and standby.signal: `Cluster` in everything else."""

    def __init__(self, datadir: Path, primary: Cluster, **settings: Any) -> None:
        self.primary_conninfo = f"host=127.0.0.1 port={primary.port}"
        as_standby = functools.partial(init_datadir, standby_of=self.primary_conninfo)
        with mock.patch("support.cluster.init_datadir", as_standby):
            super().__init__(datadir, **settings)

    def start_standby(self) -> Standby:
        """Start and wait for hot standby: read-only connections accepted."""
        self.start(wait_ready=False)
        self.wait_for_log(READ_ONLY_READY)
        self.wait_for(lambda s: s["pm_state"] == "PM_HOT_STANDBY")
        return self


def connect(cluster: Cluster, **params: Any) -> psycopg.Connection:
    """A client session on `cluster` over its Unix socket."""
    return psycopg.connect(host=str(cluster.socket_dir), port=cluster.port, user="postgres",
                           dbname="postgres", connect_timeout=10, autocommit=True, **params)
