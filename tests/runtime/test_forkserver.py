"""The fork server and the child context, with real processes: who the parent is, what the
child sees (title, session, signals, fds), how it waits, logs and dies with the postmaster."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from pgtop.children.context import WaitEvent
from pgtop.common.logformat import format_log_line
from pgtop.core.vocabulary import ExitStatus, LogLevel
from pgtop.runtime.forkserver import (
    BLOCKED_UNTIL_HANDLED,
    SPARE_TITLE,
    DeathPipe,
    ForkServer,
    SpawnFailed,
    is_child_subreaper,
)
from pgtop.runtime.procwatch import ChildWatcher

HERE = f"{__name__}"
POSTMASTER_SIGNALS = {
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
}


# -- child programs (the fork server imports this module to run them) ---------------------


def report(ctx) -> int:
    """Describe the process, wait for a byte on "go", exit with args["code"]."""
    with open("/proc/self/cmdline") as cmdline:
        title = cmdline.read().rstrip("\0")
    facts = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "sid": os.getsid(0),
        "pgid": os.getpgid(0),
        "stdin": os.readlink("/proc/self/fd/0"),
        "title": title,
        # (listdir's own fd is closed again by the time exists() looks)
        "fds": sorted(
            int(fd) for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")
        ),
        "given": ctx.fds,
        "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "hup": str(signal.getsignal(signal.SIGHUP)),
        "backend_type": ctx.backend_type,
        "alive": ctx.postmaster_alive(),
    }
    os.write(ctx.fds["out"], (json.dumps(facts) + "\n").encode())
    os.read(ctx.fds["go"], 1)
    return ctx.args["code"]


def waiter(ctx) -> int:
    """A main loop: report each wakeup on "out"; SIGTERM ends it (0), postmaster death (42)."""
    ctx.handle(signal.SIGHUP, signal.SIGTERM)
    ctx.exit_on_sigquit(lambda: os.write(ctx.fds["out"], b"quickdie\n"))
    os.write(ctx.fds["out"], b"ready\n")
    while True:
        events = ctx.wait(ctx.args.get("timeout", 10.0), readable=[ctx.fds["in"]])
        if WaitEvent.SOCKET_READABLE in events:
            os.read(ctx.fds["in"], 1)
        names = sorted(getattr(event, "name", str(event)) for event in events)
        os.write(ctx.fds["out"], (" ".join(names) + "\n").encode())
        if WaitEvent.POSTMASTER_DEATH in events:
            return 42
        if signal.SIGTERM in events:
            return 0


def shared_report(ctx) -> int:
    """Report the "settings" argument, and whether it is the fork server's shared copy."""
    from pgtop.runtime import forkserver

    settings = ctx.args["settings"]
    facts = {"settings": settings, "own": ctx.args["own"], "servers_copy": settings is forkserver._SHARED["settings"]}
    os.write(ctx.fds["out"], (json.dumps(facts) + "\n").encode())
    return 0


def interpreter_report(ctx) -> int:
    """Report what a fork that skipped Python's at-fork work could have left wrong: the
    random generator, threading's view of the only thread, and whether a thread and an
    import still work."""
    import random
    import threading
    from importlib import import_module

    results = []
    worker = threading.Thread(target=lambda: results.append(threading.get_ident()))
    worker.start()
    worker.join(5.0)
    facts = {
        "random": random.random(),
        "main": threading.current_thread() is threading.main_thread(),
        "ident": threading.main_thread().ident == threading.get_ident(),
        "thread_ran": len(results) == 1 and results[0] != threading.get_ident(),
        "threads_after": threading.active_count(),
        "import": import_module("colorsys").__name__,
    }
    os.write(ctx.fds["out"], (json.dumps(facts) + "\n").encode())
    return 0


def logger(ctx) -> int:
    ctx.log(LogLevel.LOG, "checkpoint starting: time", detail="a detail", hint="a hint")
    ctx.log(LogLevel.DEBUG1, "not shown at log_min_messages=warning")
    return 0


def crasher(ctx) -> int:
    raise RuntimeError("boom")


# -- helpers ------------------------------------------------------------------------------


_buffers: dict[int, bytes] = {}


def read_line(fd: int, timeout: float = 5.0) -> str:
    """The next line a child wrote to the pipe `fd` (children write whole lines)."""
    deadline = time.monotonic() + timeout
    data = _buffers.pop(fd, b"")
    while b"\n" not in data:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], (
            f"no line within {timeout} s (got {data!r})"
        )
        chunk = os.read(fd, 65536)
        assert chunk, f"EOF after {data!r}"
        data += chunk
    line, _, rest = data.partition(b"\n")
    _buffers[fd] = rest
    return line.decode()


def wait_exit(watcher: ChildWatcher, pid: int, timeout: float = 5.0) -> ExitStatus:
    pidfd = watcher.watch(pid)
    assert select.select([pidfd], [], [], timeout)[0], f"PID {pid} did not exit within {timeout} s"
    result = watcher.reap(pid)
    assert result is not None
    return result[1]


class Pipes:
    """Pipes opened by a test, closed at the end."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def new(self) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        self.fds += [read_end, write_end]
        return read_end, write_end

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
            _buffers.pop(fd, None)


@pytest.fixture
def pipes():
    made = Pipes()
    yield made
    made.close()


@pytest.fixture
def watcher():
    watching = ChildWatcher()
    yield watching
    for pid in watching.watched:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    watching.close()


@pytest.fixture(params=[True, False], ids=["clone3", "double-fork"])
def server(request):
    forkserver = ForkServer.start([f"{HERE}:report", f"{HERE}:waiter"], clone_parent=request.param)
    yield forkserver
    forkserver.stop()


# -- the fork server ----------------------------------------------------------------------


def test_child_belongs_to_the_postmaster_in_its_own_session(server, watcher, pipes):
    out_read, out_write = pipes.new()
    go_read, go_write = pipes.new()
    pid = server.spawn(
        f"{HERE}:report",
        {"code": 3, "backend_type": "checkpointer"},
        {"out": out_write, "go": go_read},
    )
    watcher.watch(pid)
    facts = json.loads(read_line(out_read))
    assert facts["pid"] == pid
    assert facts["ppid"] == os.getpid()  # reaped here, not by the fork server
    assert facts["sid"] == pid and facts["pgid"] == pid  # kill(-pid) hits it alone
    assert facts["title"] == "pgtop: checkpointer"
    assert psutil.Process(pid).name() == "pgtop: checkpointer"
    assert facts["backend_type"] == "checkpointer"
    assert facts["alive"] is True
    given = facts["given"]
    assert set(given) == {"out", "go", "death"}
    assert facts["fds"] == sorted({0, 1, 2, *given.values()})  # the server's socket is closed
    assert facts["stdin"] == os.devnull  # the server's own, never the postmaster's terminal
    os.write(go_write, b"x")
    assert wait_exit(watcher, pid) == ExitStatus.exited(3)


def test_child_starts_with_default_dispositions_and_only_the_postmaster_signals_blocked(watcher, pipes):
    """The postmaster may ignore SIGHUP (nohup) and blocks more than its own signals; a child
    starts with default dispositions and exactly BLOCKED_UNTIL_HANDLED blocked, which it lets
    in one by one as it installs its handlers (PostgreSQL's BlockSig)."""
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, POSTMASTER_SIGNALS)
    previous_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        forkserver = ForkServer.start([f"{HERE}:report"])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        signal.signal(signal.SIGHUP, previous_hup)
    try:
        out_read, out_write = pipes.new()
        go_read, go_write = pipes.new()
        pid = forkserver.spawn(f"{HERE}:report", {"code": 0}, {"out": out_write, "go": go_read})
        watcher.watch(pid)
        facts = json.loads(read_line(out_read))
        os.write(go_write, b"x")
        assert facts["blocked"] == sorted(int(sig) for sig in BLOCKED_UNTIL_HANDLED)
        assert facts["hup"] == str(signal.SIG_DFL)
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
    finally:
        forkserver.stop()


def test_children_have_a_sound_interpreter_and_random_numbers_of_their_own(server, watcher, pipes):
    # The server forks without Python's at-fork work while it has one thread (a quarter of a
    # child's copy-on-write faults): the child's interpreter must still be whole.
    out_read, out_write = pipes.new()
    draws = []
    for _ in range(2):
        pid = server.spawn(f"{HERE}:interpreter_report", {}, {"out": out_write})
        watcher.watch(pid)
        facts = json.loads(read_line(out_read))
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
        assert facts["main"] and facts["ident"] and facts["thread_ran"]
        assert facts["threads_after"] == 1
        assert facts["import"] == "colorsys"
        draws.append(facts["random"])
    assert draws[0] != draws[1]


def test_bad_requests_fail_with_a_clear_error_and_the_server_carries_on(server, watcher, pipes):
    with pytest.raises(SpawnFailed, match="No module named 'pgtop.children.no_such_kind'"):
        server.spawn("no_such_kind", {}, {})
    with pytest.raises(SpawnFailed, match='invalid child kind "../etc"'):
        server.spawn("../etc", {}, {})
    with pytest.raises(SpawnFailed, match="arguments cannot be sent"):
        server.spawn(f"{HERE}:report", {"callback": lambda: None}, {})
    with pytest.raises(ValueError, match='"death" is reserved'):
        server.spawn(f"{HERE}:report", {}, {"death": 0})
    out_read, out_write = pipes.new()
    go_read, go_write = pipes.new()
    pid = server.spawn(f"{HERE}:report", {"code": 0}, {"out": out_write, "go": go_read})
    watcher.watch(pid)
    assert json.loads(read_line(out_read))["pid"] == pid
    os.write(go_write, b"x")
    assert wait_exit(watcher, pid) == ExitStatus.exited(0)


def test_spawn_from_the_supervisor_thread(server, watcher, pipes):
    out_read, out_write = pipes.new()
    go_read, go_write = pipes.new()
    pids: list[int] = []

    def supervisor() -> None:
        for _ in range(3):
            pids.append(
                server.spawn(f"{HERE}:report", {"code": 0}, {"out": out_write, "go": go_read})
            )

    threads = [threading.Thread(target=supervisor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for pid in pids:
        watcher.watch(pid)
    reported = {json.loads(read_line(out_read))["pid"] for _ in range(6)}
    assert reported == set(pids) and len(pids) == 6
    os.write(go_write, b"x" * 6)
    assert {wait_exit(watcher, pid) for pid in pids} == {ExitStatus.exited(0)}


def test_stop_ends_the_server_and_restores_the_subreaper_setting():
    assert not is_child_subreaper()
    forkserver = ForkServer.start()
    server_pid = forkserver.pid
    assert is_child_subreaper()
    assert psutil.Process(server_pid).cmdline()[0] == "pgtop: fork server"
    forkserver.stop()
    assert not psutil.pid_exists(server_pid)
    assert not is_child_subreaper()
    with pytest.raises(SpawnFailed):
        forkserver.spawn(f"{HERE}:report", {}, {})


def test_a_program_that_raises_exits_1_with_a_fatal_line(server, watcher, pipes):
    log_read, log_write = pipes.new()
    pid = server.spawn(f"{HERE}:crasher", {"backend_type": "walwriter"}, {"log": log_write})
    assert wait_exit(watcher, pid) == ExitStatus.exited(1)
    os.close(log_write)
    pipes.fds.remove(log_write)
    text = os.read(log_read, 65536).decode()
    assert f"[{pid}] FATAL:  RuntimeError: boom" in text


# -- the child context --------------------------------------------------------------------


def test_wait_returns_on_signals_readable_fds_and_timeouts(server, watcher, pipes):
    out_read, out_write = pipes.new()
    in_read, in_write = pipes.new()
    pid = server.spawn(f"{HERE}:waiter", {"timeout": 0.2}, {"out": out_write, "in": in_read})
    watcher.watch(pid)
    assert read_line(out_read) == "ready"
    assert read_line(out_read) == "TIMEOUT"
    os.kill(pid, signal.SIGHUP)
    assert _next_line_other_than(out_read, "TIMEOUT") == "SIGHUP"
    os.write(in_write, b"x")
    assert _next_line_other_than(out_read, "TIMEOUT") == "SOCKET_READABLE"
    os.kill(pid, signal.SIGTERM)
    assert _next_line_other_than(out_read, "TIMEOUT") == "SIGTERM"
    assert wait_exit(watcher, pid) == ExitStatus.exited(0)


def test_sigquit_ends_a_child_with_exit_2_at_once(server, watcher, pipes):
    out_read, out_write = pipes.new()
    in_read, _ = pipes.new()
    pid = server.spawn(f"{HERE}:waiter", {}, {"out": out_write, "in": in_read})
    assert read_line(out_read) == "ready"
    os.kill(pid, signal.SIGQUIT)
    assert read_line(out_read) == "quickdie"
    assert wait_exit(watcher, pid) == ExitStatus.exited(2)


def _next_line_other_than(fd: int, boring: str) -> str:
    while (line := read_line(fd)) == boring:
        pass
    return line


def test_children_see_postmaster_death_on_the_pipe(watcher, pipes):
    death = DeathPipe()
    forkserver = ForkServer.start([f"{HERE}:waiter"], death_pipe=death)
    try:
        out_read, out_write = pipes.new()
        in_read, _ = pipes.new()
        pid = forkserver.spawn(f"{HERE}:waiter", {}, {"out": out_write, "in": in_read})
        watcher.watch(pid)
        assert read_line(out_read) == "ready"
        os.close(death.write_fd)  # what the kernel does when the postmaster dies
        death.write_fd = -1
        assert read_line(out_read) == "POSTMASTER_DEATH"
        assert wait_exit(watcher, pid) == ExitStatus.exited(42)
    finally:
        forkserver.stop()
        death.close()


def test_log_lines_go_to_the_log_pipe_in_postgresql_format(server, watcher, pipes):
    log_read, log_write = pipes.new()
    pid = server.spawn(f"{HERE}:logger", {"backend_type": "checkpointer"}, {"log": log_write})
    assert wait_exit(watcher, pid) == ExitStatus.exited(0)
    os.close(log_write)
    pipes.fds.remove(log_write)
    lines = os.read(log_read, 65536).decode().splitlines()
    assert [line.split(f"[{pid}] ", 1)[1] for line in lines] == [
        "LOG:  checkpoint starting: time",
        "DETAIL:  a detail",
        "HINT:  a hint",
    ]
    assert lines[0].split(" ")[2] == "UTC"


def test_format_log_line_expands_log_line_prefix():
    now = 1_700_000_000.25  # 2023-11-14 22:13:20.250 UTC
    common = {"pid": 4242, "backend_type": "client backend", "now": now}
    assert (
        format_log_line("%m [%p] ", "LOG", "hello", **common)
        == "2023-11-14 22:13:20.250 UTC [4242] LOG:  hello"
    )
    assert (
        format_log_line("%t %b: ", LogLevel.DEBUG2, "x", **common)
        == "2023-11-14 22:13:20 UTC client backend: DEBUG:  x"
    )
    session = {**common, "user": "alice", "database": "", "application_name": "psql"}
    assert (
        format_log_line("%u@%d %a %%%q|", "FATAL", "x", **session)
        == "alice@[unknown] psql %|FATAL:  x"
    )
    assert format_log_line("[%-6p|%6u]%q after", "LOG", "x", **common) == "[4242  |      ]LOG:  x"
    assert (
        format_log_line("%c ", "LOG", "x", **common, session_start=now) == "6553f100.1092 LOG:  x"
    )
    with pytest.raises(ValueError, match='invalid value for parameter "log_timezone"'):
        format_log_line("%m ", "LOG", "x", **common, timezone="Mars/Olympus")


def test_a_huge_log_line_prefix_padding_is_capped():
    """elog.c would allocate %999999999p on every line; a reload must not take every
    process that logs down with it."""
    common = {"pid": 4242, "backend_type": "client backend", "now": 1_700_000_000.0}
    assert format_log_line("%999999999p|", "LOG", "x", **common) == f"{'4242':>1000}|LOG:  x"
    assert format_log_line("%-99999999999999999999p|", "LOG", "x", **common) == f"{'4242':<1000}|LOG:  x"
    assert format_log_line("%00012p|", "LOG", "x", **common) == f"{'4242':>12}|LOG:  x"


# -- nothing outlives the postmaster ------------------------------------------------------

POSTMASTER_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    sys.path[:] = json.loads(sys.argv[1])
    from pgtop.runtime.forkserver import ForkServer
    from {module} import spare_children
    server = ForkServer.start(clone_parent=sys.argv[2] == "clone3")
    # The children ignore the death pipe and SIGTERM: only PDEATHSIG can end them.
    pids = [server.spawn("{module}:stubborn", {{}}, {{}}) for _ in range(3)]
    deadline = time.monotonic() + 5  # and, with clone3, the spare forked for the next spawn
    while sys.argv[2] == "clone3" and not spare_children() and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps({{"server": server.pid, "children": pids + spare_children()}}), flush=True)
    time.sleep(60)
    """
)


def spare_children() -> list[int]:
    """This process's children titled as a fork server's spare and asleep: a spare titles
    itself just before it waits for work, and nothing between the two sleeps."""
    found = []
    for child in psutil.Process().children():
        try:
            if child.cmdline()[:1] == [SPARE_TITLE] and child.status() == psutil.STATUS_SLEEPING:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def wait_until_taken(pid: int, signum: int, timeout: float = 5.0) -> None:
    """Until `signum` no longer waits in the process's pending sets (/proc/PID/status)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{pid}/status") as status:
            masks = [int(line.split()[1], 16) for line in status if line.startswith(("SigPnd:", "ShdPnd:"))]
        if not any(mask & (1 << (signum - 1)) for mask in masks):
            return
        assert time.monotonic() < deadline, f"signal {signum} still pending in {pid} after {timeout} s"
        time.sleep(0.001)


def wait_for_spare(forkserver: ForkServer, timeout: float = 5.0) -> int:
    """The spare child, once `ps` shows it and the postmaster's end holds it (the server's
    note can come a moment after the spare has titled itself)."""
    deadline = time.monotonic() + timeout
    while True:
        forkserver.take_notes()
        spares = spare_children()
        if spares and set(spares) <= forkserver.spares:
            break
        assert time.monotonic() < deadline, f"no spare child held within {timeout} s (ps: {spares})"
        time.sleep(0.005)
    assert len(spares) == 1, f"one spare at a time, not {spares}"
    return spares[0]


def test_a_spare_child_waits_ready_and_becomes_the_next_child(watcher, pipes):
    """The server forks the next child ahead of need; `ps` shows it as a spare, and the next
    spawn gets exactly that process, fully formed: own session, only its own fds."""
    forkserver = ForkServer.start([f"{HERE}:report"])
    try:
        spare = wait_for_spare(forkserver)
        assert psutil.Process(spare).ppid() == os.getpid()  # the postmaster's, like any child
        out_read, out_write = pipes.new()
        go_read, go_write = pipes.new()
        pid = forkserver.spawn(f"{HERE}:report", {"code": 0, "backend_type": "walwriter"}, {"out": out_write, "go": go_read})
        watcher.watch(pid)
        assert pid == spare
        facts = json.loads(read_line(out_read))
        assert facts["title"] == "pgtop: walwriter"
        assert facts["sid"] == pid and facts["ppid"] == os.getpid()
        assert facts["fds"] == sorted({0, 1, 2, *facts["given"].values()})
        assert facts["stdin"] == os.devnull
        assert facts["blocked"] == sorted(BLOCKED_UNTIL_HANDLED)
        os.write(go_write, b"x")
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
        assert wait_for_spare(forkserver) != spare  # and the next one is forked
    finally:
        forkserver.stop()
    assert spare_children() == []
    assert not [child.pid for child in psutil.Process().children() if child.status() == psutil.STATUS_ZOMBIE]


def test_shared_arguments_reach_every_child_from_the_servers_copy_and_a_new_value_retires_the_spare(
    watcher, pipes
):
    """A `shared` argument goes to the server once; each child takes the server's copy. A
    new value (a reload) reaches the next child, never the spare forked with the old one."""
    forkserver = ForkServer.start([f"{HERE}:shared_report"])
    out_read, out_write = pipes.new()

    def spawn(settings: dict, own: str) -> tuple[int, dict]:
        pid = forkserver.spawn(f"{HERE}:shared_report", {"settings": settings, "own": own}, {"out": out_write},
                               shared=("settings",))  # fmt: skip
        watcher.watch(pid)
        facts = json.loads(read_line(out_read))
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
        return pid, facts

    try:
        first = {"work_mem": "4MB"}
        _, facts = spawn(first, "a")
        assert facts == {"settings": first, "own": "a", "servers_copy": True}
        spare = wait_for_spare(forkserver)  # forked since the value was shared
        pid, facts = spawn(first, "b")  # the same object: not sent again
        assert pid == spare and facts == {"settings": first, "own": "b", "servers_copy": True}
        held = wait_for_spare(forkserver)
        second = {"work_mem": "8MB"}
        pid, facts = spawn(second, "c")
        assert pid != held and facts == {"settings": second, "own": "c", "servers_copy": True}
        assert wait_for_spare(forkserver) != held  # the one held with the old value is gone
    finally:
        forkserver.stop()
    assert spare_children() == []


def test_a_killed_spare_is_replaced_and_spawning_goes_on(watcher, pipes):
    forkserver = ForkServer.start([f"{HERE}:report"])
    try:
        spare = wait_for_spare(forkserver)
        os.kill(spare, signal.SIGKILL)
        os.waitpid(spare, 0)  # as the postmaster's orphan reaper would
        out_read, out_write = pipes.new()
        go_read, go_write = pipes.new()
        pid = forkserver.spawn(f"{HERE}:report", {"code": 0}, {"out": out_write, "go": go_read})
        watcher.watch(pid)
        assert pid != spare and json.loads(read_line(out_read))["pid"] == pid
        os.write(go_write, b"x")
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
        wait_for_spare(forkserver)
    finally:
        forkserver.stop()
    assert spare_children() == []


def test_a_signal_sent_to_the_spare_is_not_delivered_to_the_child_it_becomes(watcher, pipes):
    forkserver = ForkServer.start([f"{HERE}:waiter"])
    try:
        spare = wait_for_spare(forkserver)
        os.kill(spare, signal.SIGTERM)  # blocked in the spare: it would wait, pending
        wait_until_taken(spare, signal.SIGTERM)  # sent before the request, not with it
        out_read, out_write = pipes.new()
        in_read, in_write = pipes.new()
        pid = forkserver.spawn(f"{HERE}:waiter", {}, {"out": out_write, "in": in_read})
        watcher.watch(pid)
        assert pid == spare and read_line(out_read) == "ready"
        os.write(in_write, b"x")
        assert read_line(out_read) == "SOCKET_READABLE"  # not SIGTERM
        os.kill(pid, signal.SIGTERM)
        assert read_line(out_read) == "SIGTERM"
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
    finally:
        forkserver.stop()


def test_a_signal_sent_to_the_new_child_before_the_spare_wakes_up_reaches_the_child(watcher, pipes):
    """The postmaster names the child as soon as it hands the request over; a signal sent to
    it then is the child's, even if the spare has not yet woken up to read the request."""
    forkserver = ForkServer.start([f"{HERE}:waiter"])
    try:
        spare = wait_for_spare(forkserver)
        os.kill(spare, signal.SIGSTOP)  # a slow wakeup, made certain
        out_read, out_write = pipes.new()
        in_read, _ = pipes.new()
        pid = forkserver.spawn(f"{HERE}:waiter", {}, {"out": out_write, "in": in_read})
        watcher.watch(pid)
        assert pid == spare
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
        assert read_line(out_read) == "ready"
        assert read_line(out_read) == "SIGTERM"
        assert wait_exit(watcher, pid) == ExitStatus.exited(0)
    finally:
        forkserver.stop()


def stubborn(ctx) -> int:
    ctx.ignore(signal.SIGTERM, signal.SIGHUP)
    while True:
        time.sleep(1)


@pytest.mark.parametrize("method", ["clone3", "double-fork"])
def test_sigkill_of_the_postmaster_takes_every_child_and_the_server(method):
    # Orphans come to this process so that it can check them and reap their zombies.
    watcher = ChildWatcher()
    was_subreaper = is_child_subreaper()
    from pgtop.runtime.forkserver import set_child_subreaper

    set_child_subreaper(True)
    script = POSTMASTER_SCRIPT.format(module=HERE)
    postmaster = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(sys.path), method], stdout=subprocess.PIPE
    )
    processes: list[psutil.Process] = []
    try:
        started = json.loads(postmaster.stdout.readline())
        processes += [psutil.Process(pid) for pid in [started["server"], *started["children"]]]
        assert all(process.ppid() == postmaster.pid for process in processes)
        postmaster.kill()
        postmaster.wait(5)
        deadline = time.monotonic() + 5
        while any(_running(process) for process in processes) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not [process.pid for process in processes if _running(process)]
    finally:
        if postmaster.poll() is None:
            postmaster.kill()
            postmaster.wait()
        postmaster.stdout.close()
        for process in processes:  # survivors of a failed test must not outlive it
            if _running(process):
                process.kill()
        psutil.wait_procs(processes, timeout=5)
        watcher.reap_orphans()
        set_child_subreaper(was_subreaper)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
