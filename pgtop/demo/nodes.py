"""YAML nodes to checked values for the scenario loader: every complaint is one `ScenarioError`
line naming the file and the node's line, whatever the file holds.

Scenario files are hand-written, so anything can be in them: explicit tags that make PyYAML
raise plain Python errors (`!!int abc`), control characters, nesting deeper than Python's
stack, aliases that make a value refer to itself or blow up to a billion items when printed.
None of that may escape as anything but a ScenarioError, and no message may print a value
whole: values are shown through a bounded `reprlib`.
"""

from __future__ import annotations

import copy
import re
import reprlib
from pathlib import Path
from typing import Any

import yaml

MAX_SECONDS = 3600.0  # a wait or a deadline longer than an hour is a typo in a presentation
MERGE_TAG = "tag:yaml.org,2002:merge"
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # yaml.reader's, so lines agree with its marks

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 60, 60
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = _SHOWN.maxfrozenset = 4


class ScenarioError(Exception):
    """A scenario file that cannot be played: one line, with the file and line number."""

    def __init__(self, message: str) -> None:
        # One line whatever a value or a YAML message held: control characters are escaped.
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


def shown(value: Any) -> str:
    """A value for a message: its repr, cut short (an alias can make a list of 10**9 items)."""
    return _SHOWN.repr(value)


def _problem(error: BaseException) -> str:
    """What PyYAML (or a constructor it called) says is wrong, in one short line."""
    if isinstance(error, yaml.MarkedYAMLError):
        text = error.problem or error.context or ""
        if "recursive" in text:
            text = "an alias in it refers to the value itself"  # PyYAML: "unconstructable recursive node"
    else:
        text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:200]


class _Loader(yaml.SafeLoader):
    """A SafeLoader whose aliases carry the line where they are used, not the anchor's:
    `- kill: *victim` with a bad victim is reported on the kill's line."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if not self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        node = copy.copy(super().compose_node(parent, index))  # shallow: the value is shared
        node.start_mark = mark
        return node


def compose(text: str, path: Path) -> tuple[yaml.SafeLoader, yaml.Node | None]:
    """The file's single document as nodes (each with its line), and the loader that made
    them, to construct values with. Raises ScenarioError."""
    try:
        loader = _Loader(text)  # the reader checks every character here already
        return loader, loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioError(f"{path}:{line}: YAML syntax error: {_problem(error)}") from None
    except yaml.reader.ReaderError as error:
        line = len(_LINE_BREAK.findall(text, 0, max(error.position, 0))) + 1
        raise ScenarioError(f"{path}:{line}: YAML syntax error: {_problem(error)}") from None
    except RecursionError:
        raise ScenarioError(f"{path}: the file is nested too deeply to read") from None
    except Exception as error:  # noqa: BLE001 - a PyYAML oddity must still be one line
        raise ScenarioError(f"{path}: YAML error: {_problem(error)}") from None


class NodeReader:
    """Turns YAML nodes into checked values; every complaint carries the node's line."""

    def __init__(self, path: Path, loader: yaml.SafeLoader) -> None:
        self.path = path
        self.loader = loader

    def fail(self, node: yaml.Node | None, message: str) -> ScenarioError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ScenarioError(f"{self.path}:{line}: {message}")

    def value(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except RecursionError:
            raise self.fail(node, "this value is nested too deeply") from None
        except Exception as error:  # noqa: BLE001 - explicit tags (!!int abc) raise anything
            raise self.fail(node, f"cannot read this value: {_problem(error)}") from None

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (name: value)")
        items = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                raise self.fail(key_node, f"{what}: merge keys (<<) are not supported; write the fields out")
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node, f"{what}: keys must be words, not {shown(key)}")
            if key in seen:
                raise self.fail(key_node, f"{what}: {shown(key)} is given twice")
            seen.add(key)
            items.append((key, key_node, value_node))
        return items

    def fields(self, node: yaml.Node, what: str) -> dict[str, yaml.Node]:
        return {key: value for key, _, value in self.mapping(node, what)}

    def name(self, node: yaml.Node) -> str | None:
        """The node's text if it is a plain word (a name to look up), else None; never the
        str() of a list, which an alias can make huge."""
        value = self.value(node)
        return value.strip() if isinstance(value, str) else None

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.value(node)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, f"{what} must be a non-empty text")
        return value

    def number(self, node: yaml.Node, what: str, *, minimum: float = 0.0) -> float:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:  # NaN too
            raise self.fail(node, f"{what} must be a number of seconds >= {minimum:g}, not {shown(value)}")
        if value > MAX_SECONDS:
            raise self.fail(node, f"{what} must be at most {MAX_SECONDS:g} seconds, not {shown(value)}")
        return float(value)

    def flag(self, node: yaml.Node, what: str) -> bool:
        value = self.value(node)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be on or off, not {shown(value)}")
        return value

    def regex(self, node: yaml.Node, what: str) -> re.Pattern[str]:
        text = self.text(node, what)
        try:
            return re.compile(text)
        except (re.error, RecursionError, OverflowError) as error:
            raise self.fail(node, f"{what}: invalid regular expression {shown(text)}: {error}") from None

