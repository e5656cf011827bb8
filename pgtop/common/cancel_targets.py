"""The fork-time copy of BackendList that a cancel request is checked against, as the
postmaster hands it to every new backend: its (PID, cancel key) pairs, packed as unsigned
32-bit integers.

A PostgreSQL backend inherits BackendList with fork(), at no cost. pgtop's backends get it
in their spawn request, and as a list of tuples it cost each backend three objects per live
backend, unpickled by the spare that rehearsed the request and again by the child: with 500
backends, ~17 pages of every new backend's private memory, the more the later it came
(bench/README.md). Packed, it is one bytes object, and only the connection that turns out
to be a CancelRequest reads it. A PID is below 2**22 on Linux, a cancel key below 2**31.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

_UINT32 = next(code for code in "IL" if array(code).itemsize == 4)


def pack(targets: Iterable[tuple[int, int]]) -> bytes:
    flat = array(_UINT32)
    for pid, key in targets:
        flat.append(pid)
        flat.append(key)
    return flat.tobytes()


def unpack(packed: bytes) -> list[tuple[int, int]]:
    flat = array(_UINT32, packed)
    return list(zip(flat[::2], flat[1::2], strict=True))
