"""Fuzzed scenario files: whatever a file holds (random YAML-ish text, the real demo/*.yaml
with a key dropped, a value of the wrong type, an unknown step, odd bytes), it either loads
into a scenario the stage can play or is refused with one ScenarioError line naming the file
and, where there is one, the line. `pgtop demo BROKEN.yaml` prints that line and exits 2
before it makes a cluster.

Bounded: about a thousand small examples in all, about ten seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgtop.common.configfile import parse_config_text
from pgtop.core.config import Config
from pgtop.core.guc import apply_config_file
from pgtop.core.vocabulary import LogLevel
from pgtop.demo import command
from pgtop.demo import scenario as sc
from pgtop.demo.loader import ScenarioError, load_scenario, parse_scenario
from pgtop.demo.nodes import MAX_SECONDS
from pgtop.demo.stage import yaml_line

PATH = Path("demo/fuzzed.yaml")
DEMO_TEXTS = {path.name: path.read_text() for path in command.scenario_paths()}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks
_NO_LINE = ("the file is nested too deeply to read", "YAML error: ", "cannot read the scenario: ")


# -- the property -----------------------------------------------------------------------------


def check(text: str) -> sc.Scenario | None:
    """Load `text`: a playable scenario, or one clear ScenarioError line; nothing else."""
    try:
        scenario = parse_scenario(text, PATH)
    except ScenarioError as error:
        check_message(str(error), lines=len(_LINE_BREAK.split(text)))
        return None
    check_playable(scenario)
    return scenario


def check_message(message: str, *, lines: int, path: Path = PATH) -> None:
    assert message.isprintable(), repr(message)  # one line: no newline, no control character
    assert len(message) < 600, message
    assert message.startswith(f"{path}:"), message
    located = re.match(rf"{re.escape(str(path))}:(\d+): \S", message)
    if located is None:
        assert message.startswith(tuple(f"{path}: {start}" for start in _NO_LINE)), message
    else:
        assert 1 <= int(located.group(1)) <= lines, message


def check_playable(scenario: sc.Scenario) -> None:
    """What the player and the stage rely on: finite waits, and settings that make a
    pgtop.yaml the postmaster accepts at startup."""
    assert scenario.steps and all(step.line >= 1 for step in scenario.steps)
    for step in scenario.steps:
        what = step.what
        if isinstance(what, sc.Wait):
            assert 0 <= what.seconds <= MAX_SECONDS
        if isinstance(what, sc.Expect):
            assert what.conditions and 0.1 <= what.timeout <= MAX_SECONDS and 0 <= what.during <= MAX_SECONDS
        if isinstance(what, sc.ReloadConfig) and what.settings:
            check_settings(what.settings)
    check_settings(scenario.settings)


def check_settings(pairs: tuple[tuple[str, Any], ...]) -> None:
    text = "\n".join(yaml_line(name, value) for name, value in pairs) + "\n"
    read = parse_config_text(text, "/data/pgtop.yaml")
    assert read.error is None, (pairs, read.error)
    _, logs = apply_config_file(Config(), read, at_startup=True)
    assert not [log for log in logs if log.level >= LogLevel.FATAL], (pairs, logs)


# -- random documents -------------------------------------------------------------------------

_TOKENS = st.sampled_from(
    list("ab: \n\t'\"[]{}-?&*!|>#%@,.\\=01\x00\x01\x85\u2028\ufeff")
    + ["name", "summary", "steps", "settings", "needs", "- ", "  ", "caption", "kill", "signal",
       "expect", "pm_state", "wait", "sessions", "reload_config", "set", "&a ", "*a", "<<: ",
       "!!int ", "!!float ", "!!binary ", "!!timestamp ", "!!set ", "!foo ", "---", "...", ".nan",
       ".inf", "-1", "1e400", "99999999999999999999", "on", "SIGKILL", "PM_RUN", "walwriter"]
)


@FUZZ
@given(st.one_of(
    st.text(max_size=80),
    st.lists(_TOKENS, max_size=40).map("".join),
    st.lists(_TOKENS, max_size=40).map(lambda tokens: "name: x\nsummary: s\nsteps:\n  - " + "".join(tokens)),
))
@example("name: x\nsummary: s\nsteps:\n  - caption: a\x01\n")
@example("name: x\nsummary: s\nsteps:\n  - wait: !!float abc\n")
@example("name: x\nsummary: s\nsteps:\n  - caption: " + "[" * 3000)
@example("name: x\nsummary: s\nneeds: &a [*a]\nsteps:\n  - caption: a\n")
def test_fuzz_any_text_loads_or_is_one_clear_line(text: str) -> None:
    check(text)


# -- the real files, mutated ------------------------------------------------------------------

_BAD_WORDS = st.sampled_from(
    ["SIGNOPE", "SIG", "PM_RUNNING", "pm_", "kil", "walwriterr", "postgres", "", " ", "close",
     "5min", "0x10", "-1", "1e309", "\x00", "\n", "a\nb", "{", "*", "on", "yes", "null"]
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), _BAD_WORDS,
)
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
_KEYS = st.one_of(st.sampled_from(["caption", "kill", "stop", "signal", "expect", "wait", "pause",
                                   "sessions", "load", "reload_config", "corrupt", "key", "kind",
                                   "timeout", "during", "pm_state", "reached", "log", "set",
                                   "stage_only", "unknown", "name", "steps", "settings"]),
                  st.text(max_size=8))


def _containers(data: Any) -> list[Any]:
    """Every list and mapping in the document, the root first."""
    found, stack = [], [data]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, dict)):
            found.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
    return found


_GOOD_WORDS = st.sampled_from(["walwriter", "checkpointer", "logical replication launcher", "SIGKILL",
                              "TERM", "PM_RUN", "RUN", "fast", "ready", 1, 0.5, 20, 255, True, False])
_ODD = st.one_of(_VALUES, _GOOD_WORDS)
_FIELDS = {
    "kill": ["kind", "signal"], "stop": ["kind", "signal"], "cont": ["kind"], "key": ["press", "child"],
    "reload_config": ["set", "write", "revert", "reload"], "wait": ["seconds", "pause"],
    "expect": ["pm_state", "reached", "log", "pid_changed", "pid_same", "running", "absent", "exit_code",
               "shutdown", "fatal_error", "client_saw", "connection_refused", "rows_survive", "timeout", "during"],
}
_STEP_NAMES = sorted(_FIELDS) + ["caption", "signal", "load", "sessions", "pause", "start", "corrupt", "kil"]
_PARAMETERS = st.sampled_from(["port", "Port", "max_connections", "checkpoint_timeout", "bgwriter_delay",
                               "restart_after_crash", "log_min_messages", "application_name", "redo_delay",
                               "pgtop.redo_delay", "pgtop.other", "max_conections", ""])


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """A small scenario of the right shape with odd values in it: past the structure checks,
    into each step's and each setting's own."""
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(_STEP_NAMES))
        fields = _FIELDS.get(name)
        if fields and draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True))
            value: Any = {field: draw(_ODD) for field in chosen}
            if name == "reload_config" and "set" in value:
                value["set"] = draw(st.dictionaries(_PARAMETERS, _ODD, max_size=2))
        else:
            value = draw(_ODD)
        step = {name: value}
        if draw(st.integers(0, 9)) == 0:
            step["stage_only"] = draw(_ODD)
        steps.append(step)
    document: dict[str, Any] = {"name": draw(st.sampled_from(["x", "a-b", "X y", ""])), "summary": "s"}
    if draw(st.booleans()):
        document["settings"] = draw(st.dictionaries(_PARAMETERS, _ODD, max_size=3))
    if draw(st.integers(0, 4)) == 0:
        document[draw(st.sampled_from(["needs", "autostart", "extra"]))] = draw(_ODD)
    document["steps"] = steps
    return yaml.safe_dump(document, sort_keys=False)


@settings(FUZZ, max_examples=400)
@given(near_valid())
def test_fuzz_odd_values_in_the_right_places_load_or_are_one_clear_line(text: str) -> None:
    check(text)


@st.composite
def mutated_demo(draw: st.DrawFn) -> str:
    """A real scenario with one to three edits at random places in its tree."""
    data = yaml.safe_load(draw(st.sampled_from(sorted(DEMO_TEXTS.values()))))
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(_containers(data)))
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        operation = draw(st.sampled_from(["drop", "replace", "wrap_list", "wrap_dict", "add_key", "rename"]))
        if operation == "drop":
            del target[key]
        elif operation == "replace":
            target[key] = draw(_VALUES)
        elif operation == "wrap_list":
            target[key] = [target[key]]
        elif operation == "wrap_dict":
            target[key] = {draw(_KEYS): target[key]}
        elif isinstance(target, dict) and operation == "add_key":
            target[draw(_KEYS)] = draw(_VALUES)
        elif isinstance(target, dict):  # rename: the value under another (step, field) name
            target[draw(_KEYS)] = target.pop(key)
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)


@FUZZ
@given(mutated_demo())
def test_fuzz_mutated_demo_files_load_or_are_one_clear_line(text: str) -> None:
    check(text)


@st.composite
def edited_demo(draw: st.DrawFn) -> str:
    """A real scenario with edits to its text: tokens put in, spans cut, lines repeated."""
    text = draw(st.sampled_from(sorted(DEMO_TEXTS.values())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        match draw(st.sampled_from(["insert", "cut", "repeat_line", "anchor"])):
            case "insert":
                text = text[:at] + draw(_TOKENS) + text[at:]
            case "cut":
                text = text[:at] + text[at + draw(st.integers(1, 40)) :]
            case "repeat_line":
                lines = text.splitlines(keepends=True)
                index = draw(st.integers(0, len(lines) - 1))
                text = "".join(lines[: index + 1] + [lines[index]] + lines[index + 1 :])
            case "anchor":  # anchor one value and use it again further down
                lines = text.splitlines(keepends=True)
                index = draw(st.integers(0, len(lines) - 1))
                lines[index] = re.sub(r": ", ": &x ", lines[index], count=1)
                text = "".join(lines) + draw(st.sampled_from(["  - kill: *x\n", "  - expect: {pm_state: *x}\n", "  - wait: *x\n", "  - *x\n"]))
    return text


@FUZZ
@given(edited_demo())
def test_fuzz_edited_demo_texts_load_or_are_one_clear_line(text: str) -> None:
    check(text)


# -- bytes from disk --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(DEMO_TEXTS.values())), st.binary(min_size=1, max_size=6), st.integers(0, 2000))
def test_fuzz_bytes_on_disk_load_or_are_one_clear_line(tmp_path: Path, text: str, junk: bytes, where: int) -> None:
    data = text.encode()
    data = data[:where] + junk + data[where:]
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(data)
    try:
        scenario = load_scenario(path)
    except ScenarioError as error:
        lines = max(data.count(b"\n") + 1, len(_LINE_BREAK.split(data.decode(errors="replace"))))
        check_message(str(error), lines=lines, path=path)
    else:
        check_playable(scenario)


# -- the cases found, each with its message ---------------------------------------------------

_BASE = "name: x\nsummary: s\nsteps:\n"


def _laughs(use: str) -> str:
    """Nine levels of ten aliases each: 10**9 items if anyone printed the value whole."""
    anchors = ["&l0 [" + ",".join(["lol"] * 10) + "]"]
    anchors += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return f"name: x\nsummary: s\nneeds: [{', '.join(anchors)}]\nsteps:\n  - {use}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_BASE + "  - caption: a\x01b\n", "4: YAML syntax error: unacceptable character #x0001: special characters are not allowed"),
        (_BASE + "  - sessions: !!int abc\n", "4: cannot read this value: invalid literal for int() with base 10: 'abc'"),
        (_BASE + "  - caption: !!timestamp 2001-13-40\n", "4: cannot read this value: month must be in 1..12"),
        (_BASE + "  - caption: {[1]: 2}\n", "4: cannot read this value: found unhashable key"),
        (_BASE + "  - caption: " + "[" * 900 + "]" * 900 + "\n", " the file is nested too deeply to read"),
        (_BASE + "  - wait: .nan\n", "4: wait must be a number of seconds >= 0, not nan"),
        (_BASE + "  - expect: {pm_state: PM_RUN, timeout: .inf}\n", "4: timeout must be at most 3600 seconds, not inf"),
        (_BASE + "  - expect: &e {pm_state: PM_RUN}\n  - expect: {<<: *e, timeout: 3}\n", "5: expect: merge keys (<<) are not supported; write the fields out"),
        (_BASE + "  - caption: a\n  - kill: &v postgres\n  - caption: b\n  - kill: *v\n", "5: unknown child kind 'postgres'"),
        (_BASE + "  - caption: a\n  - expect: {pm_state: &s PM_RUN}\n  - kill: *s\n", "6: unknown child kind 'PM_RUN'"),
        ("name: x\nsummary: s\nneeds: &a [*a]\nsteps:\n  - caption: a\n", "3: cannot read this value: an alias in it refers to the value itself"),
        ('name: x\nsummary: s\nsettings: {"a\\nb": 1}\nsteps:\n  - caption: a\n', '3: unrecognized configuration parameter "a\\nb"'),
        ("name: x\nsummary: s\nsettings: {application_name: {a: 1}}\nsteps:\n  - caption: a\n", '3: parameter "application_name" has a mapping; expected a single value'),
        ("name: x\nsummary: s\nsettings: {redo_delay: 1, pgtop.redo_delay: 2}\nsteps:\n  - caption: a\n", '3: parameter "pgtop.redo_delay" is given twice'),
        ("name: x\nsummary: s\nsettings: {Port: 6000, port: 6001}\nsteps:\n  - caption: a\n", '3: parameter "port" is given twice'),
        (_laughs("expect: {pm_state: *l8}"), "5: unknown pmState [[[...]"),
        (_laughs("signal: *l8"), "5: unknown signal [[[...]"),
        (_laughs("reload_config: {set: {application_name: *l8}}"), '5: parameter "application_name" has a list; expected a single value'),
    ],
)
def test_found_by_fuzzing_each_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, PATH)
    assert str(caught.value).startswith(f"{PATH}:{message}")
    check_message(str(caught.value), lines=text.count("\n") + 1)


def test_settings_come_out_with_their_canonical_names_and_plain_values() -> None:
    scenario = check("name: x\nsummary: s\nsettings: {Checkpoint_Timeout: 60, application_name: 2001-01-01, "
                     "redo_delay: 1}\nsteps:\n  - caption: a\n")
    assert scenario is not None
    assert scenario.settings == (("checkpoint_timeout", 60), ("application_name", "2001-01-01"), ("pgtop.redo_delay", 1))


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: x\nsummary: caf\xe9\nsteps:\n  - caption: a\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == f"{path}:2: not UTF-8 text: byte 0xe9 cannot start or continue a character"


def test_every_demo_file_passes_the_property() -> None:
    for text in DEMO_TEXTS.values():
        assert check(text) is not None


# -- the command line -------------------------------------------------------------------------

BROKEN_FILES: dict[str, bytes] = {
    "syntax": b"name: x\nsummary: s\nsteps:\n  - caption: [\n",
    "unknown-step": b"name: x\nsummary: s\nsteps:\n  - kil: walwriter\n",
    "bad-signal": b"name: x\nsummary: s\nsteps:\n  - signal: SIGNOPE\n",
    "bad-setting": b"name: x\nsummary: s\nsettings: {max_connections: lots}\nsteps:\n  - caption: a\n",
    "latin1": b"name: x\nsummary: caf\xe9\nsteps:\n  - caption: a\n",
    "laughs": _laughs("expect: {pm_state: *l8}").encode(),
    "deep": (_BASE + "  - caption: " + "[" * 5000 + "\n").encode(),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_FILES))
def test_pgtop_demo_on_a_broken_file_says_one_line_and_starts_nothing(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(BROKEN_FILES[kind])
    scratch = tmp_path / "tmp"  # where a throwaway cluster would be made
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    args = ["--headless"] if kind in ("syntax", "laughs") else []
    result = subprocess.run(
        [sys.executable, "-m", "pgtop", "demo", *args, str(path)],
        check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.stderr
    assert lines[0].startswith(f"pgtop demo: {path}:"), lines[0]
    check_message(lines[0].removeprefix("pgtop demo: "), lines=BROKEN_FILES[kind].count(b"\n") + 1, path=path)
    assert list(scratch.iterdir()) == [], "a cluster directory was made"


def test_pgtop_demo_on_a_directory_named_yaml_says_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    result = subprocess.run([sys.executable, "-m", "pgtop", "demo", str(path)], check=False, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"pgtop demo: {path}: cannot read the scenario: Is a directory\n"

