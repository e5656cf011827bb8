"""The fork server's code layout: the profiled functions' code objects re-created side by
side, the functions unchanged in what they do, and the profile recorded from a real backend."""

from __future__ import annotations

import gc
import importlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FunctionType, ModuleType

import pytest

from bench.hotcode import coverage, record_backend
from pgtop.runtime.codelayout import (
    PAGE,
    fill_holes,
    function_keys,
    load_profile,
    pack_hot_code,
    record_calls,
)

HOT = 30  # hot functions in the generated module


_modules = itertools.count()

# Where the server may hold a function: a class (as a method, a staticmethod, a classmethod,
# a property), a closure, a list, a dict; and a tuple, which cannot change.
THING = """
class Thing:
    def __init__(self, n):
        self.n = n

    def method(self):
        return self.n + 1

    @staticmethod
    def stat(n):
        return n * 2

    @classmethod
    def klass(cls, n):
        return cls(n).method()

    @property
    def prop(self):
        return self.n * 3


def outer(function):
    def inner():
        return function(5)
    return inner


closure = outer(hot1)
in_list = [hot2]
in_dict = {"f": hot3}
in_tuple = (hot4,)
"""


@pytest.fixture
def scattered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A module of its own whose small functions hot0..hot29 lie pages apart, each followed
    by 20 cold ones of the same size (and so in the same allocator's pools); and so do the
    big ones, big0..big29, each followed by 5 cold ones."""
    parts = ["from dataclasses import dataclass\n"]
    big_body = "".join(f"    n += {j}\n" for j in range(60))  # a code object malloc's, not pymalloc's
    for i in range(HOT):
        parts.append(f"def hot{i}(n):\n    return [*(k * {i} for k in range(n))]\n")
        parts += [f"def cold{i}_{j}(n):\n    return [*(k * {j} for k in range(n))]\n" for j in range(20)]
        parts.append(f"def big{i}(n):\n{big_body}    return n * {i}\n")
        parts += [f"def bigcold{i}_{j}(n):\n{big_body}    return n * {j}\n" for j in range(5)]
    parts.append("@dataclass\nclass Row:\n    a: int\n    b: str = 'b'\n")
    parts.append(THING)
    name = f"scattered_{next(_modules)}"
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / f"{name}.py").write_text("\n".join(parts))
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


@pytest.mark.parametrize("prefix", ["hot", "big"])
def test_pack_puts_the_profiled_code_objects_side_by_side(scattered: ModuleType, prefix: str) -> None:
    functions = [getattr(scattered, f"{prefix}{i}") for i in range(HOT)]
    old = [function.__code__ for function in functions]
    results = [function(3) for function in functions]
    # Holes about a page apart, where the copies would land one to a page were the holes
    # not filled first.
    size = sys.getsizeof(old[0])
    blocks = [b"\1" * (size - 33) for _ in range(PAGE // size * 100)]
    del blocks[:: PAGE // size]
    packed = pack_hot_code([(scattered.__name__, f"{prefix}{i}") for i in range(HOT)])
    assert packed.functions == HOT
    assert all(function.__code__ is not code for function, code in zip(functions, old, strict=True))
    # The allocator put them about one to a page; in a heap that earlier tests left holes in,
    # a few may share one (29 pages for 30 in one CI run).
    assert packed.pages_before >= HOT * 4 // 5, packed
    assert packed.pages_after * 3 <= packed.pages_before, packed
    assert [function(3) for function in functions] == results
    assert scattered.cold0_2(3) == [0, 2, 4]


def test_pack_re_creates_the_functions_side_by_side_wherever_they_are_held(scattered: ModuleType) -> None:
    names = [f"hot{i}" for i in range(HOT)] + ["Thing.method", "Thing.stat", "Thing.klass", "Thing.prop", "Thing.__init__"]
    # In tuples: the layout points every dict and list it can reach at the new functions.
    old = tuple(getattr(scattered, f"hot{i}") for i in range(HOT))
    thing = scattered.Thing
    methods = ("method", "stat", "klass", "prop", "__init__")
    old_methods = tuple(vars(thing)[name] for name in methods)
    packed = pack_hot_code([(scattered.__name__, name) for name in names])
    assert packed.functions == HOT + 5
    assert all(getattr(scattered, f"hot{i}") is not old[i] for i in range(HOT))
    assert packed.function_pages_after * 3 <= packed.function_pages_before, packed
    assert all(vars(thing)[name] is not wrapper for name, wrapper in zip(methods, old_methods, strict=True))
    assert type(vars(thing)["stat"]) is staticmethod and type(vars(thing)["klass"]) is classmethod
    assert (thing(4).method(), thing.stat(4), thing.klass(4), thing(4).prop) == (5, 8, 5, 12)
    assert scattered.closure.__closure__[0].cell_contents is scattered.hot1  # the new one
    assert scattered.in_list[0] is scattered.hot2 and scattered.in_dict["f"] is scattered.hot3
    assert scattered.in_tuple[0] is old[4]  # kept, and still the same code
    assert scattered.in_tuple[0].__code__ is scattered.hot4.__code__
    assert (scattered.closure(), scattered.in_tuple[0](2)) == ([0, 1, 2, 3, 4], [0, 4])


def test_fill_holes_sends_new_objects_to_fresh_memory() -> None:
    """Holes among live objects, of a small size class and a larger one: the next objects of
    those sizes land in them, unless fill_holes took them first."""

    def holes_reused(fill: bool) -> int:
        small = [object() for _ in range(3000)]
        large = [bytes(100 + i % 7) for i in range(3000)]
        holes = {id(obj) for obj in small[::3] + large[::3]}
        del small[::3], large[::3]
        if fill:
            fill_holes()
        new = [object() for _ in range(300)] + [bytes(100 + i % 7) for i in range(300)]
        return sum(id(obj) in holes for obj in new)

    assert holes_reused(fill=False) > 100  # the test can fail: without the fill they are reused
    assert holes_reused(fill=True) == 0


def test_a_generator_expression_in_the_profile_brings_its_function(scattered: ModuleType) -> None:
    function = scattered.hot7
    (comprehension,) = [const for const in function.__code__.co_consts if hasattr(const, "co_code")]
    packed = pack_hot_code([(scattered.__name__, "hot7.<locals>.<genexpr>")])
    assert packed.functions == 1
    (copied,) = [const for const in function.__code__.co_consts if hasattr(const, "co_code")]
    assert copied is not comprehension
    assert copied.co_qualname == comprehension.co_qualname
    assert function(4) == [0, 7, 14, 21]


def test_a_generated_method_is_named_by_its_class(scattered: ModuleType, tmp_path: Path) -> None:
    """A dataclass's __init__ comes from exec(): its code is "__create_fn__.<locals>.__init__"
    in every class, so the profile names it by the function, as the recorder does."""
    (records := tmp_path / "records").mkdir()
    record_calls(str(records))
    try:
        scattered.Row(1)
    finally:
        sys.setprofile(None)
    recorded = {tuple(line.split("\t")) for path in records.iterdir() for line in path.read_text().splitlines()}
    assert (scattered.__name__, "Row.__init__") in recorded
    init = scattered.Row.__init__
    old = init.__code__
    assert pack_hot_code([(scattered.__name__, "Row.__init__")]).functions == 1
    assert init.__code__ is not old
    assert scattered.Row(2) == scattered.Row(2, "b")


def test_recording_names_each_function_once_in_the_order_of_its_first_call(scattered: ModuleType, tmp_path: Path) -> None:
    (records := tmp_path / "records").mkdir()
    record_calls(str(records))
    try:
        for i in (3, 1, 3, 2, 1):
            getattr(scattered, f"hot{i}")(1)
    finally:
        sys.setprofile(None)
    (record,) = records.iterdir()
    prefix = f"{scattered.__name__}\thot"
    lines = [line for line in record.read_text().splitlines() if line.startswith(prefix)]
    assert lines == [f"{prefix}{i}{part}" for i in (3, 1, 2) for part in ("", ".<locals>.<genexpr>")]


def test_names_that_match_nothing_change_nothing(scattered: ModuleType) -> None:
    code = scattered.hot0.__code__
    assert pack_hot_code([(scattered.__name__, "gone"), ("no.such.module", "hot0")]).functions == 0
    assert pack_hot_code([]).functions == 0
    assert scattered.hot0.__code__ is code


def test_a_missing_profile_is_an_empty_one(tmp_path: Path) -> None:
    assert load_profile(tmp_path / "none.txt") == []


def test_the_shipped_profile_names_only_functions_that_exist() -> None:
    """Renaming a function of a backend's path leaves it out of the layout: regenerate the
    profile with `python -m bench hotcode` when this fails."""
    for name in ("pgtop.runtime.forkserver", "pgtop.children.context", "pgtop.children.backend"):
        importlib.import_module(name)
    profile = load_profile()
    assert len(profile) > 100
    existing = {key for obj in gc.get_objects() if type(obj) is FunctionType for key in function_keys(obj)}
    missing = [key for key in profile if key[0].startswith("pgtop.") and key not in existing]
    assert missing == [], "stale profile: run `python -m bench hotcode`"


def test_the_server_loop_names_only_functions_that_exist() -> None:
    """The fork server lays out its own loop's code too (forkserver.SERVER_LOOP): a name
    there that matches nothing leaves that code where it was."""
    from pgtop.runtime.forkserver import SERVER_LOOP

    existing = {key for obj in gc.get_objects() if type(obj) is FunctionType for key in function_keys(obj)}
    assert [key for key in SERVER_LOOP if key not in existing] == []


def test_a_real_backend_records_its_path_from_spare_to_exit() -> None:
    """What `python -m bench hotcode` does: one cluster whose spares record, one session."""
    recorded = record_backend()
    assert recorded[0][0] == "pgtop.runtime.forkserver"  # the spare's own first steps
    for key in [("pgtop.children.backend", "main"), ("pgtop.wire.session", "Session.run"),
                ("pgtop.children.context", "ChildContext.clean_exit")]:  # fmt: skip
        assert key in recorded
    assert len(set(recorded)) == len(recorded)
    assert coverage(recorded, load_profile()) >= 0.9, "stale profile: run `python -m bench hotcode`"
