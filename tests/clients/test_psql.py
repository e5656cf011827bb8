"""PostgreSQL 15's own psql and pgbench against a real `pgtop run`, over the Unix socket and
TCP: one-shot commands, an interactive session on a terminal, and pgbench load."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from support.cluster import Cluster

from .helpers import InteractivePsql, process_title, wait_until

TRANSPORTS = [pytest.param(False, id="unix"), pytest.param(True, id="tcp")]


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_psql_c_runs_statements_and_reports_errors(cluster: Cluster, tcp: bool) -> None:
    done = cluster.psql("-At", "-c", "select 6 * 7", "-c", "show server_version", "-c", "select pg_is_in_recovery()", tcp=tcp)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", "14.13", "f"]

    failed = cluster.psql("-c", "select * from no_such_table", tcp=tcp)
    assert failed.returncode == 1
    assert 'ERROR:  relation "no_such_table" does not exist' in failed.stderr


def test_psql_in_a_terminal_keeps_its_session_across_errors_and_ctrl_c(cluster: Cluster) -> None:
    psql = InteractivePsql(cluster)
    try:
        psql.expect(r"postgres=# ")
        psql.send("select pg_backend_pid();\n")
        pid = int(psql.expect(r"\n\s*(\d+)\s*\n\(1 row\)").group(1))
        psql.expect(r"postgres=# ")

        psql.send("selec 1;\n")
        psql.expect(r'ERROR:  syntax error at or near "selec"')
        psql.send("begin;\n")
        psql.expect(r"BEGIN")
        psql.expect(r"postgres=\*# ")  # psql's prompt shows the open transaction
        psql.send("select 1/0;\n")
        psql.expect(r"ERROR:  division by zero")
        psql.expect(r"postgres=!# ")  # ... and that it failed
        psql.send("rollback;\n")
        psql.expect(r"ROLLBACK")

        psql.send("select pg_sleep(30);\n")
        wait_until(lambda: process_title(pid).endswith(" active"), what="the sleep to start")
        psql.interrupt()  # Ctrl-C: psql sends a cancel request on a new connection
        psql.expect(r"ERROR:  canceling statement due to user request")
        psql.expect(r"postgres=# ")

        psql.send(f"select pg_backend_pid() = {pid} as same;\n")
        psql.expect(r"\n\s*t\s*\n\(1 row\)")
    finally:
        assert psql.close() == 0, psql.output
    assert not re.search(r"FATAL|server closed", psql.output), psql.output


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_pgbench_with_a_custom_script(cluster: Cluster, select1: Path, tcp: bool) -> None:
    for extra in ([], ["-C"]):
        done = subprocess.run(
            ["pgbench", "-n", *extra, "-c", "2", "-t", "25", "-f", str(select1)],
            capture_output=True, text=True, timeout=60, env=cluster.client_env(tcp=tcp), check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "number of transactions actually processed: 50/50" in done.stdout
        assert "number of failed transactions: 0 (0.000%)" in done.stdout
