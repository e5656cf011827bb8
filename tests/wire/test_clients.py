"""psql and pgbench (PostgreSQL 15's own clients) against the test server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .server import ThreadedServer

pytestmark = pytest.mark.skipif(shutil.which("psql") is None or shutil.which("pgbench") is None,
                                reason="PostgreSQL client programs are not installed")


def _env(tmp_path: Path, password: str | None = None) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PGCONNECT_TIMEOUT": "10", "LC_ALL": "C.UTF-8"}
    if password is not None:
        env["PGPASSWORD"] = password
    return env


def _psql(server: ThreadedServer, tmp_path: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["psql", "-X", "-w", "-h", "127.0.0.1", "-p", str(server.port), "-U", "u", "-d", "d", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=_env(tmp_path, password))


def test_psql_select_1(server, tmp_path) -> None:
    result = _psql(server, tmp_path, "-c", "select 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == " ?column? \n----------\n        1\n(1 row)\n\n"


def test_psql_shows_errors_with_the_position_caret(server, tmp_path) -> None:
    result = _psql(server, tmp_path, "-c", "selec 1")
    assert result.returncode == 1
    assert result.stderr == 'ERROR:  syntax error at or near "selec"\nLINE 1: selec 1\n        ^\n'


def test_psql_runs_a_script_with_a_table(server, tmp_path) -> None:
    script = tmp_path / "script.sql"
    script.write_text("create table t (a int, b text);\ninsert into t values (1, 'one'), (2, 'two');\n"
                      "select b from t where a > 1;\n\\echo done\n")
    result = _psql(server, tmp_path, "-A", "-t", "-f", str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["CREATE TABLE", "INSERT 0 2", "two", "done"]


def test_pgbench_select_1_with_two_clients(server, tmp_path) -> None:
    script = tmp_path / "select1.sql"
    script.write_text("select 1;\n")
    for mode in ("simple", "extended", "prepared"):
        result = subprocess.run(
            ["pgbench", "-n", "-M", mode, "-f", str(script), "-t", "50", "-c", "2", "-j", "2", "-h", "127.0.0.1",
             "-p", str(server.port), "-U", "u", "d"],
            capture_output=True, text=True, timeout=60, env=_env(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "number of transactions actually processed: 100/100" in result.stdout
        assert re.search(r"number of failed transactions: 0 \(0\.000%\)", result.stdout), result.stdout


@pytest.mark.parametrize("method", ["md5", "password"])
def test_password_authentication(tmp_path, method) -> None:
    with ThreadedServer(password="secret", auth_method=method) as server:
        ok = _psql(server, tmp_path, "-A", "-t", "-c", "select current_user", password="secret")
        assert (ok.returncode, ok.stdout) == (0, "u\n"), ok.stderr
        wrong = _psql(server, tmp_path, "-c", "select 1", password="nope")
        assert wrong.returncode == 2
        assert 'FATAL:  password authentication failed for user "u"' in wrong.stderr
        missing = _psql(server, tmp_path, "-c", "select 1")  # -w: psql hangs up instead of prompting
        assert missing.returncode == 2 and "no password supplied" in missing.stderr
