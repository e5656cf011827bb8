"""postmaster.pid, postmaster.opts and socket lock files, with real live and dead PIDs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtop.core.vocabulary import PidStatus
from pgtop.runtime import pidfile
from pgtop.runtime.pidfile import LockFileError, PidFile, PidFileContents

START = 1795350917


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A real process that stays alive until the test ends (it waits on its stdin)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield child.pid
    finally:
        child.stdin.close()
        child.wait(timeout=10)


@pytest.fixture
def dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=10)
    return child.pid


def test_create_writes_lines_1_to_5_then_the_rest_in_place(tmp_path: Path) -> None:
    pid_file = PidFile.create(tmp_path, 12320, 5577, START)
    path = tmp_path / "postmaster.pid"
    assert path.read_text() == f"12320\n{tmp_path}\n{START}\n5577\n\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    pid_file.set_socket_dir("/srv/pg")
    pid_file.set_listen_address("127.0.0.1")
    pid_file.set_shmem(2213593, 9)
    pid_file.set_status(PidStatus.STARTING)
    pid_file.set_status(PidStatus.READY)
    # The real PostgreSQL 15 example of spec §9, line for line.
    assert path.read_text() == f"12320\n{tmp_path}\n{START}\n5577\n/srv/pg\n127.0.0.1\n  2213593         9\nready   \n"


def test_a_later_line_first_fills_the_missing_ones(tmp_path: Path) -> None:
    pid_file = PidFile.create(tmp_path, 77, 5432, START, "/tmp")
    assert pid_file.set_status(PidStatus.STOPPING) is None
    assert (tmp_path / "postmaster.pid").read_text() == f"77\n{tmp_path}\n{START}\n5432\n/tmp\n\n\nstopping\n"
    pid_file.update_line(6, "*")
    assert pidfile.read(tmp_path) == PidFileContents(77, str(tmp_path), START, 5432, "/tmp", "*", None, None, PidStatus.STOPPING)


def test_read_gives_every_field_and_none_without_a_file(tmp_path: Path) -> None:
    assert pidfile.read(tmp_path) is None
    pid_file = PidFile.create(tmp_path, 4242, 5433, START, "/tmp")
    pid_file.set_listen_address("localhost")
    pid_file.set_shmem(7, 8)
    pid_file.set_status(PidStatus.STANDBY)
    assert pidfile.read(tmp_path) == PidFileContents(
        pid=4242, datadir=str(tmp_path), start_time=START, port=5433, socket_dir="/tmp",
        listen_address="localhost", shmem_key=7, shmem_id=8, status=PidStatus.STANDBY,
    )


def test_a_live_pid_refuses_the_second_postmaster(tmp_path: Path, live_pid: int) -> None:
    (tmp_path / "postmaster.pid").write_text(f"{live_pid}\n{tmp_path}\n{START}\n5432\n\n")
    with pytest.raises(LockFileError) as caught:
        PidFile.create(tmp_path, os.getpid(), 5432, START)
    assert caught.value.message == 'lock file "postmaster.pid" already exists'
    assert caught.value.hint == f'Is another postmaster (PID {live_pid}) running in data directory "{tmp_path}"?'
    assert pidfile.read(tmp_path).pid == live_pid  # untouched


def test_a_live_standalone_backend_is_named_postgres(tmp_path: Path, live_pid: int) -> None:
    (tmp_path / "postmaster.pid").write_text(f"-{live_pid}\n{tmp_path}\n")
    with pytest.raises(LockFileError) as caught:
        PidFile.create(tmp_path, os.getpid(), 5432, START)
    assert caught.value.hint == f'Is another postgres (PID {live_pid}) running in data directory "{tmp_path}"?'


def test_a_dead_pid_is_stale_and_replaced(tmp_path: Path, dead_pid: int) -> None:
    (tmp_path / "postmaster.pid").write_text(f"{dead_pid}\n{tmp_path}\n{START}\n5432\n/tmp\n\n  1 2\nready   \n")
    PidFile.create(tmp_path, os.getpid(), 5999, START + 1)
    assert pidfile.read(tmp_path).pid == os.getpid()
    assert pidfile.read(tmp_path).port == 5999


def test_our_own_pid_in_an_old_file_is_stale(tmp_path: Path) -> None:
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n/elsewhere\n")
    PidFile.create(tmp_path, os.getpid(), 5432, START)
    assert pidfile.read(tmp_path).datadir == str(tmp_path)


def test_a_stale_file_whose_shared_memory_is_in_use_refuses(tmp_path: Path, dead_pid: int) -> None:
    (tmp_path / "postmaster.pid").write_text(f"{dead_pid}\n{tmp_path}\n{START}\n5432\n/tmp\n\n  2213593         9\n")
    asked = []

    def in_use(key: int, shmem_id: int) -> bool:
        asked.append((key, shmem_id))
        return True

    with pytest.raises(LockFileError) as caught:
        PidFile.create(tmp_path, os.getpid(), 5432, START, shmem_in_use=in_use)
    assert asked == [(2213593, 9)]
    assert caught.value.message == "pre-existing shared memory block (key 2213593, ID 9) is still in use"
    assert caught.value.hint == f'Terminate any old server processes associated with data directory "{tmp_path}".'
    PidFile.create(tmp_path, os.getpid(), 5432, START, shmem_in_use=lambda key, shmem_id: False)
    assert pidfile.read(tmp_path).pid == os.getpid()


@pytest.mark.parametrize(
    ("content", "message", "hint"),
    [
        ("", 'lock file "postmaster.pid" is empty',
         "Either another server is starting, or the lock file is the remnant of a previous server startup crash."),
        ("garbage\n/x\n", 'bogus data in lock file "postmaster.pid": "garbage"', None),
    ],
)
def test_an_empty_or_garbage_file_is_refused_as_postgresql_does(tmp_path: Path, content: str, message: str, hint: str | None) -> None:
    (tmp_path / "postmaster.pid").write_text(content)
    with pytest.raises(LockFileError) as caught:
        PidFile.create(tmp_path, os.getpid(), 5432, START)
    assert (caught.value.message, caught.value.hint) == (message, hint)
    assert (tmp_path / "postmaster.pid").read_text() == content


def test_recheck_reports_a_missing_or_foreign_file(tmp_path: Path) -> None:
    pid_file = PidFile.create(tmp_path, 1234, 5432, START)
    assert pidfile.recheck(tmp_path, 1234) is None
    assert pidfile.recheck(tmp_path, 999) == 'lock file "postmaster.pid" contains wrong PID: 1234 instead of 999'
    pid_file.remove()
    assert not (tmp_path / "postmaster.pid").exists()
    assert pidfile.recheck(tmp_path, 1234) == 'could not open file "postmaster.pid": No such file or directory'


def test_remove_leaves_a_file_that_is_no_longer_ours(tmp_path: Path) -> None:
    pid_file = PidFile.create(tmp_path, 1234, 5432, START)
    (tmp_path / "postmaster.pid").write_text("5678\n")
    pid_file.remove()
    assert (tmp_path / "postmaster.pid").read_text() == "5678\n"


def test_update_line_reports_a_vanished_file(tmp_path: Path) -> None:
    pid_file = PidFile.create(tmp_path, 1234, 5432, START)
    (tmp_path / "postmaster.pid").unlink()
    assert pid_file.set_status(PidStatus.READY) == 'could not open file "postmaster.pid": No such file or directory'
    assert not (tmp_path / "postmaster.pid").exists()


def test_postmaster_opts_holds_the_command_line(tmp_path: Path) -> None:
    pidfile.write_opts(tmp_path, ["/usr/bin/pgtop", "start", "-D", str(tmp_path), "--port", "5433"])
    assert (tmp_path / "postmaster.opts").read_text() == f'/usr/bin/pgtop "start" "-D" "{tmp_path}" "--port" "5433"\n'


# -- socket lock files --------------------------------------------------------------------


def test_socket_lock_holds_lines_1_to_5_and_clears_a_stale_socket(tmp_path: Path) -> None:
    (tmp_path / ".s.PGSQL.5577").write_text("")  # left by a killed server
    path = pidfile.create_socket_lock(tmp_path, 5577, 12320, "/srv/pg/data", START)
    assert path == tmp_path / ".s.PGSQL.5577.lock"
    assert path.read_text() == f"12320\n/srv/pg/data\n{START}\n5577\n{tmp_path}\n"
    assert not (tmp_path / ".s.PGSQL.5577").exists()
    pidfile.remove_socket_lock(path)
    assert not path.exists()


def test_socket_lock_of_a_live_process_refuses(tmp_path: Path, live_pid: int) -> None:
    lock = tmp_path / ".s.PGSQL.5577.lock"
    lock.write_text(f"{live_pid}\n/other\n{START}\n5577\n{tmp_path}\n")
    with pytest.raises(LockFileError) as caught:
        pidfile.create_socket_lock(tmp_path, 5577, os.getpid(), "/srv/pg/data", START)
    assert caught.value.message == f'lock file "{lock}" already exists'
    assert caught.value.hint == f'Is another postmaster (PID {live_pid}) using socket file "{tmp_path}/.s.PGSQL.5577"?'


def test_socket_lock_of_a_dead_process_is_replaced(tmp_path: Path, dead_pid: int) -> None:
    lock = tmp_path / ".s.PGSQL.5577.lock"
    lock.write_text(f"{dead_pid}\n/other\n{START}\n5577\n{tmp_path}\n")
    pidfile.create_socket_lock(tmp_path, 5577, os.getpid(), "/srv/pg/data", START)
    assert lock.read_text().split("\n")[0] == str(os.getpid())
    pidfile.remove_socket_lock(lock)
