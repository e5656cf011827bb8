"""The BackendList copy a new backend gets: packed by the postmaster, read back whole by
the connection that turns out to be a cancel request."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pgtop.common import cancel_targets

PIDS = st.integers(min_value=1, max_value=2**22)  # pid_max's ceiling on Linux
KEYS = st.integers(min_value=0, max_value=2**31 - 1)  # the supervisor's 31-bit keys


@given(st.lists(st.tuples(PIDS, KEYS), max_size=600))
def test_every_pair_comes_back_in_order(targets: list[tuple[int, int]]) -> None:
    assert cancel_targets.unpack(cancel_targets.pack(targets)) == targets


def test_it_is_one_object_of_eight_bytes_a_backend() -> None:
    packed = cancel_targets.pack((pid, pid * 7) for pid in range(1000, 1500))
    assert type(packed) is bytes and len(packed) == 500 * 8
