"""The demo's clients, real ones over the wire protocol (psycopg): a load that INSERTs and
commits row after row and retries when refused, idle sessions that poll, and one-off
connection attempts. Every message a client gets from the server is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

LOAD_TABLE = "demo_load"
LOAD_INTERVAL = 0.05  # seconds between INSERTs: a small, visible load
RETRY_INTERVAL = 0.3  # seconds before a refused client tries again
SESSION_POLL = 0.25  # an idle session's "select 1" cadence, so it notices its end
CONNECT_TIMEOUT = 3
DATABASE = "postgres"
USER = "postgres"

Report = Callable[[str], None]


def describe(error: BaseException) -> str:
    """One line: the server's own message where there is one."""
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return " ".join(primary.split())
    text = " ".join(str(error).split())
    return text or type(error).__name__


class Endpoint:
    """Where the demo cluster listens."""

    def __init__(self, socket_dir: str, port: int) -> None:
        self.socket_dir = socket_dir
        self.port = port

    def connect(self, report: Report | None = None, **options: Any) -> Any:
        import psycopg  # a test-and-demo dependency, imported only when clients are used

        conn = psycopg.connect(
            host=self.socket_dir,
            port=self.port,
            user=USER,
            dbname=DATABASE,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="pgtop demo",
            autocommit=True,
            **options,
        )
        if report is not None:
            conn.add_notice_handler(lambda diag: report(f"{diag.severity}: {diag.message_primary}"))
        return conn


class Load(threading.Thread):
    """INSERT, commit, repeat. `committed` counts the commits the server acknowledged."""

    def __init__(self, endpoint: Endpoint, report: Report) -> None:
        super().__init__(name="pgtop-demo-load", daemon=True)
        self.endpoint = endpoint
        self.report = report
        self.committed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.endpoint.connect(self.report) as conn:
                    conn.execute(f"create table if not exists {LOAD_TABLE} (n int)")
                    while not self.stopping.is_set():
                        conn.execute(f"insert into {LOAD_TABLE} values (%s)", [self.committed + 1])
                        self.committed += 1
                        self.stopping.wait(LOAD_INTERVAL)
            except Exception as error:  # noqa: BLE001 - any failure: report it, retry
                self.report(describe(error))
                self.stopping.wait(RETRY_INTERVAL)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=CONNECT_TIMEOUT + 2)


class Session(threading.Thread):
    """An idle client session; it polls so it notices when the server ends it."""

    def __init__(self, endpoint: Endpoint, report: Report) -> None:
        super().__init__(name="pgtop-demo-session", daemon=True)
        self.endpoint = endpoint
        self.report = report
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            with self.endpoint.connect(self.report) as conn:
                self.connected.set()
                while not self.stopping.wait(SESSION_POLL):
                    conn.execute("select 1")
        except Exception as error:  # noqa: BLE001 - the session's end is the news
            self.report(describe(error))
        finally:
            self.ended.set()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=CONNECT_TIMEOUT + 2)


class Clients:
    """The load and the sessions of one demo."""

    def __init__(self, endpoint: Endpoint, report: Report) -> None:
        self.endpoint = endpoint
        self.report = report
        self.load: Load | None = None
        self.sessions: list[Session] = []
        self.committed_before = 0  # commits of earlier loads in this cluster's life

    @property
    def load_running(self) -> bool:
        return self.load is not None

    @property
    def committed(self) -> int:
        return self.committed_before + (self.load.committed if self.load is not None else 0)

    def set_load(self, on: bool) -> str:
        if on and self.load is None:
            self.load = Load(self.endpoint, self.report)
            self.load.start()
            return f"client load on: one client INSERTs into {LOAD_TABLE} and commits each row"
        if not on and self.load is not None:
            self.load.stop()
            self.committed_before += self.load.committed
            self.load = None
            return f"client load off: {self.committed} rows committed"
        return f"client load already {'on' if on else 'off'}"

    def toggle_load(self) -> str:
        return self.set_load(not self.load_running)

    def open_sessions(self, count: int, timeout: float = CONNECT_TIMEOUT + 2) -> int:
        """Open `count` more sessions; how many connected within the timeout."""
        opened = [Session(self.endpoint, self.report) for _ in range(count)]
        for session in opened:
            session.start()
        self.sessions.extend(opened)
        connected = 0
        for session in opened:
            if session.connected.wait(timeout) or session.connected.is_set():
                connected += 1
        return connected

    def close_sessions(self) -> None:
        for session in self.sessions:
            session.stop()
        self.sessions.clear()

    def count_rows(self) -> int:
        with self.endpoint.connect() as conn:
            row = conn.execute(f"select count(*) from {LOAD_TABLE}").fetchone()
        return int(row[0])

    def try_connect(self) -> str | None:
        """A new connection: the server's refusal, or None if it was accepted."""
        try:
            with self.endpoint.connect() as conn:
                conn.execute("select 1")
        except Exception as error:  # noqa: BLE001 - the refusal is the answer
            return describe(error)
        return None

    def forget_rows(self) -> None:
        """A fresh data directory: nothing was committed in it yet."""
        self.committed_before = 0

    def close(self) -> None:
        if self.load is not None:
            self.set_load(False)
        self.close_sessions()
