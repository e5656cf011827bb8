"""What the fork server is asked to run for each Spawn: the program and its arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgtop.common import cancel_targets
from pgtop.core.actions import Spawn
from pgtop.core.vocabulary import ChildKind, PMState

if TYPE_CHECKING:
    from pgtop.runtime.supervisor import Supervisor

# pgtop.children.<module> for each kind; background workers by registered name.
PROGRAMS: dict[ChildKind, str] = {
    ChildKind.STARTUP: "startup",
    ChildKind.BGWRITER: "bgwriter",
    ChildKind.CHECKPOINTER: "checkpointer",
    ChildKind.WALWRITER: "walwriter",
    ChildKind.WALRECEIVER: "walreceiver",
    ChildKind.AUTOVAC_LAUNCHER: "autovac_launcher",
    ChildKind.AUTOVAC_WORKER: "autovac_worker",
    ChildKind.ARCHIVER: "archiver",
    ChildKind.STATS: "stats",
    ChildKind.SYSLOGGER: "syslogger",
    ChildKind.BACKEND: "backend",
    ChildKind.WALSENDER: "backend",
}
BGWORKER_PROGRAMS: dict[str, str] = {"logical replication launcher": "logical_launcher"}

# Imported once by the fork server, so every fork starts ready to run.
PRELOAD: tuple[str, ...] = tuple(sorted(set(PROGRAMS.values()) | set(BGWORKER_PROGRAMS.values())))

# Arguments the fork server keeps for every child (ForkServer.spawn's `shared`): the
# postmaster's configuration and parsed pg_hba.conf change only at a reload, so they are
# sent once per reload rather than pickled into every request, as a fork inherits them.
SHARED_ARGS: tuple[str, ...] = ("config", "hba")


def spawn_request(supervisor: Supervisor, action: Spawn, slot: int | None) -> tuple[str, dict[str, object]]:
    """The program name and the picklable arguments for one child."""
    # The configuration as of the last reload (the core keeps it), as a fork inherits it.
    config = supervisor.state.config if supervisor.state is not None else supervisor.config
    args: dict[str, object] = {
        "datadir": str(supervisor.datadir),
        "config": config,
        "postmaster_start": supervisor.start_time,
        "log_line_prefix": config.log_line_prefix,
        "log_min_messages": config.log_min_messages,
        "log_timezone": config.log_timezone,
        "slot": slot,
    }
    if action.kind is ChildKind.BGWORKER:
        program = BGWORKER_PROGRAMS[action.bgworker or ""]
        args["backend_type"] = action.bgworker
        args["bgworker"] = action.bgworker
        return program, args
    if action.kind in (ChildKind.BACKEND, ChildKind.WALSENDER):
        state = supervisor.state
        child = state.children.get(action.child_id) if state is not None else None
        args.update(
            cac=action.cac.value if action.cac else "ok",
            dead_end=action.dead_end,
            cancel_key=action.cancel_key,
            remote=child.remote if child is not None else None,
            # The fork-time copy of BackendList a cancel request is checked against (packed).
            backends=_cancel_targets(supervisor),
            hot_standby=config.hot_standby,
            # pg_is_in_recovery(): a backend of a hot standby refuses writes (25006).
            in_recovery=state is not None and state.pm_state in (PMState.RECOVERY, PMState.HOT_STANDBY),
            hba=supervisor.hba_rules,  # the postmaster's parsed pg_hba.conf
        )
    return PROGRAMS[action.kind], args


def _cancel_targets(supervisor: Supervisor) -> bytes:
    state = supervisor.state
    if state is None:
        return cancel_targets.pack(())
    return cancel_targets.pack(
        (child.pid, child.cancel_key)
        for child in state.children.values()
        if child.in_backend_list and not child.dead_end and child.pid is not None
    )
