"""The checkpointer (checkpointer.c): a checkpoint every checkpoint_timeout, the shutdown
checkpoint on SIGUSR2, a requested one on SIGINT.

During archive recovery the same calls make restartpoints (the storage engine decides from
the WAL's in-recovery flag). Each checkpoint done is counted in shared memory with its time
and LSN. An error in a timed checkpoint is logged and retried at the next timeout, as the
checkpointer's sigsetjmp block does; an error in the shutdown checkpoint is fatal (exit 1),
because ExitOnAnyError is set then.

Signals, as PostgreSQL 14: SIGHUP reload; SIGINT request a checkpoint (RequestCheckpoint's
signal; without shared request flags it is taken as CHECKPOINT_FORCE, what a promotion asks
for); SIGTERM ignored (the postmaster stops it with SIGUSR2 after everything else);
SIGUSR2 "shutting down", shutdown checkpoint, exit 0; SIGQUIT _exit(2). Postmaster death: exit 1.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from pgtop.children.context import ChildContext
from pgtop.children.interrupt import (
    config_of,
    datadir_of,
    ignore_unused,
    wait_main_loop,
)
from pgtop.core.config import Config
from pgtop.core.vocabulary import LogLevel
from pgtop.storage.checkpoint import Checkpointer
from pgtop.storage.checkpoint_log import (
    CheckpointFlags,
    CheckpointResult,
    flags_for_kind,
)
from pgtop.storage.errors import StorageError
from pgtop.storage.wal import Wal


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGINT, signal.SIGUSR2)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ctx.ignore(signal.SIGTERM)
    ignore_unused(ctx)
    config = config_of(ctx)
    try:
        checkpointer = Checkpointer(datadir_of(ctx), archiving=config.archiving_active)
    except StorageError as error:
        ctx.log(LogLevel.FATAL, error.message, error.detail, error.hint)
        return 1
    try:
        return checkpointer_loop(ctx, checkpointer)
    finally:
        checkpointer.close()


def checkpointer_loop(ctx: ChildContext, checkpointer: Checkpointer) -> int:
    last_checkpoint = time.monotonic()
    while True:
        timeout = config_of(ctx).checkpoint_timeout
        events = wait_main_loop(ctx, last_checkpoint + timeout - time.monotonic())
        if signal.SIGUSR2 in events:
            return shutdown_checkpoint(ctx, checkpointer)
        if signal.SIGINT in events:
            run_checkpoint(ctx, checkpointer, flags_for_kind("force"))
            last_checkpoint = time.monotonic()
        elif time.monotonic() - last_checkpoint >= timeout:
            run_checkpoint(ctx, checkpointer, flags_for_kind("time"))
            last_checkpoint = time.monotonic()


def shutdown_checkpoint(ctx: ChildContext, checkpointer: Checkpointer) -> int:
    """ShutdownXLOG(): "shutting down", a last segment switch so the archiver gets everything
    written so far, then the shutdown checkpoint (or restartpoint) and exit 0."""
    ctx.log(LogLevel.LOG, "shutting down")
    config = config_of(ctx)
    try:
        if config.archiving_active and config.archive_command:
            switch_wal_segment(datadir_of(ctx))
        result = checkpointer.checkpoint(flags_for_kind("shutdown"), on_start=checkpoint_start_logger(ctx, config))
    except StorageError as error:
        ctx.log(LogLevel.FATAL, error.message, error.detail, error.hint)
        return 1
    report_checkpoint(ctx, config, result)
    return 0


def switch_wal_segment(datadir: str) -> None:
    """RequestXLogSwitch(): finish the current segment, so it is marked ready for archiving.
    Not in recovery, where no WAL may be written."""
    with Wal(datadir) as wal:
        if not wal.state().in_recovery:
            wal.switch_segment()
            wal.flush()


def run_checkpoint(ctx: ChildContext, checkpointer: Checkpointer, flags: CheckpointFlags) -> None:
    config = config_of(ctx)
    checkpointer.archiving = config.archiving_active
    try:
        result = checkpointer.checkpoint(flags, on_start=checkpoint_start_logger(ctx, config))
    except StorageError as error:
        ctx.log(LogLevel.ERROR, error.message, error.detail, error.hint)
        return
    report_checkpoint(ctx, config, result)


def checkpoint_start_logger(ctx: ChildContext, config: Config) -> Callable[[str], None] | None:
    """LogCheckpointStart, when log_checkpoints is on: called before the work starts."""
    if not config.log_checkpoints:
        return None
    return lambda text: ctx.log(LogLevel.LOG, text)


def report_checkpoint(ctx: ChildContext, config: Config, result: CheckpointResult | None) -> None:
    """LogCheckpointEnd and the counters; a skipped (idle) checkpoint reports nothing."""
    if result is None:
        return
    if config.log_checkpoints:
        ctx.log(LogLevel.LOG, result.complete_message)
    if result.restart_point_message is not None:
        level = LogLevel.LOG if config.log_checkpoints else LogLevel.DEBUG2
        ctx.log(level, result.restart_point_message)
    if ctx.segment is not None:
        ctx.segment.add_counters(checkpoints=1)
        ctx.segment.update_counters(last_checkpoint_time=result.time, last_checkpoint_lsn=result.lsn)
