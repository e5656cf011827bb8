"""The names in `Snapshot.observed`: what `pgtop attach` sees rather than infers.

A snapshot of pgtop's own cluster leaves `observed` empty: the supervisor knows everything it
shows. Attached to a real server, the watcher puts in the name of each source it can read
right now; every fact on screen is then either seen in one of them or inferred from them.

| name | seen when | shown as |
| :- | :- | :- |
| `pid_status` | postmaster.pid's status line (line 8) was read | postmaster.pid |
| `children` | the postmaster's children are in the process table | ps |
| `log` | the server log is followed | log |
| `pg_stat_activity` | sessions are read from pg_stat_activity | pg_stat_activity |

pmState, FatalError, connsAllowed, StartupStatus and the postmaster's exit code are never
visible: they are always inferred, from the log, ps and postmaster.pid (`PM_STATE_SOURCES`).
The postmaster's PID and start time are always seen (attaching needs them).
"""

from __future__ import annotations

PID_STATUS = "pid_status"
CHILDREN = "children"
LOG = "log"
ACTIVITY = "pg_stat_activity"

SOURCE_NAMES = {
    PID_STATUS: "postmaster.pid",
    CHILDREN: "ps",
    LOG: "log",
    ACTIVITY: "pg_stat_activity",
}

# What pmState is inferred from, most telling first (the log is the authority, spec §7).
PM_STATE_SOURCES = (LOG, CHILDREN, PID_STATUS)
PM_STATE_SOURCE_WORDS = {LOG: "the log", CHILDREN: "ps", PID_STATUS: "postmaster.pid"}


def describe_observed(observed: frozenset[str]) -> str:
    """e.g. "seen: postmaster.pid, ps, log (not: pg_stat_activity); pmState inferred"."""
    seen = [name for key, name in SOURCE_NAMES.items() if key in observed]
    unseen = [name for key, name in SOURCE_NAMES.items() if key not in observed]
    text = f"seen: {', '.join(seen) or 'nothing'}"
    if unseen:
        text += f" (not: {', '.join(unseen)})"
    return f"{text}; pmState inferred"


def pm_state_basis(observed: frozenset[str]) -> str:
    """What pmState was inferred from: "from the log, ps and postmaster.pid"."""
    words = [PM_STATE_SOURCE_WORDS[name] for name in PM_STATE_SOURCES if name in observed]
    if not words:
        return "from nothing seen now"
    if len(words) == 1:
        return f"from {words[0]}"
    return f"from {', '.join(words[:-1])} and {words[-1]}"
