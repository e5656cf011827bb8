"""`pgtop attach` on the command line: bad input gets one line and changes nothing; a
`--spawn` cluster is real, can be stopped and started again, and is gone afterwards."""

from __future__ import annotations

import argparse
import os

import pytest
from attach_helpers import Recorder, same_process_alive, wait_until

from pgtop.attach.command import main
from pgtop.attach.proctable import process_start_time
from pgtop.attach.source import attach_source
from pgtop.core.vocabulary import PMState
from pgtop.runtime.snapshot import CommandRefused, ShutdownMode


def options(**given: object) -> argparse.Namespace:
    defaults = {"pgdata": None, "pid": None, "port": None, "host_dir": None, "log": None, "spawn": False}
    return argparse.Namespace(**{**defaults, **given})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "one of the arguments -D/--pgdata --pid --port --spawn is required"),
        (["--port", "70000"], "port 70000 is out of range 1..65535"),
        (["--pid", "-3"], "invalid PID: '-3'"),
        (["-D", "/tmp", "--pid", "5"], "argument --pid: not allowed with argument -D/--pgdata"),
    ],
)
def test_bad_arguments_exit_2_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as leaving:
        main(argv)
    assert leaving.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: pgtop attach") and message in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--pid", "1234", "--host-dir", "/tmp"], 2, "pgtop attach: --host-dir goes with --port"),
        (["-D", "{tmp}"], 1, "pgtop attach: no server running in {tmp} (no postmaster.pid)"),
        (["--pid", "{me}"], 1, "pgtop attach: PID {me} is not a PostgreSQL server"),
        (["-D", "{tmp}", "--log", "{tmp}/none.log"], 1, "pgtop attach: --log {tmp}/none.log: no such file"),
    ],
)
def test_no_server_there_is_one_line_and_exit_1(argv, code, message, tmp_path, capsys):
    values = {"tmp": str(tmp_path), "me": str(os.getpid())}
    assert main([arg.format(**values) for arg in argv]) == code
    assert capsys.readouterr().err.startswith(message.format(**values))


def test_an_unknown_theme_is_refused_before_the_dashboard_starts(server, capsys):
    assert main(["-D", str(server.data_dir), "--theme", "no-such-theme"]) == 1
    assert capsys.readouterr().err.startswith("pgtop attach: unknown theme 'no-such-theme'")
    assert server.postmaster_pid() is not None


def test_port_and_host_dir_and_an_explicit_log_are_honoured(server):
    source = attach_source(options(port=server.port, host_dir=[str(server.socket_dir)], log=str(server.log_path)))
    recorder = Recorder()
    try:
        source.start(recorder)
        recorder.wait(lambda: recorder.latest.state.pm_state == PMState.RUN, "PM_RUN")
        assert source.watcher.location.pid == server.postmaster_pid()
        assert (source.watcher.follower.path, source.watcher.follower.how) == (server.log_path, "--log")
        assert "log" in recorder.latest.observed
    finally:
        source.stop()


def test_spawn_makes_a_real_cluster_that_restarts_and_leaves_nothing(tmp_path):
    source = attach_source(options(spawn=True))
    cluster = source.cluster
    recorder = Recorder()
    try:
        assert source.owns_cluster and cluster.root.is_dir()
        source.start(recorder)
        recorder.wait(lambda: recorder.latest.state.pm_state == PMState.RUN, "PM_RUN", timeout=30)
        first = cluster.postmaster_pid()
        first_started = process_start_time(first)
        with pytest.raises(CommandRefused, match="the cluster is already running"):
            source.controller.start()
        source.controller.shutdown(ShutdownMode.FAST)
        recorder.wait(lambda: recorder.latest.state.exit_code == 0, "the clean exit")
        assert source.controller.start() == "throwaway cluster started again"
        recorder.wait(lambda: recorder.latest.postmaster_pid != first and recorder.latest.state.pm_state == PMState.RUN, "the new postmaster")
        second = cluster.postmaster_pid()
        second_started = process_start_time(second)
    finally:
        source.stop()
    assert not cluster.root.exists()
    for pid, started in ((first, first_started), (second, second_started)):
        wait_until(lambda pid=pid, started=started: not same_process_alive(pid, started), f"the end of postmaster {pid}", timeout=5)
