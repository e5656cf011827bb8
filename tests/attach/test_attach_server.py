"""Attaching to a real PostgreSQL 15 (no dashboard): finding it, its children, a crash
cycle, reload, a fast shutdown and the next postmaster, refusals, and an idle attach."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from attach_helpers import (
    Recorder,
    as_stranger,
    children_by_kind,
    pid_of,
    ps_children,
    wait_until,
)

from pgtop.attach.control import AttachController
from pgtop.attach.locate import AttachError, locate
from pgtop.attach.proctable import process_start_time
from pgtop.attach.watcher import AttachWatcher
from pgtop.core.vocabulary import ExitStatus, PMState, Sig
from pgtop.runtime.snapshot import CommandRefused, ShutdownMode

AUXILIARY = {"checkpointer", "background writer", "walwriter", "autovacuum launcher", "logical replication launcher"}


@pytest.fixture
def attached(server) -> Iterator[tuple[AttachWatcher, Recorder]]:
    watcher = AttachWatcher(locate(data_dir=server.data_dir))
    recorder = Recorder()
    watcher.log_sinks.append(recorder.post_log)
    watcher.subscribe(recorder.post_snapshot)
    watcher.start()
    yield watcher, recorder
    watcher.stop()


def running_with(recorder: Recorder, kinds: set[str]) -> bool:
    latest = recorder.snapshots[-1] if recorder.snapshots else None
    return latest is not None and latest.state.pm_state == PMState.RUN and kinds <= set(children_by_kind(latest))


def test_a_server_is_found_by_data_directory_pid_and_port(server):
    by_dir = locate(data_dir=server.data_dir)
    by_pid = locate(pid=by_dir.pid)
    by_port = locate(port=server.port, socket_dirs=(server.socket_dir,))
    assert by_dir == by_pid == by_port
    assert (by_dir.port, by_dir.data_dir, by_dir.major_version) == (server.port, server.data_dir, 15)
    assert by_dir.owner == (server.owner.pw_name)


def test_what_is_not_a_running_server_gets_one_line(server, tmp_path):
    postmaster = server.postmaster_pid()
    checkpointer = next(pid for pid, title in ps_children(postmaster).items() if "checkpointer" in title)
    cases = [
        ({"data_dir": tmp_path}, f"no server running in {tmp_path} (no postmaster.pid)"),
        ({"data_dir": tmp_path / "nope"}, f"{tmp_path / 'nope'} is not a directory"),
        ({"pid": checkpointer}, f"PID {checkpointer} is not a postmaster: it is a checkpointer (its postmaster is PID {postmaster})"),
        ({"pid": os.getpid()}, f"PID {os.getpid()} is not a PostgreSQL server"),
        ({"port": server.port, "socket_dirs": (tmp_path,)}, f"no server on port {server.port}: no .s.PGSQL.{server.port}.lock in {tmp_path} (use --host-dir DIR)"),
    ]
    for where, message in cases:
        with pytest.raises(AttachError) as caught:
            locate(**where)
        assert str(caught.value).startswith(message)


def test_the_children_are_the_processes_ps_shows_with_their_types(attached, server):
    _, recorder = attached
    postmaster = server.postmaster_pid()

    def same_as_ps() -> bool:
        shown = {child.pid for child in recorder.latest.state.children.values()}
        return running_with(recorder, AUXILIARY) and shown == set(ps_children(postmaster))

    recorder.wait(same_as_ps, "the children ps shows")
    titles = ps_children(postmaster)
    for kind in AUXILIARY:
        assert kind in titles[pid_of(recorder.latest, kind)]
    recorder.wait(lambda: "pg_stat_activity" in recorder.latest.observed, "pg_stat_activity read")
    assert recorder.latest.observed == {"pid_status", "children", "log", "pg_stat_activity"}
    assert any(a.application_name == "pgtop attach" for a in recorder.latest.activity)


def test_kill_9_of_the_checkpointer_shows_the_crash_cycle_and_new_pids(attached):
    _, recorder = attached
    recorder.wait(lambda: running_with(recorder, AUXILIARY), "PM_RUN with every auxiliary process")
    old = {kind: pid_of(recorder.latest, kind) for kind in ("checkpointer", "walwriter")}
    seen_before = len(recorder.snapshots)
    os.kill(old["checkpointer"], signal.SIGKILL)
    recorder.wait(
        lambda: running_with(recorder, AUXILIARY) and pid_of(recorder.latest, "walwriter") != old["walwriter"],
        "back in PM_RUN with a new walwriter",
    )
    states = [s.state.pm_state for s in recorder.snapshots[seen_before:]]
    assert PMState.WAIT_BACKENDS in states and PMState.STARTUP in states
    assert states.index(PMState.WAIT_BACKENDS) < states.index(PMState.STARTUP) < len(states) - 1 - states[::-1].index(PMState.RUN)
    state = recorder.latest.state
    assert pid_of(recorder.latest, "checkpointer") != old["checkpointer"]
    crash = state.last_exit("checkpointer")
    assert (crash.pid, crash.status, crash.verdict) == (old["checkpointer"], ExitStatus.killed(9), "crash, everyone restarts")
    assert state.restarts["checkpointer"] == 1
    assert recorder.saw_log(f"checkpointer process (PID {old['checkpointer']}) was terminated by signal 9: Killed")


def test_without_the_log_the_crash_cycle_is_inferred_from_the_processes(server):
    watcher = AttachWatcher(locate(data_dir=server.data_dir), follow_log=False, activity=False)
    recorder = Recorder()
    watcher.subscribe(recorder.post_snapshot)
    watcher.start()
    try:
        recorder.wait(lambda: running_with(recorder, AUXILIARY), "PM_RUN with every auxiliary process")
        assert "log" not in recorder.latest.observed
        old = pid_of(recorder.latest, "walwriter")
        os.kill(pid_of(recorder.latest, "checkpointer"), signal.SIGKILL)
        recorder.wait(lambda: running_with(recorder, AUXILIARY) and pid_of(recorder.latest, "walwriter") != old, "a new walwriter in PM_RUN")
        assert {"WAIT_BACKENDS", "STARTUP"} <= set(recorder.pm_states())
        assert recorder.latest.state.last_exit("walwriter").verdict == "quit in the crash cycle (inferred)"
    finally:
        watcher.stop()


def test_reload_is_a_sighup_the_server_logs(attached):
    watcher, recorder = attached
    recorder.wait(lambda: running_with(recorder, AUXILIARY), "PM_RUN")
    AttachController(watcher).reload()
    recorder.wait(lambda: recorder.saw_log("received SIGHUP, reloading configuration files"), "the reload in the log")


def test_a_child_signal_is_pinned_to_pid_and_start_time(attached, server):
    watcher, recorder = attached
    recorder.wait(lambda: running_with(recorder, AUXILIARY), "PM_RUN")
    controller = AttachController(watcher)
    bgwriter = pid_of(recorder.latest, "background writer")
    with pytest.raises(CommandRefused, match=f"process {bgwriter} is not the one shown any more"):
        controller.signal_child(bgwriter, process_start_time(bgwriter) - 5, Sig.TERM)
    with pytest.raises(CommandRefused, match=f"process {os.getpid()} is not a child of this postmaster"):
        controller.signal_child(os.getpid(), process_start_time(os.getpid()), Sig.TERM)
    controller.signal_child(bgwriter, process_start_time(bgwriter), Sig.TERM)  # exits 0: restarted alone
    recorder.wait(lambda: running_with(recorder, AUXILIARY) and pid_of(recorder.latest, "background writer") != bgwriter, "a new bgwriter")
    recorder.wait(lambda: recorder.latest.state.last_exit("background writer") is not None, "the old one's exit judged")
    record = recorder.latest.state.last_exit("background writer")
    assert (record.pid, record.verdict) == (bgwriter, "clean exit, restart this one (inferred)")
    assert "WAIT_BACKENDS" not in recorder.pm_states()


def test_a_fast_shutdown_is_followed_to_the_exit_and_the_next_postmaster_is_attached(attached, server):
    watcher, recorder = attached
    recorder.wait(lambda: running_with(recorder, AUXILIARY), "PM_RUN")
    first = recorder.latest.postmaster_pid
    AttachController(watcher).shutdown(ShutdownMode.FAST)
    recorder.wait(lambda: recorder.latest.state.exit_code is not None, "the postmaster's exit")
    assert recorder.latest.state.exit_code == 0
    states = recorder.pm_states()
    assert states[states.index("WAIT_BACKENDS") :] == ["WAIT_BACKENDS", "SHUTDOWN", "SHUTDOWN_2", "WAIT_DEAD_END", "NO_CHILDREN"]
    assert recorder.saw_log("received fast shutdown request") and recorder.saw_log("database system is shut down")
    with pytest.raises(CommandRefused, match="the postmaster is not running"):
        AttachController(watcher).reload()
    second = server.start()
    recorder.wait(lambda: recorder.latest.postmaster_pid == second and running_with(recorder, AUXILIARY), "the next postmaster")
    assert second != first


def test_a_process_that_is_not_the_owner_is_refused_in_one_line(server):
    postmaster = server.postmaster_pid()
    checkpointer = next(pid for pid, title in ps_children(postmaster).items() if "checkpointer" in title)

    def try_as_stranger() -> list[str]:
        watcher = AttachWatcher(locate(pid=postmaster), activity=False)
        watcher.start()
        controller = AttachController(watcher)
        refusals = []
        for command in (controller.reload, lambda: controller.shutdown(ShutdownMode.IMMEDIATE),
                        lambda: controller.signal_child(checkpointer, process_start_time(checkpointer), Sig.KILL)):
            try:
                command()
            except CommandRefused as refusal:
                refusals.append(str(refusal))
        watcher.stop()
        return refusals

    assert as_stranger(try_as_stranger) == [
        f"not allowed to signal process {postmaster}: run pgtop as the server's owner (postgres)",
        f"not allowed to signal process {postmaster}: run pgtop as the server's owner (postgres)",
        f"not allowed to signal process {checkpointer}: run pgtop as the server's owner (postgres)",
    ]
    assert server.postmaster_pid() == postmaster and checkpointer in ps_children(postmaster)


def test_an_idle_attach_stays_well_under_one_percent_of_a_cpu(attached):
    _, recorder = attached
    recorder.wait(lambda: running_with(recorder, AUXILIARY) and "pg_stat_activity" in recorder.latest.observed, "PM_RUN")
    start_cpu, start = time.process_time(), time.monotonic()
    threading.Event().wait(3.0)  # the measurement window itself
    used = time.process_time() - start_cpu
    assert used / (time.monotonic() - start) < 0.01


def test_the_logging_collectors_file_is_followed_across_a_logrotate(make_server):
    server = make_server(logging_collector="on")
    watcher = AttachWatcher(locate(data_dir=server.data_dir), activity=False)
    recorder = Recorder()
    watcher.log_sinks.append(recorder.post_log)
    watcher.subscribe(recorder.post_snapshot)
    watcher.start()
    try:
        recorder.wait(lambda: running_with(recorder, AUXILIARY | {"logger"}), "PM_RUN with the logger")
        assert watcher.follower.how == "current_logfiles" and "log" in recorder.latest.observed
        controller = AttachController(watcher)
        first_file = watcher.follower.path
        controller.reload()
        recorder.wait(lambda: recorder.saw_log("received SIGHUP, reloading configuration files"), "the reload")
        # log_filename has a resolution of one second: a rotation within the second the
        # file was opened reopens the same name.
        opened = int(first_file.stat().st_ctime)
        wait_until(lambda: int(time.time()) > opened, "a new second")
        collector_file = server.data_dir / "current_logfiles"
        for _ in range(3):  # under load the logger has been seen to miss a request: ask again
            controller.logrotate()
            try:
                wait_until(lambda: first_file.name not in collector_file.read_text(), "the logger's new file", timeout=3)
                break
            except AssertionError:
                continue
        wait_until(lambda: watcher.follower.path != first_file, "pgtop following the new log file")
        before = len(recorder.logs)
        controller.reload()
        recorder.wait(lambda: any("received SIGHUP" in r.text for r in recorder.logs[before:]), "the reload in the new file")
        assert not (server.data_dir / "logrotate").exists(), "the postmaster took the signal file"
    finally:
        watcher.stop()
