"""Reads a scenario file: YAML in, a `Scenario` out, or one `ScenarioError` line that names
the file, the line and what is wrong ("demo/tour.yaml:12: unknown step "kil" ...").

The file is composed into YAML nodes first (`nodes.py`), so every value keeps its line number,
and whatever the file holds, the only exception out of here is a ScenarioError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pgtop.common.timezones import time_zone_names
from pgtop.core import guc
from pgtop.core.state import LOGICAL_REPLICATION_LAUNCHER
from pgtop.core.vocabulary import EXIT_NAME, ChildKind, PMState, Shutdown, Sig
from pgtop.demo import scenario as sc
from pgtop.demo.nodes import NodeReader, ScenarioError, compose, shown

NEEDS = ("clients", "standby")
TOP_KEYS = ("name", "summary", "settings", "steps", "autostart", "needs")
STAGE_CHOSEN = frozenset({"port", "unix_socket_directories"})  # where the throwaway cluster listens
CORRUPTIBLE = ("pg_control",)


# -- child names ------------------------------------------------------------------------------


def _child_aliases() -> dict[str, sc.ChildRef]:
    aliases: dict[str, sc.ChildRef] = {}
    for kind in ChildKind:
        ref = sc.ChildRef(kind)
        for name in (kind.value, kind.name.lower(), kind.name.lower().replace("_", " ")):
            aliases[name] = ref
        if kind in EXIT_NAME and kind is not ChildKind.BACKEND:
            aliases[EXIT_NAME[kind].removesuffix(" process").lower()] = ref
    aliases.update(
        {
            "backend": sc.ChildRef(ChildKind.BACKEND),
            "bgwriter": sc.ChildRef(ChildKind.BGWRITER),
            "syslogger": sc.ChildRef(ChildKind.SYSLOGGER),
            "stats": sc.ChildRef(ChildKind.STATS),
            "autovacuum": sc.ChildRef(ChildKind.AUTOVAC_LAUNCHER),
        }
    )
    launcher = LOGICAL_REPLICATION_LAUNCHER.name
    aliases[launcher] = sc.ChildRef(ChildKind.BGWORKER, launcher)
    return aliases


CHILD_ALIASES = _child_aliases()


# -- reading nodes ----------------------------------------------------------------------------


class _Reader(NodeReader):
    """NodeReader plus pgtop's vocabulary: signals, children, pmStates."""

    def signal(self, node: yaml.Node) -> Sig:
        value = self.value(node)
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return Sig(value)
            except ValueError:
                pass
        elif isinstance(value, str) and (name := value.strip().upper().removeprefix("SIG")) in Sig.__members__:
            return Sig[name]
        raise self.fail(node, f"unknown signal {shown(value)}; expected a name such as SIGKILL or SIGTERM")

    def child(self, node: yaml.Node) -> sc.ChildRef:
        name = self.name(node)
        ref = CHILD_ALIASES.get(name.lower()) if name is not None else None
        if ref is None:
            known = sorted({kind.value for kind in ChildKind} | {LOGICAL_REPLICATION_LAUNCHER.name})
            raise self.fail(node, f"unknown child kind {shown(self.value(node))}; expected one of: {', '.join(known)}")
        return ref

    def pm_state(self, node: yaml.Node) -> PMState:
        name = self.name(node)
        state = name.upper().removeprefix("PM_") if name is not None else None
        if state not in PMState.__members__:
            names = ", ".join(each.pg_name for each in PMState)
            raise self.fail(node, f"unknown pmState {shown(self.value(node))}; expected one of: {names}")
        return PMState[state]


# -- steps ------------------------------------------------------------------------------------


def _signal_child(reader: _Reader, node: yaml.Node, default: Sig | None) -> sc.SignalChild:
    """`kill: walwriter`, or `kill: {kind: walwriter, signal: SIGKILL}`."""
    if isinstance(node, yaml.ScalarNode):
        if default is None:
            raise reader.fail(node, "give the child and the signal: {kind: walwriter, signal: SIGTERM}")
        return sc.SignalChild(reader.child(node), default)
    fields = reader.fields(node, "the child")
    unknown = set(fields) - {"kind", "signal"}
    if unknown:
        raise reader.fail(node, f"unknown field {shown(min(unknown))}; expected kind and signal")
    if "kind" not in fields:
        raise reader.fail(node, "which child? give its kind: {kind: walwriter}")
    if "signal" in fields:
        signal = reader.signal(fields["signal"])
    elif default is not None:
        signal = default
    else:
        raise reader.fail(node, "which signal? e.g. {kind: walwriter, signal: SIGKILL}")
    return sc.SignalChild(reader.child(fields["kind"]), signal)


def _key(reader: _Reader, node: yaml.Node) -> sc.Key:
    if isinstance(node, yaml.ScalarNode):
        return sc.Key(reader.text(node, "key"))
    fields = reader.fields(node, "key")
    if "press" not in fields or set(fields) - {"press", "child"}:
        raise reader.fail(node, "key is a key name, or {press: k, child: walwriter}")
    child = reader.child(fields["child"]) if "child" in fields else None
    return sc.Key(reader.text(fields["press"], "key"), child)


def _reload_config(reader: _Reader, node: yaml.Node) -> sc.ReloadConfig:
    fields = {key: (key_node, value) for key, key_node, value in reader.mapping(node, "reload_config")}
    unknown = set(fields) - {"set", "write", "revert", "reload"}
    if unknown:
        raise reader.fail(node, f"reload_config: unknown field {shown(min(unknown))}; expected set, write, revert or reload")
    changes = [name for name in ("set", "write", "revert") if name in fields]
    if len(changes) != 1:
        raise reader.fail(node, "reload_config takes exactly one of set, write or revert")
    reload = reader.flag(fields["reload"][1], "reload") if "reload" in fields else True
    if "set" in fields:
        return sc.ReloadConfig(settings=_settings(reader, fields["set"][1]), reload=reload)
    if "write" in fields:
        return sc.ReloadConfig(append=reader.text(fields["write"][1], "write"), reload=reload)
    if not reader.flag(fields["revert"][1], "revert"):
        raise reader.fail(fields["revert"][1], "revert: on is the only useful value")
    return sc.ReloadConfig(revert=True, reload=reload)


def _wait(reader: _Reader, node: yaml.Node) -> sc.Wait:
    if isinstance(node, yaml.ScalarNode):
        return sc.Wait(seconds=reader.number(node, "wait"))
    fields = reader.fields(node, "wait")
    if set(fields) - {"seconds", "pause"} or not fields:
        raise reader.fail(node, "wait is {seconds: 2} or {pause: true}")
    seconds = reader.number(fields["seconds"], "seconds") if "seconds" in fields else 0.0
    pause = reader.flag(fields["pause"], "pause") if "pause" in fields else False
    return sc.Wait(seconds, pause)


def _sessions(reader: _Reader, node: yaml.Node) -> sc.Sessions:
    value = reader.value(node)
    if value == "close" or value is False:
        return sc.Sessions(0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise reader.fail(node, f"sessions is a number of sessions to open (0..20) or close, not {shown(value)}")
    return sc.Sessions(value)


def _corrupt(reader: _Reader, node: yaml.Node) -> sc.Corrupt:
    what = reader.text(node, "corrupt")
    if what not in CORRUPTIBLE:
        raise reader.fail(node, f"corrupt: unknown target {shown(what)}; expected one of: {', '.join(CORRUPTIBLE)}")
    return sc.Corrupt(what)


def _levels() -> dict[str, Shutdown]:
    return {level.name.lower(): level for level in Shutdown} | {"none": Shutdown.NO}


EXPECTATIONS: dict[str, Callable[[_Reader, yaml.Node], sc.Condition]] = {
    "pm_state": lambda r, n: sc.PmStateIs(r.pm_state(n)),
    "reached": lambda r, n: sc.PmStateReached(r.pm_state(n)),
    "log": lambda r, n: sc.LogSeen(r.regex(n, "log")),
    "pid_changed": lambda r, n: sc.PidChanged(r.child(n)),
    "pid_same": lambda r, n: sc.PidSame(r.child(n)),
    "running": lambda r, n: sc.Running(r.child(n)),
    "absent": lambda r, n: sc.Absent(r.child(n)),
    "exit_code": lambda r, n: sc.ExitCode(_exit_code(r, n)),
    "shutdown": lambda r, n: sc.ShutdownIs(_shutdown(r, n)),
    "fatal_error": lambda r, n: sc.FatalErrorIs(r.flag(n, "fatal_error")),
    "client_saw": lambda r, n: sc.ClientSaw(r.regex(n, "client_saw")),
    "connection_refused": lambda r, n: sc.ConnectionRefused(r.regex(n, "connection_refused")),
    "rows_survive": lambda r, n: _rows_survive(r, n),
}


def _exit_code(reader: _Reader, node: yaml.Node) -> int:
    value = reader.value(node)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise reader.fail(node, f"exit_code must be a number 0..255, not {shown(value)}")
    return value


def _shutdown(reader: _Reader, node: yaml.Node) -> Shutdown:
    name = reader.name(node)
    level = _levels().get(name.lower().removesuffix("shutdown").strip()) if name is not None else None
    if level is None:
        raise reader.fail(node, f"unknown shutdown level {shown(reader.value(node))}; expected none, smart, fast or immediate")
    return level


def _rows_survive(reader: _Reader, node: yaml.Node) -> sc.RowsSurvive:
    if not reader.flag(node, "rows_survive"):
        raise reader.fail(node, "rows_survive: on is the only useful value")
    return sc.RowsSurvive()


def _expect(reader: _Reader, node: yaml.Node) -> sc.Expect:
    conditions: list[sc.Condition] = []
    timeout, during = sc.DEFAULT_TIMEOUT, 0.0
    for key, key_node, value in reader.mapping(node, "expect"):
        if key == "timeout":
            timeout = reader.number(value, "timeout", minimum=0.1)
        elif key == "during":
            during = reader.number(value, "during")
        elif key in EXPECTATIONS:
            conditions.append(EXPECTATIONS[key](reader, value))
        else:
            raise reader.fail(key_node, f"unknown expectation {shown(key)}; expected one of: {', '.join(EXPECTATIONS)}, timeout, during")
    if not conditions:
        raise reader.fail(node, "expect needs at least one condition, e.g. {pm_state: PM_RUN}")
    return sc.Expect(tuple(conditions), timeout, during)


STEPS: dict[str, Callable[[_Reader, yaml.Node], sc.Action | sc.Expect]] = {
    "caption": lambda r, n: sc.Caption(r.text(n, "caption").strip()),
    "key": _key,
    "signal": lambda r, n: sc.SignalPostmaster(r.signal(n)),
    "kill": lambda r, n: _signal_child(r, n, Sig.KILL),
    "stop": lambda r, n: sc.SignalChild(_signal_child(r, n, Sig.STOP).child, Sig.STOP),
    "cont": lambda r, n: sc.SignalChild(_signal_child(r, n, Sig.CONT).child, Sig.CONT),
    "load": lambda r, n: sc.Load(r.flag(n, "load")),
    "sessions": _sessions,
    "reload_config": _reload_config,
    "wait": _wait,
    "pause": lambda r, n: sc.Wait(pause=r.flag(n, "pause")),
    "start": lambda r, n: sc.Start(),
    "corrupt": _corrupt,
    "expect": _expect,
}


def _step(reader: _Reader, node: yaml.Node) -> sc.Step:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise reader.fail(node, "a step is a mapping with one action, e.g. - caption: \"...\"")
    items = reader.mapping(node, "step")
    stage_only = False
    actions = []
    for key, key_node, value in items:
        if key == "stage_only":
            stage_only = reader.flag(value, "stage_only")
        elif key in STEPS:
            actions.append((key, value))
        else:
            raise reader.fail(key_node, f"unknown step {shown(key)}; expected one of: {', '.join(STEPS)}")
    if len(actions) != 1:
        found = " and ".join(name for name, _ in actions) or "none"
        raise reader.fail(node, f"one action per step, found {found}")
    name, value = actions[0]
    return sc.Step(line, STEPS[name](reader, value), stage_only)


# -- the file ---------------------------------------------------------------------------------


def _settings(reader: _Reader, node: yaml.Node) -> tuple[tuple[str, Any], ...]:
    """pgtop.yaml parameters, checked by name and value as the postmaster would. Names come
    out in their canonical spelling, so the stage writes each one once as a plain word."""
    settings: dict[str, tuple[str, Any]] = {}
    for key, key_node, value_node in reader.mapping(node, "settings"):
        field = guc.field_name(key)
        if field is None:
            raise reader.fail(key_node, f'unrecognized configuration parameter "{key}"')
        name = guc.guc_name(field)
        if field in settings:
            raise reader.fail(key_node, f'parameter "{name}" is given twice')
        value = _setting_value(reader, value_node, name)
        try:
            guc.parse_value(field, value, time_zone_names())
        except guc.InvalidValue as error:
            raise reader.fail(value_node, error.message) from None
        settings[field] = (name, value)
    return tuple(settings.values())


def _stage_settings(reader: _Reader, node: yaml.Node) -> tuple[tuple[str, Any], ...]:
    """The scenario's starting parameters: any but where the cluster listens, which the stage
    picks for each play (a free port, a socket directory of its own)."""
    settings = _settings(reader, node)
    for key, key_node, _ in reader.mapping(node, "settings"):
        if guc.field_name(key) in STAGE_CHOSEN:
            raise reader.fail(key_node, f'parameter "{guc.guc_name(guc.field_name(key))}" is chosen by the stage for each play')
    return settings


def _setting_value(reader: _Reader, node: yaml.Node, name: str) -> Any:
    """One plain value, as pgtop.yaml takes it (configfile refuses lists and mappings too);
    dates and other YAML types keep the text as written."""
    if not isinstance(node, yaml.ScalarNode):
        what = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        raise reader.fail(node, f'parameter "{name}" has {what}; expected a single value')
    value = reader.value(node)
    return value if isinstance(value, (str, int, float, type(None))) else node.value


def load_scenario(path: str | Path) -> sc.Scenario:
    """Read and check one scenario file. Raises ScenarioError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read the scenario: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ScenarioError(f"{path}:{line}: not UTF-8 text: byte 0x{data[error.start]:02x} cannot start or continue a character") from None
    return parse_scenario(text, path)


def parse_scenario(text: str, path: Path) -> sc.Scenario:
    """Check the text of a scenario file named `path` (used in the messages)."""
    loader, root = compose(text, path)
    reader = _Reader(path, loader)
    try:
        return _scenario(reader, root, path)
    finally:
        loader.dispose()


def _scenario(reader: _Reader, root: yaml.Node | None, path: Path) -> sc.Scenario:
    if root is None:
        raise ScenarioError(f"{path}:1: the file is empty; a scenario needs name, summary and steps")
    fields = {}
    for key, key_node, value in reader.mapping(root, "a scenario"):
        if key not in TOP_KEYS:
            raise reader.fail(key_node, f"unknown field {shown(key)}; expected one of: {', '.join(TOP_KEYS)}")
        fields[key] = value
    for required in ("name", "summary", "steps"):
        if required not in fields:
            raise reader.fail(root, f"the scenario has no {required}")
    name = reader.text(fields["name"], "name")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise reader.fail(fields["name"], f"name {shown(name)} must be lower-case words joined by hyphens")
    summary = reader.text(fields["summary"], "summary")
    if "\n" in summary.strip():
        raise reader.fail(fields["summary"], "summary must be one line")
    steps_node = fields["steps"]
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        raise reader.fail(steps_node, "steps must be a non-empty list")
    return sc.Scenario(
        name=name,
        summary=summary.strip(),
        path=path,
        settings=_stage_settings(reader, fields["settings"]) if "settings" in fields else (),
        steps=tuple(_step(reader, node) for node in steps_node.value),
        autostart=reader.flag(fields["autostart"], "autostart") if "autostart" in fields else True,
        needs=_needs(reader, fields.get("needs")),
    )


def _needs(reader: _Reader, node: yaml.Node | None) -> frozenset[str]:
    if node is None:
        return frozenset()
    value = reader.value(node)
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item not in NEEDS:
            raise reader.fail(node, f"needs: unknown {shown(item)}; expected any of: {', '.join(NEEDS)}")
    return frozenset(items)
