"""Where the fork server's hot code lies: the code objects a backend runs, re-created side by
side in fresh memory before the server freezes its heap.

Why. A forked backend writes to every code object it runs (the frame's reference to it, the
interpreter's warm-up counter, its specialized bytecode), and a write copies the whole 4 KiB
page the object lies on into the backend's own memory. Compiled module by module, the ~280
functions a connection runs lie among ~5,900 code objects of ~280 modules, nearly one to a
page. Re-created one after the other they share pages: 0.5 MiB less in every backend (see
bench/README.md).

How. CPython offers no way to place an object, but an allocator hands out fresh memory once
it has no free block of the size asked left. So the server first fills the holes: every free
block of pymalloc's size classes (as sys._debugmallocstats counts them), and every free chunk
glibc's malloc holds from 528 bytes up (a code object over 512 bytes is malloc's), until a
chunk comes from the top of the heap. The fillers stay for the server's life, and so do the
old code objects: freed, they would be holes again, where a child's new objects would land
one to a page. Then each profiled function gets a copy of its code object (code.replace(),
with the copies of its comprehensions' and lambdas' code objects), in the order a backend
first calls them; and then each such function is itself re-created, after the holes are
filled again, and every reference to it the server can reach is pointed at the new one
(module and class namespaces, other dicts, lists, closure cells, and the staticmethod,
classmethod and property objects that wrap it). A function object is written as often as its
code: a call takes a reference to it.

Last, just before the freeze, fill_holes() takes every free block left of every size, so
that a child's new objects go to fresh pools instead of the holes that the server's own
work left among its objects (the layout's included): each such allocation would copy a
page of the server's.

Which. The profile, hot_code.txt next to this module, names the functions a backend runs
from spare to exit, `module<TAB>qualname` a line, in the order of their first call. It is
recorded from a real backend by `python -m bench hotcode` (RECORD_ENV): a function renamed
since is skipped, a new one stays where it was; either costs memory, never correctness.
The fork server puts the functions of its own loop first (forkserver.SERVER_LOOP).

Everything here is an optimization: what fails is skipped, and the server runs as before.
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CellType, CodeType, FrameType, FunctionType

PROFILE = Path(__file__).with_name("hot_code.txt")
RECORD_ENV = "PGTOP_RECORD_CODE"  # a directory: every spare records the code it runs there
PAGE = 4096
GENERATED = "<string>"  # co_filename of code made by exec(): dataclasses' __init__, ...

Key = tuple[str, str]  # (module, qualname)

# Kept for the server's life: the fillers and the code objects the copies replaced.
_PINNED: list[object] = []


@dataclass(frozen=True)
class Packed:
    """What pack_hot_code did: how many functions it re-created (with new code objects),
    how many pages their code objects lay on before and after, and how many pages the
    function objects themselves lay on before and after."""

    functions: int
    pages_before: int
    pages_after: int
    function_pages_before: int = 0
    function_pages_after: int = 0


def load_profile(path: Path = PROFILE) -> list[Key]:
    """The profile's keys, in order; none if there is no profile."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    keys = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            module, _, qualname = line.partition("\t")
            keys.append((module, qualname))
    return keys


def record_calls(directory: str) -> None:
    """From now on, append each code object this process calls for the first time to
    `directory`/PID, `module<TAB>qualname` a line. It opens, writes and closes each time:
    a child closes the descriptors it does not know, and leaves with os._exit."""
    path = os.path.join(directory, str(os.getpid()))
    seen: set[CodeType] = set()

    def on_call(frame: FrameType, event: str, _arg: object) -> None:
        if event != "call" or frame.f_code in seen:
            return
        seen.add(frame.f_code)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, ("\t".join(_frame_key(frame)) + "\n").encode())
        finally:
            os.close(fd)

    sys.setprofile(on_call)


def _frame_key(frame: FrameType) -> Key:
    module = frame.f_globals.get("__name__", "")
    code = frame.f_code
    if code.co_filename == GENERATED:  # every dataclass __init__ is "__create_fn__.<locals>.__init__"
        return module, _generated_qualname(code, module)
    return module, code.co_qualname


def _generated_qualname(code: CodeType, module: str) -> str:
    """The qualified name of the method of one of `module`'s classes whose code is `code`
    (gc.get_referrers cannot tell: it does not look at frozen objects)."""
    for value in list(getattr(sys.modules.get(module), "__dict__", {}).values()):
        if isinstance(value, type):
            for attribute in vars(value).values():
                if getattr(attribute, "__code__", None) is code:
                    return attribute.__qualname__
    return code.co_qualname


def pack_hot_code(profile: Sequence[Key]) -> Packed:
    """Give every function the profile names (or whose comprehensions or lambdas it names) a
    copy of its code object, then re-create the function itself (_recreate): both made in
    fresh memory, in the profile's order."""
    rank: dict[Key, int] = {}
    for position, key in enumerate(profile):
        rank.setdefault(key, position)
    if not rank:
        return Packed(0, 0, 0)
    hot: list[tuple[int, FunctionType]] = []
    for obj in gc.get_objects():
        if type(obj) is FunctionType and (first := _first_rank(obj, rank)) is not None:
            hot.append((first, obj))
    hot.sort(key=lambda ranked: ranked[0])
    functions = [function for _, function in hot]
    old = [code for f in functions for code in _hot_codes(f.__code__, f.__globals__.get("__name__", ""), rank)]
    for code in old:
        code.co_code  # noqa: B018 - cached by CPython once read: read now, not among the copies
    copies: dict[int, CodeType | None] = dict.fromkeys(map(id, old))  # sized now: no resize later
    pages_before = _pages(old)
    _fill_pymalloc_pools()
    _fill_malloc_chunks()
    for function in functions:
        function.__code__ = _copy(function.__code__, copies)
    _PINNED.extend(old)
    pages_after = _pages(code for code in copies.values() if code is not None)
    function_pages_before = _pages(functions)
    _fill_pymalloc_pools()  # what the copies left
    relocated = _recreate(functions)
    return Packed(len(functions), pages_before, pages_after, function_pages_before, _pages(relocated))


def function_keys(function: FunctionType) -> list[Key]:
    """The keys a profile may name `function` by: its own, then its nested code objects'
    (comprehensions, lambdas, inner functions), as record_calls names them."""
    module = function.__globals__.get("__name__", "")
    code = function.__code__
    qualname = function.__qualname__ if code.co_filename == GENERATED else code.co_qualname
    return [(module, qualname)] + [(module, nested.co_qualname) for nested in _nested(code)]


def _first_rank(function: FunctionType, rank: dict[Key, int]) -> int | None:
    return min((rank[key] for key in function_keys(function) if key in rank), default=None)


def _nested(code: CodeType) -> Iterable[CodeType]:
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield const
            yield from _nested(const)


def _hot_codes(code: CodeType, module: str, rank: dict[Key, int]) -> list[CodeType]:
    """`code` and those of its nested code objects that are hot or hold hot ones (the ones
    _copy copies)."""
    return [code] + [nested for nested in _nested(code) if _holds_hot(nested, module, rank)]


def _holds_hot(code: CodeType, module: str, rank: dict[Key, int]) -> bool:
    return any((module, each.co_qualname) in rank for each in (code, *_nested(code)))


def _copy(code: CodeType, copies: dict[int, CodeType | None]) -> CodeType:
    """A copy of `code`, with copies of the nested code objects among `copies`' keys."""
    if (done := copies.get(id(code))) is not None:
        return done
    consts = code.co_consts
    if any(id(const) in copies for const in consts if isinstance(const, CodeType)):
        consts = tuple(_copy(const, copies) if id(const) in copies else const for const in consts)
    copies[id(code)] = copy = code.replace(co_consts=consts)
    return copy


_GC_HEADER = sys.getsizeof([]) - [].__sizeof__()
_HAVE_GC = 1 << 14  # Py_TPFLAGS_HAVE_GC


def _pages(objects: Iterable[object]) -> int:
    """How many pages `objects` lie on. CPython: id() is the address; sys.getsizeof counts
    the GC header that a function (not a code object) has just before it."""
    pages: set[int] = set()
    for obj in objects:
        start = id(obj) - (_GC_HEADER if type(obj).__flags__ & _HAVE_GC else 0)
        pages.update(range(start // PAGE, (start + sys.getsizeof(obj) - 1) // PAGE + 1))
    return len(pages)


# -- re-creating the functions -------------------------------------------------------------


def _recreate(functions: list[FunctionType]) -> list[FunctionType]:
    """A new function object for each of `functions`, made one after the other, and put in
    the old one's place wherever the server holds it: module and class namespaces, other
    dicts (a dispatch table, a function's own __wrapped__), lists, closure cells, and the
    staticmethod, classmethod and property objects that wrap one (re-created around it).
    What else holds an old one (a tuple, a bound method, functools.partial, a C library)
    keeps it, and it still works: it is the same code. The old ones stay allocated."""
    new = {id(function): _copy_function(function) for function in functions}
    _PINNED.append(tuple(functions))  # a tuple: the lists are about to be rewritten
    everything = gc.get_objects()
    for obj in everything:
        if isinstance(obj, type):
            for name, value in list(vars(obj).items()):
                if (replacement := _replacement(value, new)) is not None:
                    try:
                        setattr(obj, name, replacement)  # through the type: its caches follow
                    except Exception:  # noqa: BLE001, S110 - an immutable type keeps its own
                        pass
    for obj in everything:
        if type(obj) is dict:
            for name, value in list(obj.items()):
                if id(value) in new:
                    obj[name] = new[id(value)]
        elif type(obj) is list:
            for index, value in enumerate(obj):
                if id(value) in new:
                    obj[index] = new[id(value)]
        elif type(obj) is CellType:
            try:
                if id(obj.cell_contents) in new:
                    obj.cell_contents = new[id(obj.cell_contents)]
            except ValueError:  # an empty cell
                pass
    return list(new.values())


def _copy_function(function: FunctionType) -> FunctionType:
    """The same function, a new object: same code, globals, defaults, closure, names,
    annotations and attributes."""
    copy = FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__,
                        function.__closure__)  # fmt: skip
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    copy.__module__ = function.__module__
    copy.__doc__ = function.__doc__
    copy.__annotations__ = function.__annotations__
    copy.__dict__.update(function.__dict__)
    return copy


def _replacement(value: object, new: dict[int, FunctionType]) -> object | None:
    """What a class attribute `value` becomes: the new function, a new staticmethod,
    classmethod or property around new ones, or None if it holds none of the old ones."""
    if id(value) in new:
        return new[id(value)]
    if type(value) in (staticmethod, classmethod) and id(value.__func__) in new:
        return type(value)(new[id(value.__func__)])
    if type(value) is property and any(id(part) in new for part in (value.fget, value.fset, value.fdel)):
        fget, fset, fdel = (new.get(id(part), part) for part in (value.fget, value.fset, value.fdel))
        return property(fget, fset, fdel, value.__doc__)
    return None


# -- filling the holes -------------------------------------------------------------------

_BYTES_OVERHEAD = 33  # a bytes object of n bytes takes 33 + n (header and the final NUL)
_SIZE_CLASS = re.compile(r"^\s*\d+\s+(?P<size>\d+)\s+\d+\s+\d+\s+(?P<free>\d+)\s*$", re.MULTILINE)


def fill_holes() -> int:
    """Take every free block left in pymalloc's pools, of every size, and every free chunk
    of 528 bytes and up in glibc's malloc: the last thing the fork server does before it
    freezes its heap, so that a child's new objects go to fresh memory of its own instead
    of copying the server's pages that the holes lie on. Returns the number of fillers."""
    return _fill_pymalloc_pools(smallest=16) + _fill_malloc_chunks()


def _fill_pymalloc_pools(smallest: int = 48) -> int:
    """Take every free block of pymalloc's size classes from `smallest` bytes up (none of
    a code object's or a function's parts is smaller than 48), so that what comes next goes
    to fresh pools. Returns the number of fillers."""
    free = {size: count for size, count in _free_blocks().items() if size >= smallest}
    fillers: list[object] = [None] * sum(free.values())
    taken = 0
    for size, count in free.items():
        for _ in range(count):
            fillers[taken] = _filler(size, taken)
            taken += 1
    _PINNED.append(fillers)
    return taken


def _filler(size: int, n: int) -> object:
    """A new object that takes a block of `size` bytes: a bytes object from 48 up (33 bytes
    and its contents), a float for 32 (24 bytes), a bare object for 16."""
    if size >= 48:
        return bytes(size - _BYTES_OVERHEAD)
    if size == 32:
        return n + 0.5
    return object()


def _free_blocks() -> dict[int, int]:
    """Size class -> free blocks in its pools, from sys._debugmallocstats() (which writes to
    the C stderr: taken through a memfd). Empty where it is missing or says nothing of pools
    (PYTHONMALLOC=malloc)."""
    debug_stats = getattr(sys, "_debugmallocstats", None)
    if debug_stats is None:
        return {}
    sys.stderr.flush()
    saved = os.dup(2)
    capture = os.memfd_create("pgtop-mallocstats")
    try:
        os.dup2(capture, 2)
        debug_stats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    try:
        os.lseek(capture, 0, os.SEEK_SET)
        with open(capture, "rb", closefd=False) as stats:
            text = stats.read().decode("ascii", "replace")
    finally:
        os.close(capture)
    return {int(match["size"]): int(match["free"]) for match in _SIZE_CLASS.finditer(text)}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]  # fmt: skip


_SMALLEST_MALLOC_CHUNK = 528  # an object of 513 bytes: malloc(513) + 8, rounded up to 16
_LARGEST_TCACHE_CHUNK = 1040  # glibc keeps freed chunks up to this size per thread, by size


def _fill_malloc_chunks() -> int:
    """Take every free chunk glibc's malloc holds of 528 bytes and up: those its per-thread
    cache keeps by size (each size until a chunk comes from the top of the heap), then all
    larger ones, split in chunks of 528 until one comes from the top. Returns the number of
    fillers; none where malloc is not glibc's (2.33 or later, for mallinfo2) or the heap is
    not one piece (the top is then not where sbrk(0) says)."""
    libc = ctypes.CDLL(None)
    try:
        mallinfo2, sbrk = libc.mallinfo2, libc.sbrk
    except AttributeError:
        return 0
    mallinfo2.restype = _MallInfo2
    sbrk.restype, sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]

    def top() -> int:  # where the top chunk starts: a chunk carved from it starts there
        return (sbrk(0) or 0) - mallinfo2().keepcost

    # No more fillers than the free memory holds, and the per-thread cache (7 of each size).
    budget = mallinfo2().fordblks // _SMALLEST_MALLOC_CHUNK + 8 * 64
    fillers: list[bytes | None] = [None] * budget
    taken = 0
    for chunk in (*range(_SMALLEST_MALLOC_CHUNK, _LARGEST_TCACHE_CHUNK + 1, 16), _SMALLEST_MALLOC_CHUNK):
        while taken < budget:
            start = top()
            # b"\0" * n, not bytes(n): calloc would pass the per-thread cache by. malloc
            # adds 8 to a request and rounds it up to 16: n = chunk - 41 fills a chunk.
            filler = fillers[taken] = b"\0" * (chunk - _BYTES_OVERHEAD - 8)
            taken += 1
            if id(filler) == start + 16:  # carved from the top: no free chunk of this size left
                break
    _PINNED.append(fillers)
    return taken
