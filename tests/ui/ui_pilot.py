"""Helpers for driving the dashboard headless in tests: a hand-moved clock and a pilot runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot

from pgtop.ui import fake
from pgtop.ui.app import PgtopApp

SIZE = (160, 48)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = fake.NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drive(app: PgtopApp, scenario: Callable[[Pilot], Awaitable[None]], size=SIZE) -> None:
    """Run the app headless, let it settle, then play the scenario."""

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await scenario(pilot)

    asyncio.run(run())


def painted(widget) -> str:
    """The widget's own text as it is drawn, line by line (not its children's)."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run until `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await pilot.pause(0.02)
