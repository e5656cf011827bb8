"""Rows that clients committed survive a kill -9 crash cycle and an immediate shutdown (redo
replays them); rows they had not committed do not; a clean shutdown checkpoints them."""

from __future__ import annotations

import os
import re
import signal

import psycopg
from support.cluster import Cluster

from pgtop.storage.controlfile import read_control_file

from .helpers import connect


def write_rows(cluster: Cluster) -> psycopg.Connection:
    """Three committed rows, and a session left holding one uncommitted row."""
    with connect(cluster) as conn:
        conn.execute("create table accounts (id int, owner text)")
        conn.execute("insert into accounts values (1, 'ann')")
        with conn.transaction():
            conn.execute("insert into accounts values (2, 'bob')")
            conn.execute("insert into accounts values (3, 'cy')")
    pending = connect(cluster)
    pending.execute("begin")
    pending.execute("insert into accounts values (4, 'never')")
    return pending


def rows_of(cluster: Cluster) -> list[tuple[int, str]]:
    with connect(cluster) as conn:
        return sorted(conn.execute("select * from accounts").fetchall())


COMMITTED = [(1, "ann"), (2, "bob"), (3, "cy")]


def test_committed_rows_survive_a_crash_cycle(make_cluster) -> None:
    cluster = make_cluster().start()
    pending = write_rows(cluster)
    mark = len(cluster.lines)
    os.kill(pending.info.backend_pid, signal.SIGKILL)
    at = cluster.wait_for_log("all server processes terminated; reinitializing", after=mark)
    cluster.wait_for_log("database system was not properly shut down; automatic recovery in progress", after=at)
    cluster.wait_for_log("redo starts at", after=at)
    cluster.wait_for_log("database system is ready to accept connections", after=at)
    pending.close()
    assert rows_of(cluster) == COMMITTED


def test_committed_rows_survive_an_immediate_shutdown(make_cluster) -> None:
    cluster = make_cluster().start()
    pending = write_rows(cluster)
    cluster.signal(signal.SIGQUIT)
    assert cluster.exit_code() == 0
    pending.close()
    assert read_control_file(str(cluster.datadir)).state.display_name == "in production"
    mark = len(cluster.lines)
    cluster.start()
    cluster.wait_for_log("database system was not properly shut down; automatic recovery in progress", after=mark)
    cluster.wait_for_log(r"redo done at \d+/[0-9A-F]+", after=mark)
    assert rows_of(cluster) == COMMITTED


def test_a_clean_shutdown_checkpoints_the_rows(make_cluster) -> None:
    cluster = make_cluster().start()
    pending = write_rows(cluster)
    pending.close()  # its transaction is rolled back: the row is gone
    cluster.signal(signal.SIGINT)
    assert cluster.exit_code() == 0
    control = read_control_file(str(cluster.datadir))
    assert control.state.display_name == "shut down"
    assert control.checkpoint == control.redo  # the shutdown checkpoint is its own redo point
    mark = len(cluster.lines)
    cluster.start()
    assert re.fullmatch(r"LOG:  database system was shut down at .*", cluster.messages()[mark + 3])
    assert not [line for line in cluster.messages()[mark:] if "redo" in line]  # nothing to replay
    assert rows_of(cluster) == COMMITTED
