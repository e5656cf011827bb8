"""The servers under test, driven alike: pgtop (`pgtop run`) and PostgreSQL 15 (as the
postgres user, through runuser), each on its own port and temporary directory under /tmp.

Each one's stderr is read by a thread that stamps every line with the moment it arrived
(perf_counter), so log lines can be timed against a kill to the microsecond. `stop()` shuts
the server down (fast, then SIGKILL if it must) and removes its directory; use them as
context managers so that happens on any exit, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Self

from bench.proctable import (
    PGTOP_HELPERS,
    auxiliary_children,
    children_of,
    poll_until,
    titled_children,
)

READY = "database system is ready to accept connections"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def _run_first() -> None:
    """Give the calling thread the CPU before any ordinary process (SCHED_FIFO; the bench
    runs as root), so that the arrival time it stamps is when the line was written, not when
    a CPU came free. Without it, pgtop's kill -9 trials read the death's line ~1.4 ms late in
    a third of the trials: it was written 0.4 to 0.6 ms after the death, while the dying
    children the postmaster had just sent SIGQUIT held both CPUs. The thread only reads
    lines, so it takes the CPU for microseconds at a time. If the policy is refused, it
    stays an ordinary thread."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LogTail:
    """The lines a server writes to stderr, each with its arrival time (perf_counter)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._ended = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        _run_first()
        for raw in iter(stream.readline, b""):
            arrived = time.perf_counter()
            with self._cond:
                self.lines.append((arrived, raw.decode(errors="replace").rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def find(self, pattern: str, after: int = 0) -> tuple[float, str] | None:
        regex = re.compile(pattern)
        with self._cond:
            return next((entry for entry in self.lines[after:] if regex.search(entry[1])), None)

    def wait_for(self, pattern: str, after: int = 0, timeout: float = 30.0) -> tuple[float, str]:
        """The first line at index >= after matching `pattern`: (arrival, line)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for entry in self.lines[after:]:
                    if regex.search(entry[1]):
                        return entry
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    tail = "\n".join(line for _, line in self.lines[-15:])
                    raise TimeoutError(f"no log line matching {pattern!r} ({'stderr closed' if self._ended else 'timeout'}); last lines:\n{tail}")
                self._cond.wait(remaining)

    def text(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)


class Server:
    """What the benchmarks need from a server; subclasses say how to create and start it."""

    label = "server"
    title_prefix = ""
    expected_aux: frozenset[str] = frozenset()

    def __init__(self, max_connections: int = 100) -> None:
        self.max_connections = max_connections
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pgtop-bench-{self.label.lower()}-", dir="/tmp"))
        self.workdir.chmod(0o755)
        self.port = free_port()
        self.socket_dir = self.workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.log: LogTail | None = None
        self.postmaster_pid = 0

    @contextlib.contextmanager
    def _removed_on_failure(self) -> Iterator[None]:
        """The directory goes if building the server fails or is interrupted."""
        try:
            yield
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    # -- to be provided ----------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def find_postmaster_pid(self) -> int | None:
        raise NotImplementedError

    # -- running -------------------------------------------------------------------------

    def start(self) -> Server:
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # the terminal's Ctrl-C reaches the bench, which stops us
        )
        assert self.process.stderr is not None
        self.log = LogTail(self.process.stderr)
        self.log.wait_for(READY, timeout=START_TIMEOUT)
        self.postmaster_pid = poll_until(self.find_postmaster_pid, 10, 0.01)
        self.wait_settled()
        return self

    def aux(self) -> dict[str, int]:
        return auxiliary_children(self.postmaster_pid, self.title_prefix)

    def wait_settled(self, timeout: float = 30.0) -> dict[str, int]:
        """Wait until every expected auxiliary process is running; kind -> pid."""

        def settled() -> dict[str, int] | None:
            aux = self.aux()
            return aux if self.expected_aux <= aux.keys() else None

        return poll_until(settled, timeout, 0.005)

    def backends(self) -> list[int]:
        """PIDs of the client backends (children that are neither auxiliary nor helpers)."""
        aux = set(self.aux().values())
        return [
            pid for pid, title in titled_children(self.postmaster_pid).items()
            if pid not in aux and title.startswith(self.title_prefix) and not title.endswith(PGTOP_HELPERS)
        ]

    def all_pids(self) -> list[int]:
        return [self.postmaster_pid, *children_of(self.postmaster_pid)]

    def stop(self) -> None:
        """Fast shutdown and wait; SIGKILL the whole lot if that does not work; remove the
        directory. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self.postmaster_pid = self.postmaster_pid or self.find_postmaster_pid() or 0
            leftovers = self.all_pids() if self.postmaster_pid else []
            if self.postmaster_pid:
                _kill(self.postmaster_pid, signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                for pid in leftovers:
                    _kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PgtopServer(Server):
    """`pgtop run -D DIR` on a fresh data directory."""

    label = "pgtop"
    title_prefix = "pgtop: "
    expected_aux = frozenset(
        {"checkpointer", "background writer", "walwriter", "autovacuum launcher", "stats collector", "logical replication launcher"}
    )

    def __init__(self, max_connections: int = 100, **settings: object) -> None:
        super().__init__(max_connections)
        from pgtop.runtime.datadir import init_datadir

        self.datadir = self.workdir / "data"
        with self._removed_on_failure():
            init_datadir(self.datadir, port=self.port)
            self.configure(unix_socket_directories=str(self.socket_dir), max_connections=max_connections, **settings)

    def configure(self, **settings: object) -> None:
        """Set parameters in pgtop.yaml (a parameter may appear only once: rewrite)."""
        path = self.datadir / "pgtop.yaml"
        kept = [line for line in path.read_text().splitlines() if line.split(":", 1)[0].strip() not in settings]
        kept += [f"{name}: {_yaml_value(value)}" for name, value in settings.items()]
        path.write_text("\n".join(kept) + "\n")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pgtop", "run", "-D", str(self.datadir)]

    def find_postmaster_pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class PostgresServer(Server):
    """PostgreSQL 15's `postgres`, run as the postgres user; initdb'd with trust auth."""

    label = "PostgreSQL"
    title_prefix = "postgres: "
    expected_aux = frozenset(
        {"checkpointer", "background writer", "walwriter", "autovacuum launcher", "logical replication launcher"}
    )

    def __init__(self, max_connections: int = 100) -> None:
        super().__init__(max_connections)
        self.datadir = self.workdir / "pg"
        with self._removed_on_failure():
            shutil.chown(self.workdir, "postgres")
            subprocess.run(
                ["runuser", "-u", "postgres", "--", "initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--no-sync", "--no-instructions"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "log_line_prefix": "%m [%p] ",
            "log_timezone": "UTC",
            "logging_collector": "off",
            "max_connections": str(self.max_connections),
        }
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        return ["runuser", "-u", "postgres", "--", "postgres", "-D", str(self.datadir), "-p", str(self.port),
                "-k", str(self.socket_dir), *options]

    def find_postmaster_pid(self) -> int | None:
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if os.path.exists(f"/proc/{pid}") else None


def _yaml_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
