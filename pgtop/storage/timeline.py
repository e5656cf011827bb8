"""Timeline history files (pg_wal/0000000N.history) and which timeline holds a segment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pgtop.storage.lsn import format_lsn, parse_lsn, segment_of


@dataclass(frozen=True, slots=True)
class TimelineSwitch:
    """One line of a history file: `timeline` ended (was switched away from) at `switchpoint`."""

    timeline: int
    switchpoint: int
    reason: str


def history_file_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


def read_history(datadir: str, timeline: int) -> tuple[TimelineSwitch, ...]:
    """The ancestors of `timeline`, oldest first. Timeline 1, or a missing file, has none."""
    path = os.path.join(datadir, "pg_wal", history_file_name(timeline))
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return ()
    switches = []
    for line in lines:
        fields = line.split("\t")
        if not line.strip() or line.lstrip().startswith("#") or len(fields) < 2:
            continue
        reason = fields[2] if len(fields) > 2 else ""
        switches.append(TimelineSwitch(int(fields[0]), parse_lsn(fields[1]), reason))
    return tuple(switches)


def write_history(
    datadir: str, new_timeline: int, parent: int, switchpoint: int,
    reason: str = "no recovery target specified",
) -> None:
    """writeTimeLineHistory(): the parent's history plus the new switch, written atomically."""
    lines = [f"{s.timeline}\t{format_lsn(s.switchpoint)}\t{s.reason}" for s in read_history(datadir, parent)]
    lines.append(f"{parent}\t{format_lsn(switchpoint)}\t{reason}")
    path = os.path.join(datadir, "pg_wal", history_file_name(new_timeline))
    temp = path + ".tmp"
    with open(temp, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def newest_timeline(datadir: str, at_least: int) -> int:
    """findNewestTimeLine(): the highest timeline with a history file, or `at_least`."""
    newest = at_least
    for name in os.listdir(os.path.join(datadir, "pg_wal")):
        if name.endswith(".history") and len(name) == 16:
            try:
                newest = max(newest, int(name[:8], 16))
            except ValueError:
                continue
    return newest


def timeline_of_segment(history: tuple[TimelineSwitch, ...], timeline: int, segno: int) -> int:
    """Which timeline's file holds segment `segno` when reading `timeline`'s WAL.

    The segment containing a switchpoint belongs to the new timeline: at a switch the new
    timeline's first segment starts as a copy of the old one up to the switchpoint.
    """
    for switch in history:
        if segno < segment_of(switch.switchpoint):
            return switch.timeline
    return timeline
