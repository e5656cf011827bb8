"""pgtop.core touches nothing in the world: proven on its source and on a live import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pgtop.core

CORE = Path(pgtop.core.__file__).parent
FORBIDDEN = {
    "os", "signal", "subprocess", "socket", "threading", "time", "select", "selectors",
    "mmap", "yaml", "textual", "psutil", "asyncio", "random", "zoneinfo", "pathlib", "shutil",
    "tempfile", "io", "fcntl", "ctypes",
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_core_module_imports_anything_that_touches_the_world() -> None:
    offenders = {
        path.name: sorted(_imported_roots(path) & FORBIDDEN)
        for path in sorted(CORE.glob("*.py"))
        if _imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def _loaded_modules(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_the_core_loads_no_io_module() -> None:
    # The interpreter and site-packages load some modules (os, time...) before any of ours:
    # compare against a bare interpreter on this machine.
    baseline = _loaded_modules("pass")
    loaded = _loaded_modules("import pgtop.core, pgtop.core.simulation, pgtop.core.guc")
    added_roots = {name.split(".")[0] for name in loaded - baseline}
    assert added_roots & FORBIDDEN == set()
