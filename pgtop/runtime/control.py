"""Controlling a running postmaster: by signals and files, as pg_ctl does, and through a
control socket in the data directory that answers `pgtop ctl status --json` and lets other
viewers (served dashboards) follow the live state.

Commands never bypass the postmaster: reload and shutdown are real signals to the pgtop
process, so a key press and a `kill` typed in another terminal take the same path.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgtop.common.shmem_records import format_lsn
from pgtop.core.vocabulary import ChildKind, ConnsAllowed, Shutdown, Sig
from pgtop.runtime.snapshot import (
    CommandRefused,
    LogRecord,
    ReplicationProgress,
    ShutdownMode,
    Snapshot,
)

if TYPE_CHECKING:
    from pgtop.runtime.supervisor import Supervisor

CONTROL_SOCKET = "pgtop.ctl"
SHUTDOWN_NAMES = {
    Shutdown.NO: "NoShutdown",
    Shutdown.SMART: "SmartShutdown",
    Shutdown.FAST: "FastShutdown",
    Shutdown.IMMEDIATE: "ImmediateShutdown",
}


def status_dict(snapshot: Snapshot) -> dict[str, Any]:
    """The live state as `pgtop ctl status --json` prints it."""
    state = snapshot.state
    children = []
    for child in sorted(state.children.values(), key=lambda c: c.id):
        last = state.last_exit(child.lineage_key)
        children.append(
            {
                "kind": child.kind.value,
                "name": child.bgworker or child.kind.value,
                "pid": child.pid,
                "start_time": child.started_at,
                "dead_end": child.dead_end,
                "restarts": state.restarts.get(child.lineage_key, 0),
                "last_exit": (last.status.describe() if last.status is not None else "unknown") if last else None,
                "previous_pid": last.pid if last else None,
            }
        )
    return {
        "postmaster_pid": snapshot.postmaster_pid,
        "data_directory": snapshot.data_dir,
        "port": snapshot.port,
        "pm_state": state.pm_state.pg_name,
        "shutdown": SHUTDOWN_NAMES[state.shutdown],
        "fatal_error": state.fatal_error,
        "conns_allowed": ConnsAllowed(state.conns_allowed).value,
        "startup_status": state.startup_status.name,
        "pid_status": state.pid_status.value.strip() if state.pid_status else None,
        "exit_code": state.exit_code,
        "children": children,
        "replication": _replication(snapshot.replication),
    }


def _replication(progress: ReplicationProgress | None) -> dict[str, object] | None:
    """pg_stat_replication / pg_stat_wal_receiver's positions, as PostgreSQL prints LSNs."""
    if progress is None:
        return None
    return {
        "role": progress.role,
        "streaming": progress.streaming,
        "wal_end_lsn": format_lsn(progress.wal_end),
        "flush_lsn": format_lsn(progress.flushed),
        "replay_lsn": format_lsn(progress.replayed),
        "replay_lag_bytes": progress.lag_bytes,
        "last_message_time": progress.heard_at or None,
    }


def signal_pinned(pid: int, started_at: float, sig: Sig, known: Snapshot | None) -> None:
    """Signal a child only if it is still the process the viewer saw: the same PID with the
    same start time in the postmaster's own child table. The postmaster is the parent, so
    a PID cannot be reused before the postmaster has reaped it and dropped it from the
    table: the pin is exact, with no guess from the kernel's start time."""
    children = known.state.children.values() if known is not None else ()
    if not any(c.pid == pid for c in children):
        raise CommandRefused(f"process {pid} is not a child of this postmaster (any more)")
    if not any(c.pid == pid and c.started_at == started_at for c in children):
        raise CommandRefused(f"process {pid} is not the one shown any more (its PID was reused)")
    try:
        os.kill(pid, int(sig))
    except ProcessLookupError:
        raise CommandRefused(f"process {pid} has already exited") from None
    except PermissionError:
        raise CommandRefused(f"not allowed to signal process {pid}") from None


class LocalController:
    """The Controller of a supervisor in this process: every command is a real signal."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def _signal_postmaster(self, sig: Sig) -> None:
        if self.supervisor.exit_code is not None:
            raise CommandRefused("the postmaster is not running")
        os.kill(self.supervisor.pid, int(sig))

    def reload(self) -> None:
        self._signal_postmaster(Sig.HUP)

    def shutdown(self, mode: ShutdownMode) -> None:
        self._signal_postmaster(mode.signal)

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        signal_pinned(pid, started_at, signal, self.supervisor.snapshots.latest)

    def promote(self) -> None:
        state = self.supervisor.state
        if state is None or not any(c.kind is ChildKind.STARTUP for c in state.children.values()):
            raise CommandRefused("cannot promote: the server is not in standby mode")
        (self.supervisor.datadir / "promote").touch()
        self._signal_postmaster(Sig.USR1)

    def logrotate(self) -> None:
        (self.supervisor.datadir / "logrotate").touch()
        self._signal_postmaster(Sig.USR1)

    def start(self) -> None:
        raise CommandRefused("the cluster is already running")


# -- the control socket ------------------------------------------------------------------


def control_socket_path(datadir: str | Path) -> Path:
    return Path(datadir) / CONTROL_SOCKET


class ControlServer:
    """Answers one JSON request per line on a Unix socket only the owner may open."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.path = control_socket_path(supervisor.datadir)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if len(os.fsencode(self.path)) >= 108:
            return  # too long for a Unix socket: status --json will say so
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        sock.listen(16)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="pgtop-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        self.path.unlink(missing_ok=True)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _serve(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            try:
                line = conn.makefile("rb").readline(65536)
                request = json.loads(line or b"{}")
                if request.get("op") == "subscribe":
                    self._stream(conn)
                    return
                reply = self._answer(request)
            except (ValueError, AttributeError) as error:
                reply = {"error": f"bad request: {error}"}
            except OSError:
                return
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":  # shared-memory figures (replication) move without a state change
            self.supervisor.snapshots.publish(force=True)
        snapshot = self.supervisor.snapshots.latest
        if op == "status":
            if snapshot is None:
                return {"error": "the postmaster is starting"}
            return {"status": status_dict(snapshot)}
        if op == "signal_child":
            try:
                signal_pinned(int(request["pid"]), float(request["started_at"]), Sig(int(request["signal"])), snapshot)
            except CommandRefused as refused:
                return {"error": str(refused)}
            return {"ok": True}
        return {"error": f"unknown request {op!r}"}

    def _stream(self, conn: socket.socket) -> None:
        """Snapshots and log records, pickled and length-prefixed, until either side goes."""
        done = threading.Event()
        lock = threading.Lock()

        def send(item: Snapshot | LogRecord) -> None:
            payload = pickle.dumps(item)
            try:
                with lock:
                    conn.sendall(struct.pack("!I", len(payload)) + payload)
            except OSError:
                done.set()

        for record in list(self.supervisor.log.recent):  # the history a late viewer missed
            send(record)
        self.supervisor.snapshots.start_sampling()  # viewers show CPU and RSS
        self.supervisor.snapshots.subscribe(send)
        self.supervisor.log.sinks.append(send)
        try:
            # Until the postmaster has finished: the last snapshot carries its exit code.
            while not done.is_set() and not self.supervisor.finished.is_set():
                done.wait(0.5)
        finally:
            self.supervisor.snapshots.unsubscribe(send)
            if send in self.supervisor.log.sinks:
                self.supervisor.log.sinks.remove(send)


def request(datadir: str | Path, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request to a running postmaster's control socket."""
    path = control_socket_path(datadir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = sock.makefile("rb").readline()
    return json.loads(data)

