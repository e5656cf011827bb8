"""A tiny threaded PostgreSQL server for the tests: one thread per connection runs
read_startup_packet, optional password authentication and a Session over the SQL engine with
in-memory storage. Cancel requests and pg_terminate_backend work across its sessions."""

from __future__ import annotations

import itertools
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

from pgtop.runtime.snapshot import BackendActivity
from pgtop.sql import Engine, MemoryDatabase, MemoryEnvironment, MemoryStorage
from pgtop.wire import (
    ADMIN_SHUTDOWN,
    CancelRequest,
    ConnectionLost,
    Diagnostic,
    Ending,
    Interrupts,
    MessageStream,
    ProtocolViolation,
    Session,
    messages,
    read_startup_packet,
    violation_response,
)
from pgtop.wire.auth import (
    check_cleartext_password,
    check_md5_response,
    password_authentication_failed,
    request_cleartext_password,
    request_md5_password,
)

PARAMETERS = {"server_version": "14.13", "application_name": ""}


@dataclass
class Backend:
    pid: int
    key: int
    session: Session
    started: float
    user: str
    database: str
    application_name: str
    client_addr: str
    state: str = "starting"
    query: str = ""
    state_change: float = field(default_factory=time.time)


class ThreadedServer:
    def __init__(self, password: str | None = None, auth_method: str = "md5") -> None:
        self.password = password
        self.auth_method = auth_method
        self.database = MemoryDatabase()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.backends: dict[int, Backend] = {}
        self.endings: list[Ending] = []
        self.startup_errors: list[ProtocolViolation] = []
        self.log: list[tuple[int, Diagnostic, str | None]] = []
        self.cancels: list[CancelRequest] = []
        self._pids = itertools.count(50001)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._stopping = False
        self._accepter = threading.Thread(target=self._accept_loop, name="test-server", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping = True
        try:
            # Wake accept() by connecting once, then close the listener.
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self._accepter.join(5)
        self.listener.close()
        with self._lock:
            backends = list(self.backends.values())
        for backend in backends:
            backend.session.terminate(ADMIN_SHUTDOWN)
        for thread in list(self._threads):
            thread.join(5)
        for sock in self._sockets:
            sock.close()
        assert not any(t.is_alive() for t in self._threads), "a connection thread did not end"

    @property
    def alive(self) -> bool:
        return self._accepter.is_alive()

    def wait_for(self, predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.01)

    # -- serving ------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn, address = self.listener.accept()
            except OSError:
                return
            if self._stopping:
                conn.close()
                return
            self._sockets.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, address[0]), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, address: str) -> None:
        try:
            with conn:
                conn.settimeout(10)  # authentication_timeout
                stream = MessageStream(conn)
                try:
                    packet = read_startup_packet(stream)
                except ProtocolViolation as violation:
                    self.startup_errors.append(violation)
                    conn.sendall(violation_response(violation))
                    return
                except ConnectionLost:
                    return
                if isinstance(packet, CancelRequest):
                    self._cancel(packet)
                    return
                if self.password is not None and not self._authenticate(stream, packet.user):
                    return
                conn.settimeout(None)
                self._run_session(conn, stream, packet, address)
        except OSError:
            pass

    def _authenticate(self, stream: MessageStream, user: str) -> bool:
        assert self.password is not None
        try:
            if self.auth_method == "md5":
                salt, response = request_md5_password(stream)
                ok = check_md5_response(user, self.password, salt, response)
            else:
                ok = check_cleartext_password(self.password, request_cleartext_password(stream))
        except (ConnectionLost, ProtocolViolation):
            return False
        if not ok:
            stream.send(messages.error_response(password_authentication_failed(user).diagnostic))
            stream.flush()
        return ok

    def _run_session(self, conn: socket.socket, stream: MessageStream, packet, address: str) -> None:  # type: ignore[no-untyped-def]
        pid, key = next(self._pids), secrets.randbits(32)
        interrupts = Interrupts()
        env = MemoryEnvironment(pid, interrupts=interrupts, terminate=self._terminate,
                                cancel=self._cancel_pid, activity=self._activity)
        engine = Engine(env, MemoryStorage(self.database))
        session = Session(stream, packet, pid=pid, secret_key=key, parameters=PARAMETERS, executor=engine,
                          interrupts=interrupts, on_activity=lambda s, q: self._note(pid, s, q),
                          on_log=lambda d, q, c: self.log.append((pid, d, q)))
        backend = Backend(pid, key, session, time.time(), packet.user, packet.database,
                          packet.application_name, address)
        with self._lock:
            self.backends[pid] = backend
        try:
            self.endings.append(session.run())
        finally:
            conn.close()  # as a backend's exit would, before it leaves the table
            with self._lock:
                del self.backends[pid]
            interrupts.close()

    # -- what the environment asks ------------------------------------------------------------

    def _note(self, pid: int, state: str, query: str) -> None:
        backend = self.backends.get(pid)
        if backend is not None:
            backend.state, backend.query, backend.state_change = state, query, time.time()

    def _activity(self) -> list[BackendActivity]:
        with self._lock:
            return [BackendActivity(b.pid, "client backend", b.user, b.database, b.application_name,
                                    b.client_addr, b.state, b.query, b.started, b.state_change)
                    for b in self.backends.values()]

    def _terminate(self, pid: int) -> bool:
        backend = self.backends.get(pid)
        if backend is None:
            return False
        backend.session.terminate(ADMIN_SHUTDOWN)
        return True

    def _cancel_pid(self, pid: int) -> bool:
        backend = self.backends.get(pid)
        if backend is None:
            return False
        backend.session.cancel()
        return True

    def _cancel(self, request: CancelRequest) -> None:
        self.cancels.append(request)
        backend = self.backends.get(request.pid)
        if backend is not None and backend.key == request.key:
            backend.session.cancel()
