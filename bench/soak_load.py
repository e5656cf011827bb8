"""The soak's client load: threads that INSERT rows with psycopg and keep a ledger of what the
server said. A row whose INSERT (autocommit: its commit) returned successfully is
"committed" and must be there at the end; a row whose INSERT failed with the connection
lost, or raised anything, is "uncertain" (the commit may or may not have happened); no
other row may ever appear.

Each thread reconnects after a few INSERTs, so a smart shutdown can finish (it waits for
clients to leave) and connection handling is exercised all along.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg

TABLE = "soak"
INSERTS_PER_CONNECTION = 20
CONNECT_TIMEOUT = 10


@dataclass
class Ledger:
    """One thread's record of its rows."""

    worker: int
    next_seq: int = 0
    committed: set[int] = field(default_factory=set)
    uncertain: set[int] = field(default_factory=set)


class Load:
    """`clients` INSERT threads against a cluster reachable at (socket_dir, port)."""

    def __init__(self, socket_dir: str, port: int, clients: int, seed: int) -> None:
        self.socket_dir = socket_dir
        self.port = port
        self.ledgers = [Ledger(worker) for worker in range(clients)]
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(ledger, random.Random(seed + ledger.worker)), name=f"soak-client-{ledger.worker}", daemon=True)
            for ledger in self.ledgers
        ]

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(host=self.socket_dir, port=self.port, user="postgres", dbname="postgres",
                               autocommit=True, connect_timeout=CONNECT_TIMEOUT)

    def create_table(self) -> None:
        with self.connect() as conn:
            conn.execute(f"CREATE TABLE {TABLE} (worker int, seq int)")

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> list[str]:
        """Stop every thread; the names of those that did not finish in time."""
        self._stop.set()
        self._pause.clear()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in self._threads if thread.is_alive()]

    def pause(self, timeout: float = 60.0) -> bool:
        """Every thread closes its connection and waits; True once all are idle."""
        self._pause.set()
        deadline = time.monotonic() + timeout
        return all(self._idle.acquire(timeout=max(0.0, deadline - time.monotonic())) for _ in self._threads)

    def resume(self) -> None:
        self._pause.clear()

    # -- one client ------------------------------------------------------------------------

    def _run(self, ledger: Ledger, rng: random.Random) -> None:
        while not self._stop.is_set():
            if self._pause.is_set():
                self._idle.release()
                while self._pause.is_set() and not self._stop.is_set():
                    time.sleep(0.01)  # waiting for resume(); a pause lasts a second or two
                continue
            try:
                conn = self.connect()
            except psycopg.Error as error:
                self._count(error)
                time.sleep(rng.uniform(0.05, 0.3))  # the server is restarting or refusing: back off
                continue
            with conn:
                self._insert_some(conn, ledger, rng)

    def _insert_some(self, conn: psycopg.Connection, ledger: Ledger, rng: random.Random) -> None:
        for _ in range(rng.randint(1, INSERTS_PER_CONNECTION)):
            if self._stop.is_set() or self._pause.is_set():
                return
            seq = ledger.next_seq
            ledger.next_seq += 1
            try:
                conn.execute(f"INSERT INTO {TABLE} VALUES (%s, %s)", (ledger.worker, seq))
            except psycopg.Error as error:
                ledger.uncertain.add(seq)
                self._count(error)
                return
            ledger.committed.add(seq)

    def _count(self, error: psycopg.Error) -> None:
        sqlstate = getattr(error, "sqlstate", None) or type(error).__name__
        with self._lock:
            self.errors[sqlstate] += 1

    # -- the end ---------------------------------------------------------------------------

    @property
    def committed(self) -> int:
        return sum(len(ledger.committed) for ledger in self.ledgers)

    @property
    def uncertain(self) -> int:
        return sum(len(ledger.uncertain) for ledger in self.ledgers)

    def verify(self) -> list[str]:
        """Compare the table with the ledgers: missing committed rows, rows nobody
        attempted, duplicates. Empty when all is well."""
        with self.connect() as conn:
            rows = conn.execute(f"SELECT worker, seq FROM {TABLE}").fetchall()
        problems = []
        present = Counter(rows)
        duplicates = [row for row, count in present.items() if count > 1]
        if duplicates:
            problems.append(f"{len(duplicates)} rows present more than once, e.g. {duplicates[:3]}")
        for ledger in self.ledgers:
            mine = {seq for (worker, seq) in present if worker == ledger.worker}
            missing = ledger.committed - mine
            phantom = mine - ledger.committed - ledger.uncertain
            if missing:
                problems.append(f"worker {ledger.worker}: {len(missing)} committed rows missing, e.g. {sorted(missing)[:5]}")
            if phantom:
                problems.append(f"worker {ledger.worker}: {len(phantom)} rows never committed nor attempted, e.g. {sorted(phantom)[:5]}")
        strangers = {worker for (worker, _) in present} - {ledger.worker for ledger in self.ledgers}
        if strangers:
            problems.append(f"rows from unknown workers {sorted(strangers)}")
        return problems
