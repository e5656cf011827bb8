"""How long the dashboard takes to apply one snapshot of a cluster with 500 client backends.

Run: python bench/ui_apply.py [--children 500] [--rounds 50]

Prints the median time of `PgtopApp.apply_snapshot` when every row changes (new CPU and RSS
figures for all children) and when nothing changes, plus the first apply that adds the rows.
Drawing happens afterwards, on Textual's next refresh, and is reported separately: the
median time until the screen has been repainted, and the pilot's own wait for an idle app
with nothing to draw, which that figure includes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace

from pgtop.runtime.snapshot import ProcessStats
from pgtop.ui import fake
from pgtop.ui.app import PgtopApp


def snapshots(children: int, rounds: int):
    state = fake.many_backends(fake.running_state(), children - len(fake.running_state().children))
    base = fake.snapshot_of(state)
    for n in range(rounds):
        stats = {pid: ProcessStats(cpu_percent=(pid + n) % 100 / 3, rss=(pid + n) << 12) for pid in base.stats}
        stats |= {c.pid: ProcessStats((c.pid + n) % 100 / 3, (c.pid + n) << 12) for c in state.children.values()}
        yield replace(base, stats=stats, at=base.at + n)


def milliseconds(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.2f} ms (min {min(seconds) * 1000:.2f}, max {max(seconds) * 1000:.2f})"


async def measure(children: int, rounds: int) -> None:
    app = PgtopApp(fake.FakeController(), clock=lambda: fake.NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        series = list(snapshots(children, rounds + 1))
        started = time.perf_counter()
        app.apply_snapshot(series[0])
        first = time.perf_counter() - started
        await pilot.pause()
        changed, unchanged, painted, idle = [], [], [], []
        for snapshot in series[1:]:
            started = time.perf_counter()
            app.apply_snapshot(snapshot)
            changed.append(time.perf_counter() - started)
            await pilot.pause()
            painted.append(time.perf_counter() - started)
            started = time.perf_counter()
            app.apply_snapshot(snapshot)
            unchanged.append(time.perf_counter() - started)
            await pilot.pause()
            started = time.perf_counter()
            await pilot.pause()
            idle.append(time.perf_counter() - started)
    print(f"children: {children}, rounds: {rounds}")
    print(f"first apply (adds every row):      {first * 1000:.2f} ms")
    print(f"median apply, every row changed:   {milliseconds(changed)}")
    print(f"median apply, nothing changed:     {milliseconds(unchanged)}")
    print(f"median apply + repaint:            {milliseconds(painted)}")
    print(f"  of which the pilot's idle wait:  {milliseconds(idle)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(measure(args.children, args.rounds))


if __name__ == "__main__":
    main()
