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


def init_process(ctx: ChildContext, startup: StartupMessage, host: str | None) -> bool:
    """InitProcess(): take a PGPROC from the client backends' free list, False if none is
    left. The count and the take happen under one lock, as under ProcStructLock.
    Walsenders draw from a pool of their own and never come here."""
    segment = ctx.segment
    if segment is None or ctx.slot is None:
        return True  # no shared memory (a test harness): nothing to count
    with segment.proc_lock():
        if segment.procs_in_use(besides=ctx.slot) >= ctx.args["config"].max_connections:
            return False
        segment.take_proc(ctx.slot)
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
        return ctx.args["config"].max_connections - ctx.segment.procs_in_use(besides=ctx.slot) - 1 >= wanted
