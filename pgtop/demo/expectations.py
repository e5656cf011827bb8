"""Checking a scenario's conditions against what was seen: each check says whether it holds
and, either way, what it saw ("pmState is PM_WAIT_BACKENDS"), for the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pgtop.core.state import Child
from pgtop.demo import scenario as sc
from pgtop.demo.clients import Clients
from pgtop.demo.observer import Mark, Observer
from pgtop.runtime.snapshot import Snapshot


class Cluster(Protocol):
    """What a check may ask of the cluster beyond its snapshots."""

    clients: Clients

    @property
    def exit_code(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    holds: bool
    saw: str


def find_child(snapshot: Snapshot | None, ref: sc.ChildRef) -> Child | None:
    """The running child of this kind (for backends: a busy one first, else the newest)."""
    if snapshot is None:
        return None
    matches = [
        child
        for child in snapshot.state.children.values()
        if child.kind is ref.kind and not child.dead_end and child.pid is not None
        and (ref.bgworker is None or child.bgworker == ref.bgworker)
    ]
    if not matches:
        return None
    active = {row.pid for row in snapshot.activity if row.state == "active"}
    return max(matches, key=lambda child: (child.pid in active, child.id))


def describe(condition: sc.Condition) -> str:
    """The condition as the scenario wrote it."""
    match condition:
        case sc.PmStateIs(state):
            return f"pm_state {state.pg_name}"
        case sc.PmStateReached(state):
            return f"reached {state.pg_name}"
        case sc.LogSeen(pattern) | sc.ClientSaw(pattern) | sc.ConnectionRefused(pattern):
            word = {sc.LogSeen: "log", sc.ClientSaw: "client_saw", sc.ConnectionRefused: "connection_refused"}
            return f'{word[type(condition)]} "{pattern.pattern}"'
        case sc.PidChanged(child) | sc.PidSame(child) | sc.Running(child) | sc.Absent(child):
            word = {sc.PidChanged: "pid_changed", sc.PidSame: "pid_same", sc.Running: "running", sc.Absent: "absent"}
            return f"{word[type(condition)]} {child.label}"
        case sc.ExitCode(code):
            return f"exit_code {code}"
        case sc.ShutdownIs(level):
            return f"shutdown {level.name.lower()}"
        case sc.FatalErrorIs(value):
            return f"fatal_error {'on' if value else 'off'}"
        case sc.RowsSurvive():
            return "rows_survive"
    raise AssertionError(condition)


def check(condition: sc.Condition, observer: Observer, mark: Mark, cluster: Cluster) -> Verdict:
    latest = observer.latest
    state = latest.state if latest is not None else None
    match condition:
        case sc.PmStateIs(wanted):
            now = state.pm_state.pg_name if state is not None else "unknown"
            return Verdict(state is not None and state.pm_state is wanted, f"pmState is {now}")
        case sc.PmStateReached(wanted):
            seen = observer.states_since(mark)
            return Verdict(wanted in seen, "pmStates seen: " + (" → ".join(s.pg_name for s in seen) or "none"))
        case sc.LogSeen(pattern):
            records = observer.logs_since(mark)
            hit = next((r for r in records if pattern.search(r.text or r.message)), None)
            if hit is not None:
                return Verdict(True, f"[{hit.pid}] {hit.message}")
            return Verdict(False, f"last line: {records[-1].message}" if records else "no log line since the last action")
        case sc.ClientSaw(pattern):
            messages = observer.client_messages_since(mark)
            hit = next((text for text in messages if pattern.search(text)), None)
            return Verdict(hit is not None, hit or ("; ".join(messages[-3:]) or "no client message since the last action"))
        case sc.PidChanged(ref) | sc.PidSame(ref):
            before = find_child(mark.snapshot, ref)
            now_child = find_child(latest, ref)
            saw = f"{ref.label} PID {before.pid if before else 'none'} → {now_child.pid if now_child else 'none'}"
            if now_child is None or before is None:
                return Verdict(False, saw)
            same = now_child.pid == before.pid
            return Verdict(same if isinstance(condition, sc.PidSame) else not same, saw)
        case sc.Running(ref) | sc.Absent(ref):
            child = find_child(latest, ref)
            saw = f"{ref.label} running as PID {child.pid}" if child else f"no {ref.label} running"
            return Verdict((child is not None) == isinstance(condition, sc.Running), saw)
        case sc.ExitCode(code):
            actual = cluster.exit_code
            return Verdict(actual == code, "still running" if actual is None else f"exited with code {actual}")
        case sc.ShutdownIs(level):
            now_level = state.shutdown if state is not None else None
            return Verdict(now_level is level, f"Shutdown is {now_level.name.lower() if now_level is not None else 'unknown'}")
        case sc.FatalErrorIs(value):
            actual = state.fatal_error if state is not None else None
            return Verdict(actual is value, f"FatalError is {actual}")
        case sc.ConnectionRefused(pattern):
            refusal = cluster.clients.try_connect()
            if refusal is None:
                return Verdict(False, "the connection was accepted")
            return Verdict(bool(pattern.search(refusal)), refusal)
        case sc.RowsSurvive():
            return _rows_survive(cluster.clients)
    raise AssertionError(condition)


def _rows_survive(clients: Clients) -> Verdict:
    committed = clients.committed
    try:
        rows = clients.count_rows()
    except Exception as error:  # noqa: BLE001 - not reachable yet: say so, try again
        return Verdict(False, f"cannot count the rows: {error}")
    return Verdict(committed > 0 and rows >= committed, f"{rows} rows found, {committed} commits acknowledged")


def is_probe(condition: sc.Condition) -> bool:
    """Checks that connect to the server: polled, not waited on."""
    return isinstance(condition, (sc.ConnectionRefused, sc.RowsSurvive))
