"""Fixtures for the dashboard tests: UTC, a frozen clock, a recording controller, an app maker,
and a real terminal (tmux) whose leftovers fail the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tmux_screen import Terminal
from ui_pilot import Clock

from pgtop.ui import fake
from pgtop.ui.app import PgtopApp


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Start times are shown in local time; pin it so screenshots match everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def controller() -> fake.FakeController:
    return fake.FakeController()


@pytest.fixture
def make_app(controller, clock, tmp_path):
    def make(**options) -> PgtopApp:
        options.setdefault("clock", clock)
        options.setdefault("screenshot_dir", tmp_path)
        return PgtopApp(options.pop("controller", controller), **options)

    return make


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    leftovers = term.close()
    assert not leftovers, f"processes left behind (killed now): {leftovers}"
