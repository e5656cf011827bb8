"""The archiver, for real: archive_command through /bin/sh, .ready to .done, failures, retries,
the process group, SIGTERM's 60 s grace and SIGUSR2's last cycle."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
from childtest import Postmaster, config, title_of, wait_for

from pgtop.core.vocabulary import ChildKind, ExitStatus
from pgtop.storage.archive import archive_state
from pgtop.storage.database import Database
from pgtop.storage.wal import Wal

SEGMENT_1 = "000000010000000000000001"
SEGMENT_2 = "000000010000000000000002"


def complete_segments(datadir: str, count: int = 1) -> None:
    """Finish `count` segments with archiving on: each gets its .ready file."""
    with Wal(datadir) as wal, Database(datadir) as database:
        wal.set_flags(archiving=True)
        for number in range(count):
            if number:  # a switch finishes a segment only if something was written in it
                database.create_table(f"t{number}", [("a", "int")])
            wal.switch_segment()
        wal.flush()


def start(postmaster: Postmaster, command: str, **settings: object) -> int:
    pid = postmaster.spawn(ChildKind.ARCHIVER, config(archive_mode="on", archive_command=command, **settings))
    postmaster.wait_started(pid, "pgtop: archiver")
    return pid


def test_archives_each_ready_segment_with_p_and_f_from_the_data_directory(postmaster: Postmaster, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    complete_segments(postmaster.datadir)
    pid = start(postmaster, f'test -f %p && cp %p "{archive}/%f" && echo "%%p" > "{archive}/percent"')
    postmaster.wait_title(pid, f"pgtop: archiver last was {SEGMENT_1}")
    assert (archive / SEGMENT_1).read_bytes() == Path(postmaster.datadir, "pg_wal", SEGMENT_1).read_bytes()
    assert (archive / "percent").read_text() == "%p\n"
    assert archive_state(postmaster.datadir, SEGMENT_1) == "done"
    counters = postmaster.counters()
    assert (counters.archived_count, counters.last_archived_wal, counters.failed_count) == (1, SEGMENT_1, 0)
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


def test_a_failing_command_is_logged_counted_and_retried(postmaster: Postmaster) -> None:
    complete_segments(postmaster.datadir)
    pid = start(postmaster, "exit 3")
    line = postmaster.log.wait_for(r"LOG:  archive command failed with exit code 3$")
    detail = postmaster.log.lines[postmaster.log.lines.index(line) + 1]
    assert detail.endswith("DETAIL:  The failed archive command was: exit 3")
    postmaster.wait_title(pid, f"pgtop: archiver failed on {SEGMENT_1}")
    postmaster.wait_counter(lambda c: c.failed_count == 2, "a retry a second later")
    assert postmaster.counters().last_failed_wal == SEGMENT_1
    assert archive_state(postmaster.datadir, SEGMENT_1) == "ready"
    os.kill(pid, signal.SIGQUIT)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(2)


def test_a_reload_with_a_fixed_command_archives_at_once(postmaster: Postmaster, tmp_path: Path) -> None:
    complete_segments(postmaster.datadir)
    pid = start(postmaster, "exit 1")
    postmaster.log.wait_for(r"archive command failed with exit code 1$")
    Path(postmaster.datadir, "pgtop.yaml").write_text("archive_mode: 'on'\narchive_command: 'true'\n")
    os.kill(pid, signal.SIGHUP)
    postmaster.wait_title(pid, f"pgtop: archiver last was {SEGMENT_1}")
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


def test_command_not_found_is_fatal(postmaster: Postmaster) -> None:
    complete_segments(postmaster.datadir)
    # Not start(): with a segment ready the archiver runs the command at once and is gone
    # within milliseconds, often before its title can be seen.
    pid = postmaster.spawn(ChildKind.ARCHIVER, config(archive_mode="on", archive_command="no-such-archive-program %p"))
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(r"FATAL:  archive command failed with exit code 127$")


def test_the_command_runs_in_the_archivers_process_group(postmaster: Postmaster) -> None:
    """signal_child's kill(-pid) reaches the shell; the archiver, ignoring SIGQUIT meanwhile as
    system() makes it, reports the signal as FATAL and exits 1 (it will be restarted)."""
    complete_segments(postmaster.datadir)
    pid = start(postmaster, "sleep 30")
    wait_for(lambda: title_of(pid) == f"pgtop: archiver archiving {SEGMENT_1}", "the command to start")
    shell = wait_for(lambda: psutil.Process(pid).children(), "the shell")[0]
    assert os.getpgid(shell.pid) == pid
    os.kill(-pid, signal.SIGQUIT)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(r"FATAL:  archive command was terminated by signal 3: Quit$")
    wait_for(lambda: not psutil.pid_exists(shell.pid) or shell.status() == psutil.STATUS_ZOMBIE, "the shell's end")


def test_sigterm_stops_new_commands_and_sigusr2_then_ends_it(postmaster: Postmaster) -> None:
    pid = start(postmaster, "true")
    os.kill(pid, signal.SIGTERM)
    postmaster.assert_running(pid, 0.3)  # it stays (60 s) so the postmaster can stop it in order
    complete_segments(postmaster.datadir)
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    assert archive_state(postmaster.datadir, SEGMENT_1) == "ready"  # no command after SIGTERM


def test_sigusr2_archives_what_remains_then_exits_0(postmaster: Postmaster, tmp_path: Path) -> None:
    pid = start(postmaster, "true")
    complete_segments(postmaster.datadir, 2)
    os.kill(pid, signal.SIGUSR2)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    assert archive_state(postmaster.datadir, SEGMENT_1) == "done"
    assert archive_state(postmaster.datadir, SEGMENT_2) == "done"
    assert postmaster.counters().archived_count == 2
