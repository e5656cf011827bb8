"""Every scenario in demo/ plays headless on a real cluster and every expectation holds, so a
demo can never rot silently. Each play runs as `python -m pgtop.demo NAME --headless` in a
process of its own (the supervisor takes that process's signals), started in the test's
temporary directory with its throwaway cluster made there too. Every process of the play
inherits that working directory, so afterwards a process still there is a leftover; the
directory and its sockets must be gone as well."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.processes import living_in

from pgtop.demo import command
from pgtop.demo.loader import load_scenario

PLAY_TIMEOUT = 120
SKIPPED: dict[str, str] = {}  # scenario name -> why its test cannot run here


def _scenarios() -> list:
    params = []
    for path in command.scenario_paths():
        marks = [pytest.mark.skip(reason=SKIPPED[path.stem])] if path.stem in SKIPPED else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


@pytest.mark.parametrize("path", _scenarios())
def test_scenario_plays_headless_and_every_expectation_holds(path, tmp_path):
    scenario = load_scenario(path)
    result = subprocess.run(
        [sys.executable, "-m", "pgtop.demo", scenario.name, "--headless"],
        capture_output=True, text=True, check=False, timeout=PLAY_TIMEOUT, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    report = result.stdout
    leftovers = living_in(tmp_path)
    for pid in leftovers:
        os.kill(pid, 9)
    assert result.returncode == 0, f"{scenario.name} failed:\n{report}\n{result.stderr[-3000:]}"
    assert report.splitlines()[-1] == f"== {scenario.name}: every expectation held"
    expected = sum(1 for step in scenario.steps if not step.is_action and not step.stage_only)
    held = [line for line in report.splitlines() if line.startswith("✓ line") and ": expect " in line]
    assert len(held) == expected and "✗" not in report
    assert not leftovers, f"processes left behind: {leftovers}"
    assert not list(tmp_path.glob("pgtop-demo-*")), "the throwaway cluster was not removed"
