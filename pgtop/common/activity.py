"""What a child publishes about itself through shared memory, as the dashboard shows it.

The supervisor's snapshot (pgtop.runtime.snapshot) carries these rows; the children write
them (pgtop.common.shmem), so the types live here, where both may import them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackendActivity:
    """One row of pg_stat_activity."""

    pid: int
    backend_type: str
    user: str
    database: str
    application_name: str
    client_addr: str | None
    state: str  # idle, active, idle in transaction, ...
    query: str
    backend_start: float
    state_change: float


@dataclass(frozen=True, slots=True)
class RecoveryProgress:
    """Published by the startup process while it replays WAL."""

    redo_start: str  # "0/1A2B3C"
    replayed: str
    end: str
    records_done: int
    records_total: int
