"""The child programs never load the supervisor or the dashboard: they talk to the runtime
through OS mechanisms only (DESIGN.md, "Layers"). What both sides must agree on lives in
pgtop.common, which loads neither either. Proven on the source (every import, lazy ones too)
and on a live import in a fresh interpreter, as tests/core/test_purity.py does for the core.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pgtop.children
import pgtop.common

# The supervisor side of the one-way arrow: ui -> runtime -> core.
FORBIDDEN = ("pgtop.runtime", "pgtop.ui", "pgtop.attach", "pgtop.demo")


def _modules(package: object) -> list[str]:
    prefix = f"{package.__name__}."  # type: ignore[attr-defined]
    return sorted(prefix + info.name for info in pkgutil.iter_modules(package.__path__))  # type: ignore[attr-defined]


CHILD_MODULES = _modules(pgtop.children)
COMMON_MODULES = _modules(pgtop.common)


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module an import statement in `path` names, wherever it sits (a function's
    lazy import included), relative imports resolved against `package`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _forbidden(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The names under a forbidden package; `from m import a` names m.a too, which is left
    out when m is already listed and is a module of its own (a is then an attribute)."""
    found = {name for name in names if any(name == f or name.startswith(f"{f}.") for f in forbidden)}
    return sorted(name for name in found if name.rpartition(".")[0] not in found - set(forbidden))


def test_no_child_or_common_module_imports_the_runtime_or_the_ui() -> None:
    offenders = {}
    for package, forbidden in ((pgtop.children, FORBIDDEN), (pgtop.common, (*FORBIDDEN, "pgtop.children"))):
        for path in sorted(Path(package.__file__).parent.glob("*.py")):
            found = _forbidden(_imported_modules(path, package.__name__), forbidden)
            if found:
                offenders[f"{package.__name__}.{path.stem}"] = found
    assert offenders == {}


def test_importing_every_child_program_loads_no_runtime_or_ui_module() -> None:
    statement = "; ".join(f"import {name}" for name in CHILD_MODULES + COMMON_MODULES)
    probe = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert set(CHILD_MODULES) <= loaded  # the probe really imported them all
    assert _forbidden(loaded, FORBIDDEN) == []

