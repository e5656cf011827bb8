"""What a PostgreSQL process is, read from the title it shows in `ps`.

PostgreSQL (13 to 17) sets each child's title to `postgres: [cluster_name: ]what`, where
`what` is the backend type of an auxiliary process (`checkpointer`, `walwriter`, ...), a
background worker's bgw_type (`logical replication launcher`), or for a session
`user database host state` (`postgres postgres [local] idle`). A child forked a moment ago
still shows the postmaster's command line; it is a connection being set up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgtop.core.vocabulary import ChildKind

TITLE_PREFIX = "postgres: "

# Backend types of auxiliary processes, as PostgreSQL names them (GetBackendTypeDesc).
AUXILIARY_TITLES: dict[str, ChildKind] = {
    "checkpointer": ChildKind.CHECKPOINTER,
    "background writer": ChildKind.BGWRITER,
    "walwriter": ChildKind.WALWRITER,
    "autovacuum launcher": ChildKind.AUTOVAC_LAUNCHER,
    "archiver": ChildKind.ARCHIVER,
    "logger": ChildKind.SYSLOGGER,
    "stats collector": ChildKind.STATS,  # 14 and earlier
    "startup": ChildKind.STARTUP,
    "walreceiver": ChildKind.WALRECEIVER,
}

# `host` of a session title: [local], an address with its port in parentheses, or a name.
_HOST = r"\[local\]|\S+\(\d+\)"
_SESSION = re.compile(rf"^(?P<user>\S+) (?P<database>\S+) (?P<host>{_HOST})(?: (?P<state>.*))?$")
# A physical walsender has no database: `walsender user host state`.
_WALSENDER = re.compile(rf"^(?P<user>\S+) (?:(?P<database>\S+) )?(?P<host>{_HOST})(?: (?P<state>.*))?$")
_CLUSTER = re.compile(r"^(?P<cluster>[^:\s][^:]*): (?P<rest>.*)$")


@dataclass(frozen=True, slots=True)
class ProcessTitle:
    """A child of the postmaster as its title describes it."""

    kind: ChildKind
    bgworker: str | None = None  # a background worker's bgw_type
    user: str = ""
    database: str = ""
    host: str | None = None
    state: str = ""  # the session's state or command tag (`idle`, `SELECT`), or an aux detail
    cluster_name: str | None = None

    @property
    def label(self) -> str:
        return self.bgworker if self.bgworker is not None else self.kind.value


def title_text(cmdline: list[str]) -> str:
    """The title as `ps` shows it: PostgreSQL pads argv with empty strings."""
    return " ".join(part for part in cmdline if part).strip()


def parse_title(title: str) -> ProcessTitle:
    """The kind of a postmaster child from its title (unknown titles are connections
    still being set up: a forked child keeps the postmaster's command line until then)."""
    if not title.startswith(TITLE_PREFIX):
        return ProcessTitle(ChildKind.BACKEND, state="starting")
    rest = title[len(TITLE_PREFIX) :].strip()
    parsed = _parse_what(rest)
    if parsed is not None:
        return parsed
    cluster = None
    match = _CLUSTER.match(rest)
    if match is not None:
        cluster, rest = match.group("cluster"), match.group("rest").strip()
        parsed = _parse_what(rest, cluster)
        if parsed is not None:
            return parsed
    return ProcessTitle(ChildKind.BGWORKER, bgworker=rest, cluster_name=cluster)


def _parse_what(what: str, cluster: str | None = None) -> ProcessTitle | None:
    """An auxiliary process, a walsender, an autovacuum worker or a session; None if
    `what` is none of these (a background worker, or a cluster_name still in front)."""
    for name, kind in AUXILIARY_TITLES.items():
        if what == name or what.startswith(name + " "):
            return ProcessTitle(kind, state=what[len(name) :].strip(), cluster_name=cluster)
    if what.startswith("autovacuum worker"):
        return ProcessTitle(ChildKind.AUTOVAC_WORKER, database=what[len("autovacuum worker") :].strip(), cluster_name=cluster)
    kind, pattern = ChildKind.BACKEND, _SESSION
    if what.startswith("walsender "):
        kind, pattern, what = ChildKind.WALSENDER, _WALSENDER, what[len("walsender ") :]
    match = pattern.match(what)
    if match is None or ":" in match.group("user"):
        return None
    return ProcessTitle(
        kind,
        user=match.group("user"),
        database=match.group("database") or "",
        host=match.group("host"),
        state=(match.group("state") or "").strip(),
        cluster_name=cluster,
    )
