"""The README's screenshots come from docs/make_screenshots.py, run here on real clusters:
it must still produce them, and they must show what their names promise. With
PGTOP_UPDATE_SCREENSHOTS=1 the run writes them into docs/screenshots for the README."""

from __future__ import annotations

import os
import subprocess
import sys
from html import unescape
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROMISES = {
    "dashboard.svg": ["PM_RUN", "normal operation", "insert into demo_load"],
    "crash-cycle.svg": ["PM_WAIT_BACKENDS", "SIGKILL escalation in", "HandleChildCrash", "crash, everyone restarts"],
    "presenter.svg": ["last key", "SIGKILL sent to client backend", "crash recovery", "paused", "recovery finished"],
    "standby.svg": ["PM_HOT_STANDBY", "showing the standby", "replay lag 0 B", "walsender", "walreceiver", "heard"],
}


def _text(svg: Path) -> str:
    """The characters an SVG screenshot shows (Textual writes spaces as &#160;)."""
    return unescape(svg.read_text()).replace("\xa0", " ")


def test_the_readme_screenshots_show_what_they_promise(tmp_path):
    updating = os.environ.get("PGTOP_UPDATE_SCREENSHOTS") == "1"
    out = DOCS / "screenshots" if updating else tmp_path / "shots"
    # The clusters go under the test's directory, except for the README's pictures, whose
    # status line should show a plain /tmp/pgtop-demo-... data directory.
    env = os.environ if updating else {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(DOCS / "make_screenshots.py"), "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    for name, words in PROMISES.items():
        text = _text(out / name)
        missing = [word for word in words if word not in text]
        assert not missing, f"{name} does not show {missing}"
    assert not list(tmp_path.glob("pgtop-demo-*"))
