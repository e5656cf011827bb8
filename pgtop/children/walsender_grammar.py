"""The replication command grammar (repl_gram.y and repl_scanner.l): what a walsender accepts.

IDENTIFY_SYSTEM, SHOW name, TIMELINE_HISTORY n, START_REPLICATION [SLOT s] [PHYSICAL|LOGICAL]
X/X [TIMELINE n], BASE_BACKUP with PostgreSQL 14's or 15's options, and the slot commands
(parsed, then refused: pgtop has no replication slots). Any text whose first word is none of
these is SQL, which the walsender refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pgtop.storage.lsn import parse_lsn
from pgtop.wire.errors import PgError

COMMANDS = ("IDENTIFY_SYSTEM", "SHOW", "TIMELINE_HISTORY", "START_REPLICATION", "BASE_BACKUP",
            "CREATE_REPLICATION_SLOT", "DROP_REPLICATION_SLOT", "READ_REPLICATION_SLOT")


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed replication command: its verb and arguments."""

    verb: str  # IDENTIFY_SYSTEM, ..., or SQL
    name: str = ""  # SHOW's parameter, a slot name
    lsn: int = 0
    timeline: int = 0
    logical: bool = False


_TOKEN = re.compile(
    r"\s*(?:(?P<lsn>[0-9A-Fa-f]+/[0-9A-Fa-f]+)|(?P<num>\d+)(?![\w/])|'(?P<str>(?:[^']|'')*)'"
    r'|"(?P<qid>(?:[^"]|"")*)"|(?P<word>[A-Za-z_][\w.]*)|(?P<punct>[(),;]))'
)
SYNTAX_ERROR = PgError("42601", "syntax error")


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) pairs: kinds lsn, num, str, word (upper-cased), ident, punct."""
    found, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SYNTAX_ERROR
        kind = match.lastgroup or "punct"
        value = match.group(kind)
        if kind == "word":
            value = value.upper()
        elif kind == "str":
            value = value.replace("''", "'")
        elif kind == "qid":
            kind, value = "ident", value.replace('""', '"')
        found.append((kind, value))
        position = match.end()
    while found and found[-1] == ("punct", ";"):
        found.pop()
    return found


def parse_command(text: str) -> Command:
    """replication_yyparse(): a replication command, or SQL if the first word is none."""
    first = re.match(r"\s*([A-Za-z_]+)", text)
    if first is None or first.group(1).upper() not in COMMANDS:
        return Command("SQL")
    words = tokens(text)
    verb = words[0][1]
    rest = words[1:]
    if verb == "IDENTIFY_SYSTEM" and not rest:
        return Command(verb)
    if verb == "SHOW" and len(rest) == 1 and rest[0][0] in ("word", "ident"):
        return Command(verb, name=rest[0][1].lower() if rest[0][0] == "word" else rest[0][1])
    if verb == "TIMELINE_HISTORY" and len(rest) == 1 and rest[0][0] == "num":
        return Command(verb, timeline=int(rest[0][1]))
    if verb == "START_REPLICATION":
        return _start_replication(rest)
    if verb == "BASE_BACKUP":
        _base_backup_options(rest)
        return Command(verb)
    if verb in ("CREATE_REPLICATION_SLOT", "DROP_REPLICATION_SLOT", "READ_REPLICATION_SLOT") and rest:
        return Command(verb, name=rest[0][1].lower() if rest[0][0] == "word" else rest[0][1])
    raise SYNTAX_ERROR


def _start_replication(rest: list[tuple[str, str]]) -> Command:
    slot = ""
    if rest[:1] == [("word", "SLOT")] and len(rest) > 1:
        slot, rest = rest[1][1].lower() if rest[1][0] == "word" else rest[1][1], rest[2:]
    logical = rest[:1] == [("word", "LOGICAL")]
    if rest[:1] in ([("word", "PHYSICAL")], [("word", "LOGICAL")]):
        rest = rest[1:]
    if not rest or rest[0][0] != "lsn" or (logical and not slot):
        raise SYNTAX_ERROR
    lsn, rest, timeline = parse_lsn(rest[0][1]), rest[1:], 0
    if not logical and rest:
        if len(rest) != 2 or rest[0] != ("word", "TIMELINE") or rest[1][0] != "num":
            raise SYNTAX_ERROR
        timeline = int(rest[1][1])
        if timeline == 0:
            raise PgError("42601", "invalid timeline 0")
    return Command("START_REPLICATION", name=slot, lsn=lsn, timeline=timeline, logical=logical)


_LEGACY_OPTIONS = {"LABEL": "str", "PROGRESS": None, "FAST": None, "WAL": None, "NOWAIT": None,
                   "MAX_RATE": "num", "TABLESPACE_MAP": None, "NOVERIFY_CHECKSUMS": None,
                   "MANIFEST": "str", "MANIFEST_CHECKSUMS": "str"}
_OPTIONS = {"label", "progress", "checkpoint", "wal", "wait", "max_rate", "tablespace_map",
            "verify_checksums", "manifest", "manifest_checksums", "target", "compression"}


def _base_backup_options(rest: list[tuple[str, str]]) -> None:
    """14's "LABEL 'x' WAL FAST ..." or 15's "(LABEL 'x', WAL, CHECKPOINT 'fast')". pgtop's
    backup is the same whatever they say (see pgtop.storage.basebackup)."""
    if rest[:1] == [("punct", "(")]:
        if rest[-1:] != [("punct", ")")]:
            raise SYNTAX_ERROR
        for option in _split_commas(rest[1:-1]):
            if not option or option[0][0] not in ("word", "ident") or len(option) > 2:
                raise SYNTAX_ERROR
            if option[0][1].lower() not in _OPTIONS:
                raise PgError("42601", f'unrecognized base backup option: "{option[0][1].lower()}"')
        return
    index = 0
    while index < len(rest):
        kind, value = rest[index]
        if kind != "word" or value not in _LEGACY_OPTIONS:
            raise SYNTAX_ERROR
        wanted = _LEGACY_OPTIONS[value]
        if wanted is not None:
            index += 1
            if index >= len(rest) or rest[index][0] != wanted:
                raise SYNTAX_ERROR
        index += 1


def _split_commas(items: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    current: list[tuple[str, str]] = []
    for item in items:
        if item == ("punct", ","):
            yield current
            current = []
        else:
            current.append(item)
    yield current
