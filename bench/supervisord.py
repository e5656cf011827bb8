"""supervisord for the respawn line: kill -TERM of a supervised `sleep` (autorestart=true) to
its new PID, watched in the process table exactly as the postmasters are.

supervisor is not a pgtop dependency: it is used from the current environment if it is
there, otherwise installed from PyPI (with pip, saying so) into a virtual environment under
~/.cache/pgtop-bench that later runs reuse.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from bench.proctable import poll_until, titled_children

VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pgtop-bench" / "supervisor-venv"
CONFIG = """\
[supervisord]
nodaemon=true
logfile={work}/supervisord.log
pidfile={work}/supervisord.pid
childlogdir={work}
user=root

[program:sleeper]
command=sleep 1000000
autorestart=true
startsecs=0
startretries=1000000
stdout_logfile=NONE
stderr_logfile=NONE
"""


class SupervisorUnavailable(Exception):
    """supervisord could not be found or installed: the line is skipped with this reason."""


def supervisord_command(install: bool = True) -> list[str]:
    """How to run supervisord here, installing it into the bench's venv if needed."""
    try:
        import supervisor  # noqa: F401

        return [sys.executable, "-m", "supervisor.supervisord"]
    except ImportError:
        pass
    python = VENV / "bin" / "python"
    if not python.exists() or subprocess.run([python, "-c", "import supervisor"], capture_output=True, check=False).returncode:
        if not install:
            raise SupervisorUnavailable("supervisor is not installed (run without --no-install to fetch it)")
        print(f"bench: installing supervisor from PyPI into {VENV} (for the bench only, not a pgtop dependency)", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True, capture_output=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "supervisor"], check=True, capture_output=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            stderr = getattr(error, "stderr", b"") or b""
            raise SupervisorUnavailable(f"could not install supervisor: {stderr.decode(errors='replace').strip()[-200:]}") from None
    return [str(python), "-m", "supervisor.supervisord"]


class Supervisord:
    """A supervisord in the foreground with one autorestarted `sleep` program."""

    def __init__(self, command: list[str]) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="pgtop-bench-supervisord-", dir="/tmp"))
        config = self.work / "supervisord.conf"
        config.write_text(CONFIG.format(work=self.work))
        self.process = subprocess.Popen(
            [*command, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def sleeper(self) -> int | None:
        return next((pid for pid, title in titled_children(self.process.pid).items() if title == "sleep"), None)

    def respawn(self) -> float:
        """One trial: ms from kill -TERM of the program to its new PID."""
        old = poll_until(self.sleeper, 30, 0.005)
        began = time.perf_counter()
        os.kill(old, signal.SIGTERM)

        def replaced() -> float | None:
            pid = self.sleeper()
            return time.perf_counter() if pid is not None and pid != old else None

        return (poll_until(replaced, 30) - began) * 1000

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # supervisord stops its programs first
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                for pid in titled_children(self.process.pid):
                    os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def supervisord_respawns(trials: int, install: bool = True) -> list[float]:
    with Supervisord(supervisord_command(install)) as supervisord:
        return [supervisord.respawn() for _ in range(trials)]
