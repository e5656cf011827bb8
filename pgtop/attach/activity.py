"""Backend activity of a real server: pg_stat_activity when a connection is possible,
otherwise what each session's process title says.

psycopg is optional. The connection goes over the Unix socket as the current user, the
server's owner, then `postgres`; if none may connect, pgtop says so once and does not keep
knocking (each refused attempt is a FATAL line in the server's log). The connection is a
client backend like any other, so it is closed the moment a shutdown is seen: a smart
shutdown waits for every client, pgtop's own included.
"""

from __future__ import annotations

import getpass
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgtop.attach.titles import ProcessTitle
from pgtop.core.vocabulary import ChildKind
from pgtop.runtime.snapshot import BackendActivity

try:  # the optional extra
    import psycopg
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None

POLL_INTERVAL = 1.5  # seconds between two reads of pg_stat_activity
RETRY_INTERVAL = 2.0  # after a connection that worked was lost (a crash, a restart)
APPLICATION_NAME = "pgtop attach"
QUERY = """
select pid, coalesce(backend_type, ''), coalesce(usename, ''), coalesce(datname, ''),
       coalesce(application_name, ''), client_addr::text, coalesce(state, ''),
       coalesce(query, ''), extract(epoch from backend_start)::float8,
       coalesce(extract(epoch from state_change)::float8, 0)
from pg_stat_activity
"""
SESSION_KINDS = frozenset({ChildKind.BACKEND, ChildKind.WALSENDER, ChildKind.AUTOVAC_WORKER})


def activity_from_titles(sessions: Iterable[tuple[int, float, ProcessTitle]]) -> tuple[BackendActivity, ...]:
    """(pid, start time, title) of each session as rows: the title gives user, database,
    client and state or command tag; the query text is not visible there."""
    rows = []
    for pid, started_at, title in sessions:
        if title.kind not in SESSION_KINDS:
            continue
        words = title.state
        idle = words.startswith("idle") or words in ("", "startup", "authentication", "starting")
        rows.append(
            BackendActivity(
                pid=pid,
                backend_type=title.kind.value,
                user=title.user,
                database=title.database,
                application_name="",
                client_addr=title.host,
                state=words if idle else "active",
                query="" if idle else words,
                backend_start=started_at,
                state_change=0.0,
            )
        )
    return tuple(rows)


class ActivityReader:
    """Reads pg_stat_activity in a thread of its own, only while `allowed`."""

    def __init__(self, *, socket_dirs: Iterable[Path], port: int, owner: str, interval: float = POLL_INTERVAL) -> None:
        self.socket_dirs = [str(d) for d in socket_dirs]
        self.port = port
        # As root, the owner first: "root" is rarely a role, and each refusal is a FATAL line.
        first = [owner] if os.geteuid() == 0 else [getpass.getuser(), owner]
        self.users = list(dict.fromkeys([*first, "postgres"]))
        self.interval = interval
        self.latest: tuple[BackendActivity, ...] | None = None  # None: not connected
        self.problem: str | None = None if psycopg is not None else "psycopg is not installed"
        self.backend_pid: int | None = None
        self._allowed = False
        self._connection: Any = None
        self._ever_connected = False
        self._gave_up = psycopg is None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgtop-attach-activity", daemon=True)

    @property
    def allowed(self) -> bool:
        return self._allowed

    @allowed.setter
    def allowed(self, value: bool) -> None:
        """Connect only while the server runs normally; closing happens at once."""
        if value != self._allowed:
            self._allowed = value
            self._wake.set()

    def start(self) -> None:
        if not self._gave_up:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._allowed:
                self._close()
            elif self._connection is None and not self._gave_up:
                self._connect()
            if self._connection is not None and self._allowed:
                self._read()
            retry = self._connection is None and self._ever_connected and self._allowed
            self._wake.wait(RETRY_INTERVAL if retry else self.interval)
            self._wake.clear()
        self._close()

    def _connect(self) -> None:
        reasons = []
        for user in self.users:
            for directory in self.socket_dirs:
                try:
                    self._connection = psycopg.connect(
                        host=directory,
                        port=self.port,
                        dbname="postgres",
                        user=user,
                        connect_timeout=2,
                        application_name=APPLICATION_NAME,
                        options="-c statement_timeout=2000",
                        autocommit=True,
                    )
                except psycopg.Error as error:
                    reasons.append(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
                    continue
                self.backend_pid = self._connection.info.backend_pid
                self._ever_connected, self.problem = True, None
                return
        if not self._ever_connected:
            self._gave_up = True  # no knocking: each refusal is a FATAL line in their log
            self.problem = f"pg_stat_activity unavailable: {reasons[-1] if reasons else 'no socket directory'}"

    def _read(self) -> None:
        try:
            rows = self._connection.execute(QUERY).fetchall()
        except psycopg.Error:
            self._close()
            return
        self.latest = tuple(
            BackendActivity(
                pid=row[0],
                backend_type=row[1],
                user=row[2],
                database=row[3],
                application_name=row[4],
                client_addr=row[5],
                state=row[6],
                query=row[7],
                backend_start=row[8] or 0.0,
                state_change=row[9] or 0.0,
            )
            for row in rows
        )

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.latest = None
        self.backend_pid = None
        if connection is not None:
            try:
                connection.close()
            except psycopg.Error:
                pass
