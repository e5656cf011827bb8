"""The shared memory segment: pmsignal flags, PMChildFlags slots, backend activity, counters.

Theory of operation. The postmaster creates the segment with memfd_create: an anonymous file
that has no name in /dev/shm, so nothing can leak, not even when the postmaster is SIGKILLed:
the memory goes away with the last process that maps it or holds its fd. Children receive the
fd over the fork server's socket (SCM_RIGHTS) and map it. Crash reinit destroys the segment
and creates a new one with the next generation number.

Layout (fixed, versioned, little-endian; every region 8-byte aligned):

    header      magic, layout version, max_children, generation, key, aux entry count
    flags       one byte per PMSignalReason, the quit reason, the autovacuum worker-failed
                flag, and the database the autovacuum launcher wants a worker for
    counters    one record of dashboard counters (WAL, checkpoints, archiver, recovery...)
    child flags one byte per PMChildFlags slot: UNUSED / ASSIGNED / ACTIVE / WALSENDER
    activity    one pg_stat_activity row per slot, then one per auxiliary process kind

Records that several fields make up (activity rows, counters, the worker request) are read
and written with PostgreSQL's st_changecount protocol (pgtop.common.shmem_records).
Counters have several writers, so writers also take a POSIX record lock on the counters'
first byte (released by the kernel if the writer dies). Single bytes need no protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import fcntl
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Self

from pgtop.common import shmem_records as records
from pgtop.common.shmem_records import ActivityRow, Counters
from pgtop.core.vocabulary import SPECIAL_KINDS, ChildKind, PMSignalReason, QuitReason

MAGIC = b"PGTOPSHM"
LAYOUT_VERSION = 3  # 2: an activity row's statement part moved to its end; 3: the PGPROC array
MAX_SLOTS = 1 << 20

# Activity rows for the special kinds, after the slot rows, in ChildKind order.
AUX_KINDS: tuple[ChildKind, ...] = tuple(kind for kind in ChildKind if kind in SPECIAL_KINDS)

_HEADER = struct.Struct("<8sIIQQI")
_HEADER_SIZE = 64
_U32 = struct.Struct("<I")
_PID_PEEK = struct.Struct("<i")  # the first field of an activity row
_FLAGS_SIZE = 128
_QUIT_OFFSET = 16
_AV_FAILED_OFFSET = 17
_AV_REQUEST_OFFSET = 24  # a change-counted record of _AV_REQUEST
_AV_REQUEST = struct.Struct("<64s")
_PROC_LOCK_OFFSET = 120  # a byte no flag uses: the record lock of proc_lock()
_QUIT_CODES = {None: 0, QuitReason.CRASH: 1, QuitReason.STOP: 2}


class SlotState(enum.IntEnum):
    """PMChildFlags states (pmsignal.c)."""

    UNUSED = 0
    ASSIGNED = 1
    ACTIVE = 2
    WALSENDER = 3


class NoFreeSlot(RuntimeError):
    """AssignPostmasterChildSlot found every slot taken."""


def _align(size: int) -> int:
    return (size + 7) & ~7


@dataclass(frozen=True, slots=True)
class _Layout:
    max_children: int

    @property
    def entries(self) -> int:
        return self.max_children + len(AUX_KINDS)

    flags = _HEADER_SIZE
    counters = _HEADER_SIZE + _FLAGS_SIZE

    @property
    def child_flags(self) -> int:
        return self.counters + _align(records.COUNT_SIZE + records.COUNTERS_STRUCT.size)

    @property
    def procs(self) -> int:
        return self.child_flags + _align(self.max_children)

    @property
    def activity(self) -> int:
        return self.procs + _align(self.max_children)

    row_size = _align(records.COUNT_SIZE + records.ACTIVITY_STRUCT.size)

    @property
    def size(self) -> int:
        return self.activity + self.entries * self.row_size


class Segment:
    """One generation of shared memory, mapped into this process."""

    def __init__(self, fd: int, memory: mmap.mmap, layout: _Layout) -> None:
        self._fd = fd
        self._memory = memory
        self._layout = layout
        self._next_slot = layout.max_children  # AssignPostmasterChildSlot searches downwards
        # Worked out once: a backend rewrites its activity row twice per statement.
        self._activity_base, self._entries = layout.activity, layout.entries

    # -- life cycle ---------------------------------------------------------------------

    @classmethod
    def create(cls, max_children: int, *, generation: int = 1) -> Segment:
        """Create a segment (postmaster): MaxLivePostmasterChildren slots, all UNUSED."""
        if not 1 <= max_children <= MAX_SLOTS:
            raise ValueError(f"max_children must be between 1 and {MAX_SLOTS}, not {max_children}")
        layout = _Layout(max_children)
        fd = os.memfd_create("pgtop.shm", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, layout.size)
            # Nobody may resize it: a shrunk segment would SIGBUS every process mapping it.
            fcntl.fcntl(
                fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
            )
            memory = mmap.mmap(fd, layout.size)
        except BaseException:
            os.close(fd)
            raise
        key = os.fstat(fd).st_ino
        _HEADER.pack_into(
            memory, 0, MAGIC, LAYOUT_VERSION, max_children, generation, key, len(AUX_KINDS)
        )
        return cls(fd, memory, layout)

    @classmethod
    def attach(cls, fd: int) -> Segment:
        """Map a segment received from the postmaster (child). Takes ownership of `fd`."""
        size = os.fstat(fd).st_size
        if size < _HEADER_SIZE:
            raise ValueError("not a pgtop shared memory segment (too small)")
        memory = mmap.mmap(fd, size)
        magic, version, max_children, _gen, _key, aux = _HEADER.unpack_from(memory, 0)
        problem = None
        if magic != MAGIC:
            problem = "not a pgtop shared memory segment"
        elif version != LAYOUT_VERSION or aux != len(AUX_KINDS):
            problem = f"shared memory layout version {version}, this program knows {LAYOUT_VERSION}"
        elif _Layout(max_children).size != size:
            problem = "shared memory segment has the wrong size for its header"
        if problem:
            memory.close()
            raise ValueError(problem)
        return cls(fd, memory, _Layout(max_children))

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def max_children(self) -> int:
        return self._layout.max_children

    @property
    def generation(self) -> int:
        return _HEADER.unpack_from(self._memory, 0)[3]

    @property
    def key(self) -> int:
        """The segment's inode number: unique while it exists, like a SysV key."""
        return _HEADER.unpack_from(self._memory, 0)[4]

    @property
    def pid_file_line(self) -> str:
        """Line 7 of postmaster.pid: key and id, ``%9lu %9lu`` (the id is the generation)."""
        return f"{self.key:9d} {self.generation:9d}"

    @property
    def retired(self) -> bool:
        """True once the postmaster destroyed this generation (crash reinit)."""
        return self._memory.closed or self._memory[0:8] != MAGIC

    def close(self) -> None:
        """Unmap and close the fd. The memory lives on while another process maps it."""
        if not self._memory.closed:
            self._memory.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def destroy(self) -> None:
        """Postmaster: retire this generation (stale attachers see `retired`) and close it.
        A memfd has no name to unlink, so this is all there is to it."""
        if not self._memory.closed:
            self._memory[0:8] = b"\0" * 8
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pmsignal -----------------------------------------------------------------------

    def raise_pmsignal(self, reason: PMSignalReason) -> None:
        """SendPostmasterSignal's first half: the caller then sends SIGUSR1."""
        self._memory[self._layout.flags + reason.value] = 1

    def take_pmsignals(self) -> frozenset[PMSignalReason]:
        """CheckPostmasterSignal for every reason: read and clear the flags."""
        taken = set()
        for reason in PMSignalReason:
            offset = self._layout.flags + reason.value
            if self._memory[offset]:
                self._memory[offset] = 0
                taken.add(reason)
        return frozenset(taken)

    def set_quit_reason(self, reason: QuitReason | None) -> None:
        self._memory[self._layout.flags + _QUIT_OFFSET] = _QUIT_CODES[reason]

    def quit_reason(self) -> QuitReason | None:
        code = self._memory[self._layout.flags + _QUIT_OFFSET]
        return next((reason for reason, value in _QUIT_CODES.items() if value == code), None)

    def set_avworker_failed(self) -> None:
        """AutoVacWorkerFailed(): the postmaster could not fork the worker asked for."""
        self._memory[self._layout.flags + _AV_FAILED_OFFSET] = 1

    def take_avworker_failed(self) -> bool:
        offset = self._layout.flags + _AV_FAILED_OFFSET
        failed = bool(self._memory[offset])
        self._memory[offset] = 0
        return failed

    def set_avworker_database(self, database: str) -> None:
        """The launcher names the database the next autovacuum worker should process."""
        offset = self._layout.flags + _AV_REQUEST_OFFSET
        records.write_record(self._memory, offset, _AV_REQUEST.pack(records.encode_text(database, 64)))

    def avworker_database(self) -> str | None:
        raw = records.read_record(self._memory, self._layout.flags + _AV_REQUEST_OFFSET, _AV_REQUEST.size)
        return (records.decode_text(raw) or None) if raw is not None else None

    # -- PMChildFlags -------------------------------------------------------------------

    def _slot_offset(self, slot: int) -> int:
        if not 1 <= slot <= self._layout.max_children:
            raise ValueError(f"slot {slot} is out of range 1..{self._layout.max_children}")
        return self._layout.child_flags + slot - 1

    def assign_slot(self) -> int:
        """AssignPostmasterChildSlot(): an UNUSED slot, now ASSIGNED (1-based)."""
        slot = self._next_slot
        for _ in range(self._layout.max_children):
            slot = slot - 1 if slot > 1 else self._layout.max_children
            offset = self._slot_offset(slot)
            if self._memory[offset] == SlotState.UNUSED:
                self._memory[offset] = SlotState.ASSIGNED
                self._next_slot = slot
                return slot
        raise NoFreeSlot("no free slots in PMChildFlags array")

    def release_slot(self, slot: int) -> bool:
        """ReleasePostmasterChildSlot(): False if the child left it ACTIVE or WALSENDER,
        i.e. it never cleaned up (the dead-man switch). The slot is UNUSED afterwards, and
        no PGPROC is held in its name (a child that left without ProcKill held it)."""
        offset = self._slot_offset(slot)
        released = self._memory[offset] == SlotState.ASSIGNED
        self._memory[offset] = SlotState.UNUSED
        self._memory[self._proc_offset(slot)] = 0
        return released

    def slot_state(self, slot: int) -> SlotState:
        return SlotState(self._memory[self._slot_offset(slot)])

    def mark_active(self, slot: int) -> None:
        self._memory[self._slot_offset(slot)] = SlotState.ACTIVE

    def mark_walsender(self, slot: int) -> None:
        self._memory[self._slot_offset(slot)] = SlotState.WALSENDER

    def mark_inactive(self, slot: int) -> None:
        """Clean exit: back to ASSIGNED, so release_slot says the child cleaned up."""
        self._memory[self._slot_offset(slot)] = SlotState.ASSIGNED

    def walsender_slots(self) -> frozenset[int]:
        start = self._layout.child_flags
        states = self._memory[start : start + self._layout.max_children]
        return frozenset(i + 1 for i, state in enumerate(states) if state == SlotState.WALSENDER)

    # -- PGPROCs ------------------------------------------------------------------------

    def _proc_offset(self, slot: int) -> int:
        return self._slot_offset(slot) - self._layout.child_flags + self._layout.procs

    def procs_in_use(self, *, besides: int | None = None) -> int:
        """Client backends holding a PGPROC (ProcGlobal's free list, seen from the other
        side), other than the one in slot `besides`: one byte per slot, so a new backend
        counts them in one pass over a few hundred bytes, not over every activity row."""
        start = self._layout.procs
        held = self._memory[start : start + self._layout.max_children].count(1)
        if besides is not None and self._memory[self._proc_offset(besides)] == 1:
            held -= 1
        return held

    def take_proc(self, slot: int) -> None:
        """InitProcess(): slot's backend holds a PGPROC now (under proc_lock)."""
        self._memory[self._proc_offset(slot)] = 1

    def release_proc(self, slot: int) -> None:
        """ProcKill(): the PGPROC goes back to the free list."""
        self._memory[self._proc_offset(slot)] = 0

    # -- backend activity ---------------------------------------------------------------

    def aux_entry(self, kind: ChildKind) -> int:
        """The activity entry of a special child kind (they hold no PMChildFlags slot)."""
        return self._layout.max_children + 1 + AUX_KINDS.index(kind)

    def _entry_offset(self, entry: int) -> int:
        if not 1 <= entry <= self._entries:
            raise ValueError(f"activity entry {entry} is out of range 1..{self._entries}")
        return self._activity_base + (entry - 1) * _Layout.row_size

    def write_activity(self, entry: int, row: ActivityRow) -> None:
        """Write a whole row (its owner, or the postmaster once the owner is dead)."""
        records.write_record(self._memory, self._entry_offset(entry), records.pack_activity(row))

    def write_activity_status(
        self, entry: int, application_name: str, state: str, query: str, state_change: float
    ) -> None:
        """pgstat_report_activity(): the owner rewrites the part of its row that a statement
        changes, and leaves the rest (who it is, since when) as it is."""
        status = records.pack_activity_status(application_name, state, query, state_change)
        records.write_record(self._memory, self._entry_offset(entry), status, records.ACTIVITY_STATUS_OFFSET)

    def update_activity(self, entry: int, **changes: object) -> ActivityRow:
        """pgstat_report_activity(): the owner changes some fields of its own row."""
        current = self.read_activity(entry) or ActivityRow(pid=os.getpid(), backend_type="")
        row = dataclasses.replace(current, **changes)
        self.write_activity(entry, row)
        return row

    def clear_activity(self, entry: int) -> None:
        self.write_activity(entry, ActivityRow(pid=0, backend_type=""))

    def read_activity(self, entry: int) -> ActivityRow | None:
        """The row, or None if the entry is empty (or its writer died mid-write)."""
        raw = records.read_record(self._memory, self._entry_offset(entry), records.ACTIVITY_STRUCT.size)
        if raw is None:
            return None
        row = records.unpack_activity(raw)
        return row if row.pid != 0 else None

    def activity_entries(self) -> dict[int, ActivityRow]:
        """The occupied rows by entry number (an entry up to max_children is that slot's)."""
        rows = {entry: self.read_activity(entry) for entry in self._occupied_entries()}
        return {entry: row for entry, row in rows.items() if row is not None}

    @contextlib.contextmanager
    def proc_lock(self) -> Iterator[None]:
        """ProcStructLock: held while a backend counts the PGPROCs in use and takes one, so
        two backends starting together cannot both take the last (a POSIX record lock on a
        byte of the flags region: released by the kernel if the holder dies)."""
        offset = self._layout.flags + _PROC_LOCK_OFFSET
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, offset)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)

    def activity(self) -> tuple[ActivityRow, ...]:
        """Every occupied row, slot rows first: what pg_stat_activity would list."""
        return tuple(self.activity_entries().values())

    def _occupied_entries(self) -> list[int]:
        """Entries whose pid is not 0 at a glance. The postmaster publishes a snapshot after
        every change, and most of MaxLivePostmasterChildren rows are empty: peeking at the
        pid skips unpacking them. A row being written right now is read (and checked) in full."""
        base, size, memory = self._activity_base + records.COUNT_SIZE, _Layout.row_size, self._memory
        pid_at, count_at = _PID_PEEK.unpack_from, _U32.unpack_from
        return [
            entry
            for entry in range(1, self._entries + 1)
            if pid_at(memory, base + (entry - 1) * size)[0] != 0
            or count_at(memory, base - records.COUNT_SIZE + (entry - 1) * size)[0] % 2  # being written
        ]

    # -- counters -----------------------------------------------------------------------

    def counters(self) -> Counters:
        raw = records.read_record(self._memory, self._layout.counters, records.COUNTERS_STRUCT.size)
        return records.unpack_counters(raw) if raw is not None else Counters()

    def update_counters(self, **values: object) -> Counters:
        """Set some counters (e.g. ``replay_lsn=...``) in one consistent write."""
        return self._change_counters(lambda current: dataclasses.replace(current, **values), values)

    def add_counters(self, **deltas: int) -> Counters:
        """Add to integer counters (e.g. ``checkpoints=1``), safe against other writers."""

        def add(current: Counters) -> Counters:
            return dataclasses.replace(
                current, **{k: getattr(current, k) + v for k, v in deltas.items()}
            )

        return self._change_counters(add, deltas)

    def _change_counters(self, change, names) -> Counters:  # type: ignore[no-untyped-def]
        unknown = sorted(set(names) - records.COUNTER_NAMES)
        if unknown:
            raise ValueError(f"unknown counter: {', '.join(unknown)}")
        offset = self._layout.counters
        # POSIX record locks belong to the process, so every process excludes the others.
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, offset)
        try:
            start = offset + records.COUNT_SIZE
            updated = change(records.unpack_counters(self._memory[start : start + records.COUNTERS_STRUCT.size]))
            try:
                payload = records.pack_counters(updated)
            except struct.error as error:
                raise ValueError(f"bad counter value: {error}") from None
            records.write_record(self._memory, offset, payload)
            return updated
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)
