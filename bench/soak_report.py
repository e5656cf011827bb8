"""The soak's result: what it did (counts), what it checked (pass or fail with a detail), and
the postmaster's quiet samples; printed by `python -m bench soak`, asserted by tests/soak."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from bench.soak_checks import ResourceSample

LOG_COUNTS = {
    "crash cycles (all server processes terminated; reinitializing)": r"all server processes terminated; reinitializing",
    "children reported terminated by a signal": r"was terminated by signal",
    "children reported exited with a non-zero code": r"exited with exit code [1-9]",
    "reloads (received SIGHUP)": r"received SIGHUP, reloading configuration files",
    "reloads refused (configuration file contains errors)": r"contains errors",
    "SIGKILL escalations (issuing SIGKILL to recalcitrant children)": r"issuing SIGKILL to recalcitrant children",
    "could not fork": r"could not fork",
    "ready to accept connections": r"database system is ready to accept connections",
}


@dataclass
class Check:
    ok: bool
    detail: str
    times: int = 1


@dataclass
class SoakResult:
    seed: int
    seconds: float = 0.0
    actions: Counter[str] = field(default_factory=Counter)
    committed: int = 0
    uncertain: int = 0
    client_errors: Counter[str] = field(default_factory=Counter)
    log_counts: dict[str, int] = field(default_factory=dict)
    exit_codes: list[int | None] = field(default_factory=list)
    samples: list[ResourceSample] = field(default_factory=list)
    checks: dict[str, Check] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str, *, repeatable: bool = False) -> None:
        """Record a check; a repeatable one (done after every shutdown) keeps its first
        failure's detail and counts how often it ran."""
        previous = self.checks.get(name)
        if previous is None or not repeatable:
            self.checks[name] = Check(ok, detail)
            return
        previous.times += 1
        if previous.ok and not ok:
            previous.ok, previous.detail = False, detail

    @property
    def problems(self) -> list[str]:
        return [f"{name}: {check.detail}" for name, check in self.checks.items() if not check.ok]

    def count_log_lines(self, logs: list) -> None:  # type: ignore[type-arg]
        text = "\n".join(log.text() for log in logs)
        self.log_counts = {label: len(re.findall(pattern, text)) for label, pattern in LOG_COUNTS.items()}

    def render(self) -> str:
        lines = [f"soak: {self.seconds:.0f} s, seed {self.seed} (--seed {self.seed} repeats the random draws; what they hit depends on timing)"]
        lines.append("actions:")
        lines += [f"  {count:6d}  {name}" for name, count in sorted(self.actions.items())]
        lines.append(f"clients: {self.committed} committed INSERTs, {self.uncertain} uncertain (connection lost mid-commit)")
        if self.client_errors:
            lines.append("  client errors by SQLSTATE/type: " + ", ".join(f"{k} {v}" for k, v in self.client_errors.most_common()))
        lines.append("server log:")
        lines += [f"  {count:6d}  {label}" for label, count in self.log_counts.items()]
        lines.append(f"postmaster exit codes: {self.exit_codes}")
        lines.append("quiet samples of the postmaster (s, pid, fds besides pidfds, RSS MiB, shared-memory segments):")
        lines += [f"  {s.at:6.0f}  {s.postmaster}  {s.fds:4d}  {s.rss / 2**20:6.1f}  {s.segments}" for s in self.samples]
        lines.append("checks:")
        for name, check in self.checks.items():
            times = f" (x{check.times})" if check.times > 1 else ""
            lines.append(f"  [{'ok' if check.ok else 'FAIL'}] {name}{times}: {check.detail}")
        lines.append("result: " + ("every check passed" if not self.problems else f"{len(self.problems)} check(s) failed"))
        return "\n".join(lines)
