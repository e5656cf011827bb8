"""Where a demo plays: a throwaway cluster in a temporary directory, the real supervisor
running it in this process, and the demo's clients.

`DemoController` is the dashboard's own controller (every command a real signal) plus the
two extras a demo offers: client load and client sessions. The data directory is made fresh
for each play and removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgtop.core.config import Config
from pgtop.demo.clients import Clients, Endpoint
from pgtop.demo.observer import Observer
from pgtop.runtime.background import BackgroundCluster
from pgtop.runtime.datadir import CONTROL_FILE, find_free_port, init_datadir
from pgtop.runtime.serverlog import ServerLog
from pgtop.runtime.snapshot import CommandRefused
from pgtop.runtime.supervisor import StartupError
from pgtop.ui.launch import DashboardController

CONFIG_FILE = "pgtop.yaml"


def _free_port(socket_dir: Path) -> int:
    with socket.socket() as probe:  # let the kernel pick, then check as initdb's caller would
        probe.bind(("127.0.0.1", 0))
        start = probe.getsockname()[1]
    return find_free_port(start, socket_dir)


def yaml_line(name: str, value: Any) -> str:
    """One pgtop.yaml line; booleans as on/off, text quoted so YAML keeps it text."""
    if isinstance(value, bool):
        return f"{name}: {'on' if value else 'off'}"
    return f"{name}: {json.dumps(value)}"


class ThrowawayCluster:
    """A data directory of its own under a fresh temporary directory."""

    def __init__(
        self, settings: Iterable[tuple[str, Any]] = (), parent: Path | None = None, *, standby_of: str | None = None
    ) -> None:
        self.settings = tuple(settings)
        self.standby_of = standby_of
        self.root = Path(tempfile.mkdtemp(prefix="pgtop-demo-", dir=parent))
        self.datadir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.socket_dir.mkdir()
        self.port = _free_port(self.socket_dir)
        self._initial_config = ""
        self.create()

    def create(self) -> None:
        """initdb, then the scenario's settings (the socket in our own directory)."""
        init_datadir(self.datadir, port=self.port, standby_of=self.standby_of)
        self.set({"unix_socket_directories": str(self.socket_dir), **dict(self.settings)})
        self._initial_config = self.config_file.read_text()

    def recreate(self) -> None:
        shutil.rmtree(self.datadir, ignore_errors=True)
        self.create()

    @property
    def config_file(self) -> Path:
        return self.datadir / CONFIG_FILE

    def set(self, settings: dict[str, Any]) -> None:
        """Set parameters: earlier lines for the same names go (a name twice is an error)."""
        names = {name.lower() for name in settings}
        lines = self.config_file.read_text().splitlines()
        kept = [line for line in lines if line.split(":", 1)[0].strip().lower() not in names]
        kept += [yaml_line(name, value) for name, value in settings.items()]
        self.config_file.write_text("\n".join(kept) + "\n")

    def append(self, text: str) -> None:
        with self.config_file.open("a") as file:
            file.write(text if text.endswith("\n") else text + "\n")

    def revert(self) -> None:
        """The file as the scenario started with it."""
        self.config_file.write_text(self._initial_config)

    def corrupt_control_file(self) -> None:
        """Flip one byte of pg_control's system identifier: the checksum no longer matches.
        (Most of the file is padding that no checksum covers.)"""
        path = self.datadir / CONTROL_FILE
        data = bytearray(path.read_bytes())
        data[0] ^= 0xFF
        path.write_bytes(bytes(data))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PrimaryCluster:
    """For standby scenarios: a second throwaway cluster, run by `pgtop run` in the
    background, that the demo's cluster streams from."""

    def __init__(self, parent: Path | None = None) -> None:
        self.cluster = ThrowawayCluster(parent=parent)
        self.background = BackgroundCluster(self.cluster.datadir, self.cluster.root / "primary.log")

    @property
    def conninfo(self) -> str:
        return f"host={self.cluster.socket_dir} port={self.cluster.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait for PM_RUN. Raises CommandRefused."""
        self.background.start()
        reason = self.background.wait_ready(timeout)
        if reason is not None:
            raise CommandRefused(f"the primary did not start: {reason}")

    def stop(self) -> None:
        self.background.stop()
        self.cluster.remove()


class DemoController(DashboardController):
    """The dashboard's controller on a throwaway cluster, with client load and sessions."""

    def __init__(self, cluster: ThrowawayCluster, observer: Observer, terminal: tuple[int, ...] = ()) -> None:
        super().__init__(cluster.datadir, terminal)
        self.cluster = cluster
        self.observer = observer
        self.clients = Clients(Endpoint(str(cluster.socket_dir), cluster.port), observer.client_message)
        self.startup_error: StartupError | None = None

    def launch(self) -> None:
        """As the dashboard's, but a postmaster that cannot start still says why in the log
        and leaves its exit code for the demo to check."""
        self.startup_error = None
        try:
            super().launch()
        except StartupError as error:
            self.startup_error = error
            log = ServerLog(Config(), os.getpid(), stderr_fd=None)
            if self.app is not None:
                log.sinks.append(self.app.post_log)  # type: ignore[attr-defined]
            log.write_startup_failure(error)
            raise

    @property
    def exit_code(self) -> int | None:
        if self.startup_error is not None:
            return self.startup_error.exit_code
        return self.supervisor.exit_code if self.supervisor is not None else None

    @property
    def running(self) -> bool:
        return self.supervisor is not None and self.supervisor.exit_code is None

    # -- the dashboard's optional extras -------------------------------------------------

    def load_toggle(self) -> str:
        return self.clients.toggle_load()

    def open_session(self) -> str:
        if not self.running:
            raise CommandRefused("no cluster running: no session opened")
        connected = self.clients.open_sessions(1)
        return "client session opened" if connected else "client session refused (see the server log)"

    def close(self) -> None:
        self.clients.close()
        super().close()
