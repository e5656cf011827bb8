"""`pgtop ctl` against a real running postmaster, as pg_ctl is used."""

from __future__ import annotations

import json
import subprocess
import sys


def ctl(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgtop", "ctl", "-D", str(cluster.datadir), *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_status_json_shows_the_live_state(make_cluster) -> None:
    cluster = make_cluster().start()
    result = ctl(cluster, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["running"] is True
    assert status["postmaster_pid"] == cluster.pid
    assert status["pm_state"] == "PM_RUN"
    assert status["shutdown"] == "NoShutdown"
    assert status["fatal_error"] is False
    assert status["conns_allowed"] == "ALLOW_ALL_CONNS"
    checkpointer = next(c for c in status["children"] if c["kind"] == "checkpointer")
    assert checkpointer["pid"] > 0 and checkpointer["start_time"] > 0
    assert checkpointer["restarts"] == 0 and checkpointer["last_exit"] is None


def test_status_of_a_stopped_cluster_exits_3(make_cluster) -> None:
    cluster = make_cluster()
    result = ctl(cluster, "status")
    assert result.returncode == 3
    assert "no server running" in result.stdout


def test_reload_sends_sighup(make_cluster) -> None:
    cluster = make_cluster().start()
    start = len(cluster.lines)
    result = ctl(cluster, "reload")
    assert result.returncode == 0 and result.stdout.strip() == "server signaled"
    cluster.wait_for_log("received SIGHUP, reloading configuration files", after=start)


def test_stop_defaults_to_fast_and_waits_for_the_pid_file(make_cluster) -> None:
    cluster = make_cluster().start()
    result = ctl(cluster, "stop")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("server stopped\n")
    assert not (cluster.datadir / "postmaster.pid").exists(), "stop returned before the pid file was gone"
    assert "LOG:  received fast shutdown request" in cluster.messages()
    assert cluster.exit_code() == 0


def test_stop_smart(make_cluster) -> None:
    cluster = make_cluster().start()
    result = ctl(cluster, "stop", "-m", "smart")
    assert result.returncode == 0
    assert "LOG:  received smart shutdown request" in cluster.messages()


def test_a_bad_argument_exits_2_with_usage(make_cluster) -> None:
    cluster = make_cluster()
    result = ctl(cluster, "stop", "-m", "gentle")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert "invalid choice: 'gentle'" in result.stderr
