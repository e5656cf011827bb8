"""A throwaway real PostgreSQL cluster: initdb in a temporary directory, a free port, a log
file to follow, and nothing left behind on close.

PostgreSQL refuses to run as root, so as root every server command runs as `postgres`
through `runuser -u postgres --`; as anyone else it runs directly. The directory holds the
data directory, the Unix socket and the log (`pg_ctl -l`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psutil

from pgtop.attach.locate import PID_FILE, read_lock_file
from pgtop.runtime.datadir import find_free_port

SERVER_USER = "postgres"  # who runs the server when pgtop runs as root
START_TIMEOUT = 30
STOP_TIMEOUT = 30


class SpawnError(Exception):
    """The throwaway cluster could not be made; the message is one line."""


def find_binary(name: str) -> Path | None:
    """A PostgreSQL program: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return Path(found)
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(versions[-1]) if versions else None


def missing_binaries() -> list[str]:
    return [name for name in ("initdb", "pg_ctl", "postgres") if find_binary(name) is None]


class ThrowawayCluster:
    """A real cluster in a temporary directory; `close()` stops it and deletes everything."""

    def __init__(self, *, port: int | None = None, settings: dict[str, str] | None = None, base: Path | None = None) -> None:
        missing = missing_binaries()
        if missing:
            raise SpawnError(f"PostgreSQL is not installed: {', '.join(missing)} not found on PATH or in /usr/lib/postgresql/*/bin")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.owner = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise SpawnError(f"running as root, but there is no {SERVER_USER!r} user to run the server as") from None
        else:
            self.owner = pwd.getpwuid(os.geteuid())
        self.root = Path(tempfile.mkdtemp(prefix="pgtop-attach-", dir=base))
        os.chmod(self.root, 0o755)  # the socket is there: let other users reach it
        if self.as_root:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self.data_dir = self.root / "data"
        self.log_path = self.root / "server.log"
        self.socket_dir = self.root
        self.port = port or find_free_port(54320, self.socket_dir)
        # fsync=off: a throwaway cluster loses nothing, and crash recovery skips syncing
        # the whole data directory, so a crash cycle takes a blink rather than seconds.
        self.settings = {"listen_addresses": "localhost", "fsync": "off", **(settings or {})}

    # -- running server commands as the right user ---------------------------------------------

    def _command(self, name: str, *args: str) -> list[str]:
        program = str(find_binary(name))
        prefix = ["runuser", "-u", SERVER_USER, "--"] if self.as_root else []
        return [*prefix, program, *args]

    def _run(self, name: str, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(self._command(name, *args), check=False, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()
            raise SpawnError(f"{name} failed: {last[-1] if last else f'exit code {result.returncode}'}")

    # -- the cluster's life ------------------------------------------------------------------

    def initdb(self, template: Path | None = None) -> None:
        """A fresh data directory (copied from `template` if given: much faster than initdb)."""
        if template is not None:
            subprocess.run(["cp", "-a", str(template), str(self.data_dir)], check=True)
            return
        self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.owner.pw_name if not self.as_root else SERVER_USER, "--no-sync", "-E", "UTF8", "--locale=C")

    def start(self) -> int:
        """Start the server, wait until it accepts connections; the postmaster's PID."""
        options = " ".join([f"-p {self.port}", f"-k {self.socket_dir}", *(f"-c {k}={v}" for k, v in self.settings.items())])
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "-t", str(START_TIMEOUT), "-s", "start", timeout=START_TIMEOUT + 10)
        pid = self.postmaster_pid()
        if pid is None:
            raise SpawnError(f"the server did not start: see {self.log_path}")
        return pid

    def postmaster_pid(self) -> int | None:
        """The running postmaster's PID, None if there is none."""
        lock = read_lock_file(self.data_dir / PID_FILE)
        if lock is None or not psutil.pid_exists(lock.pid):
            return None
        return lock.pid

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop, escalating to immediate, then SIGKILL: the server is gone after this."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        for how in (mode, "immediate"):
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", how, "-w", "-t", str(STOP_TIMEOUT), "-s", "stop", timeout=STOP_TIMEOUT + 10)
                break
            except (SpawnError, subprocess.TimeoutExpired):
                continue
        self._kill_leftovers(pid)

    def _kill_leftovers(self, pid: int) -> None:
        """SIGKILL whatever of the server still runs (a zombie is already over: init reaps
        it, as the postmaster is not our child)."""
        try:
            postmaster = psutil.Process(pid)
            family = [postmaster, *postmaster.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        alive = []
        for process in family:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    process.send_signal(signal.SIGKILL)
                    alive.append(process)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)

    def close(self) -> None:
        """Stop the server (fast) and delete the directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
