"""What every auxiliary process shares, as PostgreSQL's postmaster/interrupt.c: the
configuration reload and the main-loop wait that dies with the postmaster (the crash-exit
handler for SIGQUIT is the context's `exit_on_sigquit`).

Every child must take or ignore each signal the postmaster may send it: the fork server leaves
all dispositions at their defaults, and the default for SIGHUP, SIGINT, SIGUSR1 and SIGUSR2
is to die, which the reaper would count as a crash. `ignore_unused` does the ignoring.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from pgtop.children.context import ChildContext, Events, WaitEvent
from pgtop.common.configfile import CONFIG_FILE_NAME, read_config_file
from pgtop.core import guc
from pgtop.core.config import Config
from pgtop.core.vocabulary import LogLevel

# Signals an auxiliary process ignores unless its program takes them (pqsignal(..., SIG_IGN)).
# SIGUSR1 is procsignal_sigusr1_handler in PostgreSQL; pgtop has no procsignals yet.
UNUSED_SIGNALS = (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGPIPE)


def ignore_unused(ctx: ChildContext) -> None:
    """SIG_IGN for every UNUSED_SIGNALS member still at its default: call it after taking
    the signals the program acts on."""
    ctx.ignore(*(signum for signum in UNUSED_SIGNALS if signal.getsignal(signum) == signal.SIG_DFL))


def config_of(ctx: ChildContext) -> Config:
    """The configuration this child runs with (the postmaster's at fork time, then reloads)."""
    config = ctx.args.get("config")
    return config if isinstance(config, Config) else Config()


def datadir_of(ctx: ChildContext) -> str:
    return str(ctx.args["datadir"])


def reload_config(ctx: ChildContext) -> Config:
    """ProcessConfigFile(PGC_SIGHUP) in a child: re-read the file, keep what may change.

    A child logs the per-parameter lines at DEBUG2 (only the postmaster logs them at LOG);
    a broken file leaves the configuration as it was, as in the postmaster.
    """
    path = os.path.join(datadir_of(ctx), CONFIG_FILE_NAME)
    config, lines = guc.apply_config_file(config_of(ctx), read_config_file(path), at_startup=False)
    for line in lines:
        ctx.log(LogLevel.DEBUG2, line.message, line.detail, line.hint)
    ctx.args.update(
        config=config,
        log_line_prefix=config.log_line_prefix,
        log_min_messages=config.log_min_messages,
        log_timezone=config.log_timezone,
    )
    return config


def wait_main_loop(ctx: ChildContext, timeout: float | None, readable: Iterable[object] = ()) -> Events:
    """WaitLatch(WL_EXIT_ON_PM_DEATH) then HandleMainLoopInterrupts' reload: wait for a
    signal, a readable fd or the timeout; exit 1 if the postmaster is gone; reload on SIGHUP."""
    events = ctx.wait(None if timeout is None else max(0.0, timeout), readable)
    exit_if_postmaster_died(events)
    if signal.SIGHUP in events:
        reload_config(ctx)
    return events


def exit_if_postmaster_died(events: Events) -> None:
    """WL_EXIT_ON_PM_DEATH: proc_exit(1). Nobody will read the code; exiting promptly is what
    matters, so no child outlives its postmaster."""
    if WaitEvent.POSTMASTER_DEATH in events:
        raise SystemExit(1)
