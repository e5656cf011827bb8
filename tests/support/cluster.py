"""A real `pgtop run` on a temporary data directory, driven and observed as a user would:
its stderr log, its pid file, `ps`, and `pgtop ctl status --json`.

Every wait has a deadline; nothing sleeps a fixed time. `close()` leaves nothing behind and
says so if something was: every process the postmaster ever had is checked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from pgtop.runtime import pidfile
from pgtop.runtime.control import request
from pgtop.runtime.datadir import init_datadir

DEFAULT_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self, datadir: Path, **settings: Any) -> None:
        self.datadir = datadir
        self.port = free_port()
        self.socket_dir = datadir.parent / f"sock{self.port}"
        self.socket_dir.mkdir(exist_ok=True)
        init_datadir(datadir, port=self.port)
        self.configure(unix_socket_directories=str(self.socket_dir), **settings)
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._seen: set[int] = set()  # every process of the cluster we ever saw
        self._eof = False

    # -- configuration -------------------------------------------------------------------

    def configure(self, **settings: Any) -> None:
        """Append settings to pgtop.yaml (later lines are not allowed twice: rewrite)."""
        path = self.datadir / "pgtop.yaml"
        kept = [line for line in path.read_text().splitlines() if line.split(":", 1)[0].strip() not in settings]
        for name, value in settings.items():
            kept.append(f"{name}: {json.dumps(value) if not isinstance(value, bool) else ('on' if value else 'off')}")
        path.write_text("\n".join(kept) + "\n")

    # -- running -------------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True) -> Cluster:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pgtop", "run", "-D", str(self.datadir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        if wait_ready:
            self.wait_for_log("database system is ready to accept connections")
            self.wait_for(lambda s: s["pm_state"] == "PM_RUN" and self._all_started(s))
        return self

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exit_code(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    # -- observing -----------------------------------------------------------------------

    def messages(self) -> list[str]:
        """The log lines without their prefix: "LOG:  database system is ..."."""
        with self._cond:
            return [_strip_prefix(line) for line in self.lines]

    def wait_for_log(self, pattern: str, *, after: int = 0, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for a line containing `pattern` (a regex) at index >= after; its index."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(after, len(self.lines)):
                    if regex.search(self.lines[index]):
                        return index
                remaining = deadline - time.monotonic()
                ended = self.process is not None and self.process.poll() is not None and self._eof
                if remaining <= 0 or ended:
                    tail = "\n".join(self.lines[-30:])
                    why = "the postmaster exited" if ended else f"not within {timeout} s"
                    raise AssertionError(f"no log line matching {pattern!r}: {why}; last lines:\n{tail}")
                self._cond.wait(remaining)

    def status(self) -> dict[str, Any]:
        reply = request(self.datadir, {"op": "status"})
        if "error" in reply:  # e.g. "the postmaster is starting": not an answer yet
            raise ConnectionError(reply["error"])
        status = reply["status"]
        self._remember(status)
        return status

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                last = self.status()
            except OSError:
                last = {}
            if last and predicate(last):
                return last
            time.sleep(0.02)  # polling a condition, with a deadline
        raise AssertionError(f"condition not reached within {timeout} s; last status: {json.dumps(last, indent=1)}")

    def _all_started(self, status: dict[str, Any]) -> bool:
        return all(child["pid"] is not None for child in status["children"])

    def children(self, status: dict[str, Any] | None = None) -> dict[str, int]:
        """name -> pid of the non-dead_end children."""
        status = status or self.status()
        return {c["name"]: c["pid"] for c in status["children"] if not c["dead_end"] and c["kind"] != "client backend"}

    def _remember(self, status: dict[str, Any]) -> None:
        for child in status["children"]:
            if child["pid"]:
                self._seen.add(child["pid"])

    def pid_status(self) -> str | None:
        contents = pidfile.read(self.datadir)
        return contents.status.value.strip() if contents and contents.status else None

    def backend_pids(self, status: dict[str, Any] | None = None) -> list[int]:
        """PIDs of the client backends (dead_ends excluded) the postmaster knows."""
        status = status or self.status()
        return [c["pid"] for c in status["children"] if c["kind"] == "client backend" and not c["dead_end"] and c["pid"]]

    # -- clients -------------------------------------------------------------------------

    def host(self, *, tcp: bool = False) -> str:
        """Where clients connect: the Unix socket directory, or 127.0.0.1 over TCP."""
        return "127.0.0.1" if tcp else str(self.socket_dir)

    def conninfo(self, *, tcp: bool = False, user: str = "postgres", dbname: str = "postgres", **params: Any) -> str:
        """A libpq connection string (psycopg.connect, psql's dbname) for this cluster."""
        fields = {"host": self.host(tcp=tcp), "port": self.port, "user": user, "dbname": dbname, "connect_timeout": 10, **params}
        return " ".join(f"{name}='{value}'" for name, value in fields.items())

    def client_env(self, *, tcp: bool = False, **extra: str) -> dict[str, str]:
        """The environment for libpq programs (psql, pgbench) aimed at this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=self.host(tcp=tcp), PGPORT=str(self.port), PGUSER="postgres", PGDATABASE="postgres",
                   PGCONNECT_TIMEOUT="10", PSQLRC=os.devnull)  # fmt: skip
        env.update(extra)
        return env

    def psql(self, *args: str, tcp: bool = False, input: str | None = None, env: dict[str, str] | None = None,
             timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run `psql -X -w ARGS` against the cluster (never prompting for a password)."""
        return subprocess.run(
            ["psql", "-X", "-w", *args],
            check=False,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or self.client_env(tcp=tcp),
        )

    # -- acting --------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill_child(self, name: str, sig: int) -> int:
        pid = self.children()[name]
        os.kill(pid, sig)
        return pid

    # -- the end -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop whatever is still running and check that nothing is left behind."""
        if self.process is not None and self.process.poll() is None:
            for proc in psutil.Process(self.pid).children(recursive=True):
                self._seen.add(proc.pid)
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        leftovers = [pid for pid in self._seen if _alive_not_zombie(pid)]
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not leftovers, f"processes left behind: {leftovers}"
        if self.process is not None and self.process.returncode != -signal.SIGKILL:
            # (A SIGKILLed postmaster leaves its socket and lock files, as PostgreSQL's does;
            # the next start removes them.)
            assert not list(self.socket_dir.glob(".s.PGSQL.*")), "socket files left behind"


def _alive_not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_PREFIX = re.compile(r"^\S+ \S+ \S+ \[\d+\] ")


def _strip_prefix(line: str) -> str:
    return _PREFIX.sub("", line, count=1)
