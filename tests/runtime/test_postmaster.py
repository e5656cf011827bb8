"""The core's scenarios replayed for real: `pgtop run` on a temporary data directory, faults
injected with real signals, and the log, the PIDs, the pid file and the exit code checked."""

from __future__ import annotations

import re
import signal

import psutil
import pytest

READY = "database system is ready to accept connections"
AUX = ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "stats collector")


def _titles(pid: int) -> set[str]:
    titles = set()
    for proc in psutil.Process(pid).children():
        try:
            titles.add(" ".join(proc.cmdline()).strip())
        except psutil.NoSuchProcess:
            pass
    return titles


def test_cold_start_logs_like_postgresql_and_shows_titles(make_cluster) -> None:
    cluster = make_cluster().start()
    messages = cluster.messages()
    assert messages[0].startswith("LOG:  starting PostgreSQL 14.13 (pgtop ")
    assert "LOG:  listening on IPv4 address \"127.0.0.1\", port %d" % cluster.port in messages
    assert f'LOG:  listening on Unix socket "{cluster.socket_dir}/.s.PGSQL.{cluster.port}"' in messages
    ready = messages.index(f"LOG:  {READY}")
    assert any(m.startswith("LOG:  database system was shut down at ") for m in messages[:ready])
    assert cluster.pid_status() == "ready"
    # The launcher, a background worker, is started just after "ready" (as in PostgreSQL):
    # wait for every title instead of reading them once.
    wanted = {f"pgtop: {name}" for name in (*AUX, "logical replication launcher")}
    cluster.wait_for(lambda _status: wanted <= _titles(cluster.pid))
    status = cluster.status()
    assert status["pm_state"] == "PM_RUN" and status["shutdown"] == "NoShutdown"


def test_sigterm_of_the_walwriter_restarts_only_the_walwriter(make_cluster) -> None:
    cluster = make_cluster().start()
    before = cluster.children()
    old = cluster.kill_child("walwriter", signal.SIGTERM)
    status = cluster.wait_for(lambda s: cluster.children(s).get("walwriter") not in (None, old))
    after = cluster.children(status)
    assert {k: v for k, v in after.items() if k != "walwriter"} == {k: v for k, v in before.items() if k != "walwriter"}
    walwriter = next(c for c in status["children"] if c["name"] == "walwriter")
    assert walwriter["previous_pid"] == old and walwriter["last_exit"] == "exit 0" and walwriter["restarts"] == 1
    assert not any("terminating any other active server processes" in m for m in cluster.messages())


@pytest.mark.parametrize(
    ("name", "exit_name"),
    [("checkpointer", "checkpointer process"), ("background writer", "background writer process")],
)
def test_kill_9_of_an_auxiliary_process_runs_the_crash_cycle(make_cluster, name: str, exit_name: str) -> None:
    cluster = make_cluster().start()
    before = cluster.children()
    start = len(cluster.lines)
    pid = cluster.kill_child(name, signal.SIGKILL)
    crash = cluster.wait_for_log(rf"{exit_name} \(PID {pid}\) was terminated by signal 9: Killed", after=start)
    cluster.wait_for_log("terminating any other active server processes", after=crash)
    reinit = cluster.wait_for_log("all server processes terminated; reinitializing", after=crash)
    cluster.wait_for_log("database system was interrupted; last known up at", after=reinit)
    cluster.wait_for_log(READY, after=reinit)
    status = cluster.wait_for(lambda s: s["pm_state"] == "PM_RUN" and all(c["pid"] for c in s["children"]))
    after = cluster.children(status)
    assert set(after) == set(before)
    assert all(after[key] != before[key] for key in before), "every child has a new PID"
    assert cluster.pid_status() == "ready", "postmaster.pid keeps saying ready through the cycle"


@pytest.mark.parametrize(("sig", "name"), [(signal.SIGTERM, "smart"), (signal.SIGINT, "fast"), (signal.SIGQUIT, "immediate")])
def test_each_shutdown_mode_exits_0_and_leaves_nothing(make_cluster, sig: int, name: str) -> None:
    cluster = make_cluster().start()
    children = list(cluster.children().values())
    cluster.signal(sig)
    assert cluster.exit_code() == 0
    messages = cluster.messages()
    assert f"LOG:  received {name} shutdown request" in messages
    assert messages[-1] == "LOG:  database system is shut down"
    if name != "immediate":
        assert "LOG:  shutting down" in messages  # the checkpointer's shutdown checkpoint
    assert not (cluster.datadir / "postmaster.pid").exists()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in children)


def test_immediate_shutdown_logs_nothing_else(make_cluster) -> None:
    cluster = make_cluster().start()
    start = len(cluster.lines)
    cluster.signal(signal.SIGQUIT)
    assert cluster.exit_code() == 0
    assert cluster.messages()[start:] == [
        "LOG:  received immediate shutdown request",
        "LOG:  database system is shut down",
    ]


def test_restart_after_crash_off_exits_1(make_cluster) -> None:
    cluster = make_cluster(restart_after_crash=False).start()
    cluster.kill_child("walwriter", signal.SIGKILL)
    assert cluster.exit_code() == 1
    messages = cluster.messages()
    assert "LOG:  shutting down because restart_after_crash is off" in messages
    assert messages[-1] == "LOG:  database system is shut down"


def test_sigkill_escalation_for_a_stopped_child(make_cluster) -> None:
    cluster = make_cluster().start()
    start = len(cluster.lines)
    stopped = cluster.kill_child("background writer", signal.SIGSTOP)
    cluster.kill_child("walwriter", signal.SIGKILL)
    quit_at = cluster.wait_for_log("terminating any other active server processes", after=start)
    kill_at = cluster.wait_for_log("issuing SIGKILL to recalcitrant children", after=quit_at, timeout=15)
    cluster.wait_for_log("all server processes terminated; reinitializing", after=kill_at)
    cluster.wait_for_log(READY, after=kill_at)
    assert not psutil.pid_exists(stopped) or psutil.Process(stopped).status() == psutil.STATUS_ZOMBIE


def test_second_postmaster_on_the_same_directory_is_refused(make_cluster) -> None:
    import subprocess
    import sys

    cluster = make_cluster().start()
    second = subprocess.run(
        [sys.executable, "-m", "pgtop", "run", "-D", str(cluster.datadir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert 'FATAL:  lock file "postmaster.pid" already exists' in second.stderr
    assert f"HINT:  Is another postmaster (PID {cluster.pid}) running in data directory" in second.stderr
    assert cluster.status()["pm_state"] == "PM_RUN", "the running one is untouched"


def test_sigkill_of_pgtop_takes_every_child_with_it(make_cluster) -> None:
    cluster = make_cluster().start()
    children = list(cluster.children().values())
    cluster.signal(signal.SIGKILL)
    cluster.exit_code()
    deadline_check = psutil.wait_procs([psutil.Process(p) for p in children if psutil.pid_exists(p)], timeout=5)
    assert deadline_check[1] == [], "children outlived the postmaster"


def test_reload_logs_changes_and_refuses_postmaster_parameters(make_cluster) -> None:
    cluster = make_cluster().start()
    start = len(cluster.lines)
    cluster.configure(checkpoint_timeout="10min", max_connections=50)
    cluster.signal(signal.SIGHUP)
    end = cluster.wait_for_log("contains errors; unaffected changes were applied", after=start)
    assert cluster.messages()[start : end + 1] == [
        "LOG:  received SIGHUP, reloading configuration files",
        'LOG:  parameter "checkpoint_timeout" changed to "10min"',
        'LOG:  parameter "max_connections" cannot be changed without restarting the server',
        f'LOG:  configuration file "{cluster.datadir}/pgtop.yaml" contains errors; unaffected changes were applied',
    ]


def test_a_reload_changes_how_the_postmaster_itself_logs(make_cluster) -> None:
    """log_line_prefix and log_timezone apply to the postmaster's own lines after a SIGHUP,
    as in PostgreSQL (which re-reads them in the postmaster too)."""
    cluster = make_cluster().start()
    start = len(cluster.lines)
    cluster.configure(log_line_prefix="%t <%b> ", log_timezone="Asia/Tokyo")
    cluster.signal(signal.SIGHUP)
    cluster.wait_for_log('parameter "log_timezone" changed to "Asia/Tokyo"', after=start)
    start = len(cluster.lines)
    cluster.signal(signal.SIGHUP)
    line = cluster.lines[cluster.wait_for_log("received SIGHUP, reloading configuration files", after=start)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST <postmaster> LOG:  received SIGHUP, reloading configuration files", line), line


def test_a_broken_config_file_on_reload_keeps_the_running_values(make_cluster) -> None:
    cluster = make_cluster().start()
    start = len(cluster.lines)
    (cluster.datadir / "pgtop.yaml").write_text("checkpoint_timeout: [unclosed\n")
    cluster.signal(signal.SIGHUP)
    cluster.wait_for_log("contains errors; no changes were applied", after=start)
    assert cluster.status()["pm_state"] == "PM_RUN"


def test_a_broken_config_file_at_start_is_a_one_line_error(make_cluster) -> None:
    cluster = make_cluster()
    (cluster.datadir / "pgtop.yaml").write_text("port: [unclosed\n")
    cluster.start(wait_ready=False)
    assert cluster.exit_code() == 1
    assert cluster.messages()[-1].startswith('FATAL:  configuration file "')
    assert not (cluster.datadir / "postmaster.pid").exists()


def _current_logfile(cluster) -> str:
    line = (cluster.datadir / "current_logfiles").read_text().split()
    assert line[0] == "stderr"
    return (cluster.datadir / line[1]).read_text()


def test_logging_collector_takes_the_log_and_survives_its_own_death(make_cluster) -> None:
    cluster = make_cluster(logging_collector=True).start(wait_ready=False)
    status = cluster.wait_for(lambda s: s["pm_state"] == "PM_RUN" and all(c["pid"] for c in s["children"]))
    assert cluster.messages()[:2] == [
        "LOG:  redirecting log output to logging collector process",
        'HINT:  Future log output will appear in directory "log".',
    ]
    old = cluster.children(status)["logger"]
    os_kill = __import__("os").kill
    os_kill(old, signal.SIGKILL)
    cluster.wait_for(lambda s: cluster.children(s).get("logger") not in (None, old))
    cluster.signal(signal.SIGINT)
    assert cluster.exit_code() == 0
    text = _current_logfile(cluster)
    assert f"LOG:  system logger process (PID {old}) was terminated by signal 9: Killed" in text
    assert text.rstrip().endswith("LOG:  database system is shut down")
    assert len(cluster.messages()) == 2, "nothing but the redirection reaches stderr"


ARCHIVING = {"archive_mode": "on", "archive_command": "true"}


def test_an_orphan_left_to_the_postmaster_is_reaped_when_it_exits(make_cluster, tmp_path) -> None:
    """SIGCHLD's only job (its signalfd in the supervisor's selector): the archive command
    leaves a background shell behind, which the kernel hands to the postmaster, a child
    subreaper; when it exits, the postmaster reaps it, as PostgreSQL's reaper would."""
    from pgtop.storage.wal import Wal

    note = tmp_path / "orphan.pid"
    command = f"sh -c 'echo $$ > {note}; sleep 0.5' & exit 0"
    cluster = make_cluster(archive_mode="on", archive_command=command)
    with Wal(str(cluster.datadir)) as wal:  # one finished segment for the archiver to take
        wal.set_flags(archiving=True)
        wal.switch_segment()
        wal.flush()
    cluster.start()
    cluster.wait_for(lambda _status: note.exists() and note.read_text().strip().isdigit())
    orphan = int(note.read_text())
    cluster.wait_for(lambda _status: not psutil.pid_exists(orphan))  # a zombie still "exists"
    assert orphan not in {child.pid for child in psutil.Process(cluster.pid).children()}


@pytest.mark.parametrize(
    ("name", "exit_name", "settings"),
    [
        ("walwriter", "WAL writer process", {}),
        ("autovacuum launcher", "autovacuum launcher process", {}),
        ("logical replication launcher", 'background worker "logical replication launcher"', {}),
        ("archiver", "archiver process", ARCHIVING),
    ],
)
def test_kill_9_of_any_shared_memory_child_restarts_everyone(make_cluster, name, exit_name, settings) -> None:
    cluster = make_cluster(**settings).start()
    before = cluster.children()
    start = len(cluster.lines)
    pid = cluster.kill_child(name, signal.SIGKILL)
    crash = cluster.wait_for_log(rf"{exit_name} \(PID {pid}\) was terminated by signal 9: Killed", after=start)
    cluster.wait_for_log("all server processes terminated; reinitializing", after=crash)
    status = cluster.wait_for(
        lambda s: s["pm_state"] == "PM_RUN"
        and all(cluster.children(s).get(k) not in (None, before[k]) for k in before if k != "archiver")
    )
    assert all(cluster.children(status)[k] != before[k] for k in before if k != "archiver")


def test_kill_9_of_the_stats_collector_is_no_crash_and_restarts_throttled(make_cluster) -> None:
    cluster = make_cluster().start()
    before = cluster.children()
    start = len(cluster.lines)
    pid = cluster.kill_child("stats collector", signal.SIGKILL)
    cluster.wait_for_log(rf"statistics collector process \(PID {pid}\) was terminated by signal 9: Killed", after=start)
    # The log line is written during the reaper's step; the snapshot follows it.
    status = cluster.wait_for(lambda s: cluster.children(s).get("stats collector") != pid)
    assert status["pm_state"] == "PM_RUN"
    assert "stats collector" not in cluster.children(status), "60 s since its last start have not passed"
    assert {k: v for k, v in cluster.children(status).items()} == {k: v for k, v in before.items() if k != "stats collector"}
    assert not any("terminating any other active server processes" in m for m in cluster.messages())


@pytest.mark.parametrize(
    ("name", "settings", "restarted"),
    [
        ("background writer", {}, True),  # exit 0: restarted by the loop
        ("autovacuum launcher", {}, True),
        ("checkpointer", {}, False),  # ignores SIGTERM: waits for SIGUSR2
        ("stats collector", {}, False),  # ignores SIGTERM
        ("archiver", ARCHIVING, False),  # ignores SIGTERM for up to 60 s
    ],
)
def test_sigterm_of_a_child_is_handled_as_its_kind_does(make_cluster, name, settings, restarted) -> None:
    cluster = make_cluster(**settings).start()
    before = cluster.children()
    pid = cluster.kill_child(name, signal.SIGTERM)
    if restarted:
        status = cluster.wait_for(lambda s: cluster.children(s).get(name) not in (None, pid))
        last = next(c for c in status["children"] if c["name"] == name)
        assert last["last_exit"] == "exit 0"
    else:
        cluster.signal(signal.SIGHUP)  # a wakeup that proves the loop ran after the signal
        cluster.wait_for_log("received SIGHUP, reloading configuration files")
        assert cluster.children()[name] == pid
    others = {k: v for k, v in cluster.children().items() if k != name}
    assert others == {k: v for k, v in before.items() if k != name}


def test_sigterm_of_the_logical_replication_launcher_restarts_it_after_5_s(make_cluster) -> None:
    cluster = make_cluster().start()
    name = "logical replication launcher"
    start = len(cluster.lines)
    pid = cluster.kill_child(name, signal.SIGTERM)
    exited = cluster.wait_for_log(rf'background worker "{name}" \(PID {pid}\) exited with exit code 1', after=start)
    assert name not in cluster.children()
    status = cluster.wait_for(lambda s: cluster.children(s).get(name) not in (None, pid), timeout=15)
    restarted = next(c for c in status["children"] if c["name"] == name)
    assert restarted["start_time"] - _log_time(cluster.lines[exited]) >= 4.9  # bgw_restart_time 5 s


def _log_time(line: str) -> float:
    import datetime as dt

    stamp = " ".join(line.split()[:2])
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc).timestamp()


def test_a_killed_fork_server_is_replaced_and_children_still_come_back(make_cluster) -> None:
    cluster = make_cluster().start()
    server = next(p for p in psutil.Process(cluster.pid).children() if "fork server" in " ".join(p.cmdline()))
    start = len(cluster.lines)
    server.kill()  # the postmaster sees EOF on its socket and starts another at once
    cluster.wait_for_log(rf"fork server \(PID {server.pid}\) is gone; starting a new one", after=start)
    old = cluster.kill_child("walwriter", signal.SIGTERM)
    cluster.wait_for(lambda s: cluster.children(s).get("walwriter") not in (None, old))
    assert not any("terminating any other active server processes" in m for m in cluster.messages())
    cluster.signal(signal.SIGINT)
    assert cluster.exit_code() == 0
