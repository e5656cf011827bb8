"""Scenario files: every one in demo/ loads, `pgtop demo` lists them one line each, and a
broken file gets one line naming the file, the line and what is wrong."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest

from pgtop.core.vocabulary import ChildKind, PMState, Sig
from pgtop.demo import command
from pgtop.demo import scenario as sc
from pgtop.demo.loader import ScenarioError, load_scenario, parse_scenario

DEMO_FILES = command.scenario_paths()
REQUIRED = {
    "tour", "crash-recovery", "shutdown-modes", "escalation", "reload", "sigkill-escalation",
    "throttles", "startup-failure", "restart-after-crash-off", "logical-launcher", "standby",
}


def _parse(text: str) -> sc.Scenario:
    return parse_scenario(textwrap.dedent(text), Path("demo/x.yaml"))


def _error(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        _parse(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_demo_file_loads_and_teaches_something():
    names = set()
    for path in DEMO_FILES:
        scenario = load_scenario(path)
        assert scenario.name == path.stem
        names.add(scenario.name)
        kinds = {type(step.what) for step in scenario.steps}
        assert sc.Caption in kinds and sc.Expect in kinds, f"{path.name}: captions and expectations, please"
    assert REQUIRED <= names


def test_pgtop_demo_lists_each_scenario_on_one_line(capsys):
    assert command.run(argparse.Namespace(name=None)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(path.stem for path in DEMO_FILES)
    tour = next(line for line in lines if line.startswith("tour "))
    assert tour.split(None, 1)[1] == "Cold start to ready, and what each child of the postmaster is for."


def test_an_unknown_scenario_name_is_a_usage_error(capsys):
    assert command.run(argparse.Namespace(name="nosuch", headless=True, auto=False)) == 2
    assert capsys.readouterr().err == "pgtop demo: no scenario named 'nosuch'; `pgtop demo` lists them\n"


def test_a_broken_file_in_demo_dir_is_reported_and_the_others_still_listed(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text("name: good\nsummary: fine\nsteps:\n  - caption: hi\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nsummary: broken\nsteps:\n  - kil: walwriter\n")
    assert command.list_scenarios(tmp_path) == 1
    captured = capsys.readouterr()
    assert captured.out == "good  fine\n"
    assert captured.err.startswith(f"pgtop demo: {tmp_path / 'bad.yaml'}:4: unknown step 'kil'; expected one of: caption, key,")


def test_steps_become_typed_actions_and_expectations():
    scenario = _parse(
        """\
        name: all-steps
        summary: one of each
        settings: {restart_after_crash: off, checkpoint_timeout: 60}
        steps:
          - caption: Hello
          - key: r
          - key: {press: k, child: walwriter}
          - signal: SIGHUP
          - kill: {kind: logical replication launcher, signal: TERM}
          - stop: checkpointer
          - cont: {kind: checkpointer}
          - load: on
          - sessions: 2
          - sessions: close
          - reload_config: {set: {bgwriter_delay: 300}}
          - reload_config: {write: "broken: [", reload: off}
          - reload_config: {revert: on}
          - wait: {seconds: 1.5}
          - pause: true
          - start: on
          - corrupt: pg_control
          - expect: {pm_state: RUN, reached: PM_WAIT_BACKENDS, log: "ready", timeout: 3, during: 1}
          - expect: {exit_code: 1, shutdown: fast, fatal_error: on, pid_changed: stats, pid_same: bgwriter}
          - expect: {client_saw: x, connection_refused: y, rows_survive: on, running: logger, absent: autovacuum}
            stage_only: on
        """
    )
    what = [step.what for step in scenario.steps]
    assert scenario.settings == (("restart_after_crash", False), ("checkpoint_timeout", 60))
    assert what[:4] == [sc.Caption("Hello"), sc.Key("r"), sc.Key("k", sc.ChildRef(ChildKind.WALWRITER)), sc.SignalPostmaster(Sig.HUP)]
    assert what[4] == sc.SignalChild(sc.ChildRef(ChildKind.BGWORKER, "logical replication launcher"), Sig.TERM)
    assert what[5:7] == [sc.SignalChild(sc.ChildRef(ChildKind.CHECKPOINTER), Sig.STOP), sc.SignalChild(sc.ChildRef(ChildKind.CHECKPOINTER), Sig.CONT)]
    assert what[7:10] == [sc.Load(True), sc.Sessions(2), sc.Sessions(0)]
    assert what[10:13] == [sc.ReloadConfig(settings=(("bgwriter_delay", 300),)), sc.ReloadConfig(append="broken: [", reload=False), sc.ReloadConfig(revert=True)]
    assert what[13:17] == [sc.Wait(1.5), sc.Wait(pause=True), sc.Start(), sc.Corrupt("pg_control")]
    first = what[17]
    assert first.timeout == 3 and first.during == 1
    assert first.conditions[:2] == (sc.PmStateIs(PMState.RUN), sc.PmStateReached(PMState.WAIT_BACKENDS))
    assert [type(c) for c in what[18].conditions] == [sc.ExitCode, sc.ShutdownIs, sc.FatalErrorIs, sc.PidChanged, sc.PidSame]
    assert scenario.steps[19].stage_only and scenario.needs_clients
    assert scenario.steps[0].line == 5 and scenario.steps[19].line == 24


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nsummary: s\nsteps:\n  - kil: walwriter\n", "demo/x.yaml:4: unknown step 'kil'; expected one of: caption, key, signal, kill,"),
        ("name: x\nsummary: s\nsteps:\n  - kill: {kind: wal writer process, signal: SIGNOPE}\n", "demo/x.yaml:4: unknown signal 'SIGNOPE'; expected a name such as SIGKILL or SIGTERM"),
        ("name: x\nsummary: s\nsteps:\n  - caption: a\n  - kill: postgres\n", "demo/x.yaml:5: unknown child kind 'postgres'; expected one of:"),
        ("name: x\nsummary: s\nsteps:\n  - expect: {log: '(unclosed'}\n", "demo/x.yaml:4: log: invalid regular expression '(unclosed': missing ), unterminated subpattern"),
        ("name: x\nsummary: s\nsteps:\n  - expect: {pm_state: PM_RUNNING}\n", "demo/x.yaml:4: unknown pmState 'PM_RUNNING'; expected one of: PM_INIT,"),
        ("name: x\nsummary: s\nsteps:\n  - expect: {timeout: 3}\n", "demo/x.yaml:4: expect needs at least one condition, e.g. {pm_state: PM_RUN}"),
        ("name: x\nsummary: s\nsteps:\n  - expect: {pm_state: PM_RUN, eventually: yes}\n", "demo/x.yaml:4: unknown expectation 'eventually'; expected one of:"),
        ("name: x\nsummary: s\nsteps:\n  - caption: a\n    key: r\n", "demo/x.yaml:4: one action per step, found caption and key"),
        ("name: x\nsummary: s\nsteps:\n  - wait: {seconds: -1}\n", "demo/x.yaml:4: seconds must be a number of seconds >= 0, not -1"),
        ("name: x\nsummary: s\nsettings:\n  max_conections: 5\nsteps:\n  - caption: a\n", 'demo/x.yaml:4: unrecognized configuration parameter "max_conections"'),
        ("name: x\nsummary: s\nsettings:\n  max_connections: 0\nsteps:\n  - caption: a\n", 'demo/x.yaml:4: 0 is outside the valid range for parameter "max_connections" (1 .. 262143)'),
        ("name: x\nsummary: s\nsteps:\n  - caption: [\n", "demo/x.yaml:5: YAML syntax error:"),
        ("summary: s\nsteps:\n  - caption: a\n", "demo/x.yaml:1: the scenario has no name"),
        ("name: My Demo\nsummary: s\nsteps:\n  - caption: a\n", "demo/x.yaml:1: name 'My Demo' must be lower-case words joined by hyphens"),
        ("name: x\nsummary: s\nsteps: []\n", "demo/x.yaml:3: steps must be a non-empty list"),
        ("name: x\nsummary: s\nneeds: [gpu]\nsteps:\n  - caption: a\n", "demo/x.yaml:3: needs: unknown 'gpu'; expected any of: clients, standby"),
        ("", "demo/x.yaml:1: the file is empty; a scenario needs name, summary and steps"),
        ("name: x\nsummary: s\nsteps:\n  - reload_config: {set: {a: 1}, revert: on}\n", "demo/x.yaml:4: reload_config takes exactly one of set, write or revert"),
        ("name: x\nsummary: s\nsteps:\n  - sessions: 99\n", "demo/x.yaml:4: sessions is a number of sessions to open (0..20) or close, not 99"),
    ],
)
def test_a_broken_scenario_gets_one_line_with_its_line_number(text, message):
    assert _error(text).startswith(message)


def test_a_missing_file_is_one_line_too(tmp_path):
    with pytest.raises(ScenarioError, match=r"nosuch.yaml: cannot read the scenario: No such file or directory$"):
        load_scenario(tmp_path / "nosuch.yaml")


def test_where_the_cluster_listens_is_the_stages_choice():
    """Each play picks a free port and a socket directory of its own; a scenario that set
    them would collide with other plays (or with a real server)."""
    message = _error("""
        name: x
        summary: y
        settings:
          port: 5432
        steps:
          - start: on
    """)
    assert message == 'demo/x.yaml:5: parameter "port" is chosen by the stage for each play'
