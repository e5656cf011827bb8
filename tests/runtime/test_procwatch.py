"""Noticing and reaping child deaths: pidfds, exit statuses, and orphans left to us."""

from __future__ import annotations

import os
import select
import signal
import time

import psutil
import pytest

from pgtop.core.vocabulary import ExitStatus
from pgtop.runtime.forkserver import ForkServer
from pgtop.runtime.procwatch import ChildWatcher

HERE = __name__


# -- child programs -----------------------------------------------------------------------


def sleeper(ctx) -> int:
    """Wait until told: a byte on "go" is the exit code."""
    ctx.wait(None, readable=[ctx.fds["go"]])
    return os.read(ctx.fds["go"], 1)[0]


def abandoner(ctx) -> int:
    """Start a grandchild that outlives us (like an archive_command's shell), then exit."""
    grandchild = os.fork()
    if grandchild == 0:
        os.read(ctx.fds["go"], 1)  # until the test kills it
        os._exit(0)
    os.write(ctx.fds["out"], f"{grandchild}\n".encode())
    return 0


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def server():
    forkserver = ForkServer.start([f"{HERE}:sleeper", f"{HERE}:abandoner"])
    yield forkserver
    forkserver.stop()


@pytest.fixture
def watcher():
    watching = ChildWatcher()
    yield watching
    for pid in watching.watched:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    watching.close()


@pytest.fixture
def go():
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass  # the test closed it already


def readable_within(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


# -- tests --------------------------------------------------------------------------------


def test_a_killed_child_is_noticed_at_once_and_reaped_with_its_signal(server, watcher, go):
    pid = server.spawn(f"{HERE}:sleeper", {}, {"go": go[0]})
    pidfd = watcher.watch(pid)
    assert watcher.fds() == {pidfd: pid}
    assert not readable_within(pidfd, 0)
    assert watcher.reap(pid) is None  # still running: nothing reaped, still watched
    assert pid in watcher.watched
    killed_at = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    assert readable_within(pidfd, 5)
    noticed_after = time.perf_counter() - killed_at
    assert watcher.reap(pid) == (pid, ExitStatus.killed(signal.SIGKILL))
    assert pid not in watcher.watched and watcher.fds() == {}
    assert not psutil.pid_exists(pid)
    print(f"death noticed {noticed_after * 1000:.2f} ms after the kill")


def test_exit_codes_and_every_ready_child_at_once(server, watcher, go):
    pids = [server.spawn(f"{HERE}:sleeper", {}, {"go": go[0]}) for _ in range(3)]
    for pid in pids:
        watcher.watch(pid)
    os.write(go[1], bytes([0, 1, 3]))  # each child takes one byte as its exit code
    deadline = time.monotonic() + 5
    exits: list[tuple[int, ExitStatus]] = []
    while len(exits) < 3 and time.monotonic() < deadline:
        select.select(list(watcher.fds()), [], [], 0.1)
        exits += watcher.reap_ready()
    assert sorted(status.code for _, status in exits) == [0, 1, 3]
    assert {pid for pid, _ in exits} == set(pids)


def test_orphans_reparented_to_the_postmaster_are_reaped(server, watcher, go):
    out_read, out_write = os.pipe()
    try:
        pid = server.spawn(f"{HERE}:abandoner", {}, {"go": go[0], "out": out_write})
        watcher.watch(pid)
        assert readable_within(out_read, 5)
        grandchild = int(os.read(out_read, 100))
        assert readable_within(watcher.watch(pid), 5)  # watch() again: the same pidfd
        assert watcher.reap(pid) == (pid, ExitStatus.exited(0))
        assert psutil.Process(grandchild).ppid() == os.getpid()  # we are its subreaper
        assert watcher.reap_orphans(keep={server.pid}) == []  # alive: left alone
        os.kill(grandchild, signal.SIGKILL)
        deadline = time.monotonic() + 5
        reaped: list[tuple[int, ExitStatus]] = []
        while not reaped and time.monotonic() < deadline:
            reaped = watcher.reap_orphans(keep={server.pid})
        assert reaped == [(grandchild, ExitStatus.killed(signal.SIGKILL))]
        assert psutil.Process(server.pid).is_running()  # kept out of orphan reaping
    finally:
        os.close(out_read)
        os.close(out_write)


def test_registered_children_are_left_to_reap(server, watcher, go):
    pid = server.spawn(f"{HERE}:sleeper", {}, {"go": go[0]})
    pidfd = watcher.watch(pid)
    os.write(go[1], bytes([1]))
    assert readable_within(pidfd, 5)
    assert watcher.reap_orphans(keep={server.pid}) == []
    assert watcher.reap(pid) == (pid, ExitStatus.exited(1))


def test_strangers_are_refused_with_a_clear_error(watcher):
    with pytest.raises(ChildProcessError, match="PID 1 is not a child of this process"):
        watcher.watch(1)
        watcher.reap(1)
    assert 1 not in watcher.watched
