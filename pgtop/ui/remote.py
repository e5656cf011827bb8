"""`pgtop view -D DIR`: the dashboard attached to a `pgtop run` that is already running.

The viewer runs no supervisor of its own. It follows the postmaster through the control
socket's subscribe stream (snapshots and log records) and commands it as pg_ctl does: real
signals to the PID in postmaster.pid, and child signals through the control socket, which
pins each child by PID and start time. Any number of viewers can watch one cluster; leaving a
viewer leaves the cluster running. When the postmaster goes, the viewer says so and attaches
to the next one that starts in the same directory.

The stream carries pickles; it is read only from the control socket, which only the owner
of the data directory can open (mode 0600), like the data directory itself.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pgtop.core.vocabulary import ChildKind, LogLevel, Sig
from pgtop.runtime import pidfile
from pgtop.runtime.control import control_socket_path, request
from pgtop.runtime.snapshot import CommandRefused, LogRecord, ShutdownMode, Snapshot
from pgtop.ui.app import PgtopApp

RECONNECT_INTERVAL = 0.5  # seconds between attempts to reach a (new) postmaster
MAX_FRAME = 64 * 1024 * 1024


class Sink(Protocol):
    def post_snapshot(self, snapshot: Snapshot) -> None: ...

    def post_log(self, record: LogRecord) -> None: ...


class SnapshotStream(threading.Thread):
    """Reads the subscribe stream and hands each item on; re-attaches after the postmaster
    goes. `on_status` hears "attached" and "detached" as they happen."""

    def __init__(
        self,
        datadir: Path,
        on_snapshot: Callable[[Snapshot], None],
        on_log: Callable[[LogRecord], None],
        on_status: Callable[[str], None],
    ) -> None:
        super().__init__(name="pgtop-view-stream", daemon=True)
        self.datadir = datadir
        self.on_snapshot = on_snapshot
        self.on_log = on_log
        self.on_status = on_status
        self._stopping = threading.Event()
        self._sock: socket.socket | None = None
        self.attached = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._follow()
            except (OSError, EOFError, pickle.UnpicklingError, ValueError):
                pass
            if self.attached.is_set():
                self.attached.clear()
                self.on_status("detached")
            self._stopping.wait(RECONNECT_INTERVAL)

    def _follow(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = sock
        try:
            sock.connect(str(control_socket_path(self.datadir)))
            sock.sendall(b'{"op": "subscribe"}\n')
            reader = sock.makefile("rb")
            while not self._stopping.is_set():
                item = _read_frame(reader)
                if not self.attached.is_set():
                    self.attached.set()
                    self.on_status("attached")
                if isinstance(item, Snapshot):
                    self.on_snapshot(item)
                elif isinstance(item, LogRecord):
                    self.on_log(item)
        finally:
            self._sock = None
            sock.close()

    def stop(self) -> None:
        self._stopping.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.is_alive():
            self.join(timeout=2)


def _read_frame(reader) -> object:
    header = reader.read(4)
    if len(header) < 4:
        raise EOFError("the postmaster closed the stream")
    (length,) = struct.unpack("!I", header)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes")
    payload = reader.read(length)
    if len(payload) < length:
        raise EOFError("the stream ended inside a frame")
    return pickle.loads(payload)


class RemoteController:
    """The Controller of a postmaster in another process: pg_ctl's ways, and the control
    socket for children (pinned by PID and start time)."""

    def __init__(self, datadir: str | Path) -> None:
        self.datadir = Path(datadir)
        self.latest: Snapshot | None = None
        self._stream: SnapshotStream | None = None

    # -- following -------------------------------------------------------------------------

    def attach(self, sink: Sink) -> None:
        """Start following the cluster; everything goes to `sink` (the dashboard)."""

        def on_snapshot(snapshot: Snapshot) -> None:
            self.latest = snapshot
            sink.post_snapshot(snapshot)

        def on_status(status: str) -> None:
            if status == "detached":
                sink.post_log(_note("the postmaster is gone; waiting for one to start in this directory"))
            else:
                sink.post_log(_note(f"attached to the postmaster of {self.datadir}"))

        self._stream = SnapshotStream(self.datadir, on_snapshot, sink.post_log, on_status)
        self._stream.start()

    def close(self) -> None:
        """Stop following; the cluster itself goes on."""
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    # -- commands --------------------------------------------------------------------------

    def _postmaster_pid(self) -> int:
        contents = pidfile.read(self.datadir)
        if contents is None or not pidfile.postmaster_alive(contents.pid):
            raise CommandRefused(f"no server running in {self.datadir}")
        return contents.pid

    def _signal_postmaster(self, sig: Sig) -> None:
        pid = self._postmaster_pid()
        try:
            os.kill(pid, int(sig))
        except ProcessLookupError:
            raise CommandRefused("the postmaster has just exited") from None
        except PermissionError:
            raise CommandRefused(f"not allowed to signal the postmaster (PID {pid})") from None

    def reload(self) -> None:
        self._signal_postmaster(Sig.HUP)

    def shutdown(self, mode: ShutdownMode) -> None:
        self._signal_postmaster(mode.signal)

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        payload = {"op": "signal_child", "pid": pid, "started_at": started_at, "signal": int(signal)}
        try:
            reply = request(self.datadir, payload)
        except (OSError, ValueError) as error:
            raise CommandRefused(f"the postmaster's control socket does not answer: {error}") from None
        if "error" in reply:
            raise CommandRefused(str(reply["error"]))

    def promote(self) -> None:
        state = self.latest.state if self.latest is not None else None
        if state is None or state.special(ChildKind.STARTUP) is None:
            raise CommandRefused("cannot promote: the server is not in standby mode")
        self._postmaster_pid()
        (self.datadir / "promote").touch()
        self._signal_postmaster(Sig.USR1)

    def logrotate(self) -> None:
        self._postmaster_pid()
        (self.datadir / "logrotate").touch()
        self._signal_postmaster(Sig.USR1)

    def start(self) -> None:
        raise CommandRefused(f"this viewer does not run the cluster: start it with `pgtop run -D {self.datadir}`")


class ViewerApp(PgtopApp):
    """The dashboard as a viewer: quitting leaves the cluster running for everyone else."""

    def action_quit(self) -> None:
        self.finish_quit()


def _note(message: str) -> LogRecord:
    """A line of the viewer's own in the server log pane."""
    return LogRecord(time.time(), 0, "pgtop view", LogLevel.LOG, message, text=f"pgtop view: {message}")


