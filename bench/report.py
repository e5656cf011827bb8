"""Figures and goals: median, min, max, the ratio pgtop/PostgreSQL, and whether a goal is met."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Goal:
    """A goal from the issues: on the ratio pgtop/PostgreSQL or on pgtop's own median."""

    text: str
    on: str  # "ratio" or "median"
    at_most: float | None = None
    at_least: float | None = None

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.at_most is not None and value > self.at_most:
            return False
        return self.at_least is None or value >= self.at_least


@dataclass
class Figure:
    """One line of the report. Samples are in `unit`; an empty list means "not measured"."""

    title: str
    unit: str
    pgtop: list[float] = field(default_factory=list)
    postgres: list[float] | None = field(default_factory=list)  # None: no PostgreSQL counterpart
    goal: Goal | None = None
    peers: dict[str, list[float]] = field(default_factory=dict)  # e.g. supervisord
    notes: list[str] = field(default_factory=list)
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        """pgtop/PostgreSQL of the medians."""
        mine, theirs = median(self.pgtop), median(self.postgres or [])
        if mine is None or theirs is None or mine < 0 or theirs <= 0:
            return None  # a ratio of a negative or zero median means nothing
        return mine / theirs

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        value = self.ratio if self.goal.on == "ratio" else median(self.pgtop)
        return self.goal.met(value)


def median(samples: list[float] | None) -> float | None:
    return statistics.median(samples) if samples else None


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "%") and abs(value) < 10:
        return f"{value:.3f}"
    if abs(value) < 100:
        return f"{value:.2f}"
    return f"{value:.0f}"


def _series(name: str, samples: list[float] | None, unit: str) -> str:
    if samples is None:
        return f"  {name:<13} (no counterpart)"
    if not samples:
        return f"  {name:<13} not measured"
    return (
        f"  {name:<13} median {_number(median(samples), unit)} {unit}"
        f"   min {_number(min(samples), unit)}   max {_number(max(samples), unit)}   (n={len(samples)})"
    )


def verdict(figure: Figure) -> str:
    met = figure.met
    return "MET" if met else ("NOT MET" if met is False else "n/a")


def render(figure: Figure) -> str:
    """The block printed for one figure."""
    lines = [f"{figure.title}  [{figure.unit}]"]
    lines.append(_series("pgtop", figure.pgtop, figure.unit))
    lines.append(_series("PostgreSQL", figure.postgres, figure.unit))
    for name, samples in figure.peers.items():
        lines.append(_series(name, samples, figure.unit))
    ratio = figure.ratio
    ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
    goal = figure.goal.text if figure.goal else "(no goal)"
    lines.append(f"  pgtop/PostgreSQL {ratio_text}   goal: {goal}   -> {verdict(figure)}")
    lines.extend(f"  note: {note}" for note in figure.notes)
    return "\n".join(lines)


def summary_table(figures: list[Figure]) -> str:
    """A Markdown table of every figure: the README's table is pasted from this."""
    rows = [
        "| figure | pgtop median | PostgreSQL median | pgtop/PostgreSQL | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        ratio = figure.ratio
        rows.append(
            f"| {figure.title} | {_number(median(figure.pgtop), figure.unit)} {figure.unit} "
            f"| {_number(median(figure.postgres), figure.unit) + ' ' + figure.unit if figure.postgres else '-'} "
            f"| {f'{ratio:.2f}' if ratio is not None else '-'} "
            f"| {figure.goal.text if figure.goal else '-'} | {verdict(figure)} |"
        )
    return "\n".join(rows)


def to_json(figures: list[Figure]) -> str:
    return json.dumps(
        [asdict(figure) | {"ratio": figure.ratio, "met": figure.met} for figure in figures], indent=1
    )
