"""ChildContext.wait, the children's WaitLatch, in this process."""

from __future__ import annotations

import os
import time

import pytest

from pgtop.children.context import ChildContext, WaitEvent


@pytest.fixture
def ctx():
    read_end, write_end = os.pipe()  # the postmaster-death pipe: EOF only once write_end closes
    try:
        yield ChildContext("walwriter", {}, {"death": read_end}, os.getppid())
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("timeout", [0.0105, 0.0019, 0.2004])
def test_a_timed_wait_never_ends_before_its_timeout(ctx: ChildContext, timeout: float) -> None:
    """Waking early would make a main loop spin on zero-timeout polls until its deadline
    passes (an idle walwriter did, a dozen times every wal_writer_delay)."""
    began = time.monotonic()
    events = ctx.wait(timeout)
    assert events == {WaitEvent.TIMEOUT}
    assert time.monotonic() - began >= timeout
