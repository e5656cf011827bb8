"""Spawn-to-running latency: the fork server against a fresh interpreter (subprocess).

Run: python bench/spawn.py [N]. For each of N spawns it measures the time from the request
to the moment the child's code runs (the child writes one byte to a pipe), then prints the
medians for a fresh interpreter, the fork server's double-fork fallback and its default
clone3(CLONE_PARENT), and the ratio of the first to the last. A fork-server child gets what a
real child gets: the shared memory fd, the death pipe, a process title and a ChildContext.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from pgtop.common.shmem import Segment
from pgtop.runtime.forkserver import ForkServer

# The fork server imports this file by module name to find the child program below.
PROGRAM = f"{'spawn' if __name__ == '__main__' else __name__}:started"


def started(ctx) -> int:  # type: ignore[no-untyped-def]
    """The child program: say "running" and exit 0."""
    os.write(ctx.fds["ready"], b"x")
    return 0


def _time_until_running(start_child, ready_read: int) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    pid = start_child()
    os.read(ready_read, 1)
    elapsed = time.perf_counter() - began
    os.waitpid(pid, 0)
    return elapsed


def measure_fork_server(count: int, clone_parent: bool) -> tuple[list[float], list[float]]:
    """(spawn-to-running, spawn-call-returned) times in seconds."""
    ready_read, ready_write = os.pipe()
    returned: list[float] = []
    with (
        Segment.create(244) as segment,
        ForkServer.start([PROGRAM], clone_parent=clone_parent) as server,
    ):

        def start_child() -> int:
            began = time.perf_counter()
            pid = server.spawn(
                PROGRAM, {"backend_type": "bench"}, {"ready": ready_write, "shmem": segment.fd}
            )
            returned.append(time.perf_counter() - began)
            return pid

        running = [_time_until_running(start_child, ready_read) for _ in range(count)]
    os.close(ready_read)
    os.close(ready_write)
    return running, returned


def measure_subprocess(count: int) -> list[float]:
    ready_read, ready_write = os.pipe()
    code = "import os, sys; os.write(int(sys.argv[1]), b'x')"

    def start_child() -> int:
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(ready_write)], pass_fds=(ready_write,)
        )
        return child.pid

    running = [_time_until_running(start_child, ready_read) for _ in range(count)]
    os.close(ready_read)
    os.close(ready_write)
    return running


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    fresh_ms = statistics.median(measure_subprocess(count)) * 1000
    print(f"spawns: {count} each; medians of spawn-to-running")
    print(f"subprocess of sys.executable: {fresh_ms:.2f} ms")
    for label, clone_parent in (
        ("fork server, double fork", False),
        ("fork server, clone3(CLONE_PARENT)", True),
    ):
        running, returned = measure_fork_server(count, clone_parent)
        fork_ms = statistics.median(running) * 1000
        returned_ms = statistics.median(returned) * 1000
        print(f"{label}: {fork_ms:.2f} ms (spawn() returned after {returned_ms:.2f} ms)")
    print(f"ratio (subprocess / fork server with clone3): {fresh_ms / fork_ms:.1f}")


if __name__ == "__main__":
    main()
