"""The logical replication launcher (launcher.c, ApplyLauncherMain), the built-in background
worker: it would start an apply worker per enabled subscription; pgtop has none, so it wakes
every DEFAULT_NAPTIME_PER_CYCLE and goes back to sleep.

Signals, as PostgreSQL 14: SIGTERM (die) "logical replication launcher shutting down" at
DEBUG1 and exit 1, "so the background worker is restarted" (hence the LOG line about its exit
code 1 at every smart or fast shutdown); SIGHUP reload; SIGQUIT _exit(2) (quickdie, no
message); SIGINT and SIGUSR2 ignored. Postmaster death: exit 1.
"""

from __future__ import annotations

import signal

from pgtop.children.context import ChildContext
from pgtop.children.interrupt import ignore_unused, wait_main_loop
from pgtop.core.vocabulary import LogLevel

DEFAULT_NAPTIME_PER_CYCLE = 180.0  # seconds


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    ctx.log(LogLevel.DEBUG1, "logical replication launcher started")
    while True:
        events = wait_main_loop(ctx, DEFAULT_NAPTIME_PER_CYCLE)
        if signal.SIGTERM in events:
            ctx.log(LogLevel.DEBUG1, "logical replication launcher shutting down")
            return 1
