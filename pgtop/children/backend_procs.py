"""A backend's PGPROC: max_connections of them, counted in shared memory (InitProcess,
HaveNFreeProcs), and the FATALs a backend gets when none is left for it."""

from __future__ import annotations

from pgtop.children.context import ChildContext
from pgtop.wire.errors import Diagnostic
from pgtop.wire.startup import StartupMessage

CLIENT_BACKEND = "client backend"
TOO_MANY_CLIENTS = Diagnostic("FATAL", "53300", "sorry, too many clients already")
RESERVED_FOR_SUPERUSER = Diagnostic(
    "FATAL", "53300", "remaining connection slots are reserved for non-replication superuser connections"
)


def _procs_in_use(ctx: ChildContext) -> int:
    """Client backends other than this one that hold a PGPROC: their activity row names a
    user (set when the PGPROC is taken). Walsenders draw from their own pool."""
    segment = ctx.segment
    assert segment is not None
    walsenders = segment.walsender_slots()
    return sum(
        1
        for entry, (backend_type, user) in segment.activity_owners().items()
        if entry <= segment.max_children
        and entry != ctx.slot
        and entry not in walsenders
        and backend_type == CLIENT_BACKEND
        and user
    )


def init_process(ctx: ChildContext, startup: StartupMessage, host: str | None) -> bool:
    """InitProcess(): take a PGPROC from the client backends' free list, False if none is
    left. The count and the take happen under one lock, as under ProcStructLock."""
    segment = ctx.segment
    if segment is None or ctx.slot is None:
        return True  # no shared memory (a test harness): nothing to count
    with segment.proc_lock():
        if _procs_in_use(ctx) >= ctx.args["config"].max_connections:
            return False
        ctx.report_activity(
            user=startup.user,
            database=startup.database,
            application_name=startup.application_name,
            client_addr=host,
        )
    return True


def have_free_procs(ctx: ChildContext, wanted: int) -> bool:
    """HaveNFreeProcs(): at least `wanted` PGPROCs are still free."""
    if ctx.segment is None or ctx.slot is None or wanted <= 0:
        return True
    with ctx.segment.proc_lock():
        # This backend's own PGPROC is in use too.
        return ctx.args["config"].max_connections - _procs_in_use(ctx) - 1 >= wanted
