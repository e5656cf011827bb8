"""Themes: pgtop's theme files load, every theme renders, and no style hard-codes a colour."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from textual._color_constants import COLOR_NAME_TO_RGB
from textual.theme import BUILTIN_THEMES
from ui_pilot import drive

import pgtop.ui
from pgtop.ui import fake
from pgtop.ui.themes import THEMES_DIR, ThemeFileError, load_theme, load_themes

REPOSITORY = Path(pgtop.ui.__file__).resolve().parents[2]
DECLARATION = re.compile(r"([a-z-]+)\s*:\s*([^;{}]+);")
HEX = re.compile(r"#[0-9a-fA-F]{3,8}\b")
FUNCTION = re.compile(r"\b(rgba?|hsla?)\s*\(")
ALLOWED_WORDS = {"transparent"}


def colour_literals(css: str) -> list[str]:
    """Every colour written out in a declaration's value instead of a theme variable."""
    found = []
    for prop, value in DECLARATION.findall(css):
        found += [f"{prop}: {m}" for m in HEX.findall(value)]
        found += [f"{prop}: {m}(" for m in FUNCTION.findall(value)]
        words = [w for w in re.split(r"[\s,]+", value.strip()) if w and not w.startswith("$")]
        found += [f"{prop}: {w}" for w in words if w.lower() in COLOR_NAME_TO_RGB and w.lower() not in ALLOWED_WORDS]
    return found


def styles() -> dict[str, str]:
    """Every .tcss file in the repository and every DEFAULT_CSS of the dashboard."""
    found = {str(path): path.read_text() for path in REPOSITORY.glob("pgtop/**/*.tcss")}
    found |= {str(path): path.read_text() for path in REPOSITORY.glob("themes/*.tcss")}
    names = [info.name for info in pkgutil.walk_packages(pgtop.ui.__path__, "pgtop.ui.")]
    for module in map(importlib.import_module, names):
        for name, value in vars(module).items():
            css = getattr(value, "__dict__", {}).get("DEFAULT_CSS")
            if isinstance(css, str) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = css
    return found


def test_the_scanner_catches_each_kind_of_literal():
    css = "A { color: #fff; background: rgb(1, 2, 3); border: round red; tint: $primary 10%; }"
    assert colour_literals(css) == ["color: #fff", "background: rgb(", "border: red"]


def test_no_style_hard_codes_a_colour():
    found = styles()
    assert any(name.endswith("app.tcss") for name in found)
    assert len(found) >= 11
    offenders = {name: literals for name, css in found.items() if (literals := colour_literals(css))}
    assert offenders == {}


def test_pgtop_theme_files_load():
    names = [theme.name for theme in load_themes()]
    assert names == ["pgtop-dark", "pgtop-high-contrast", "pgtop-light"]
    assert THEMES_DIR == REPOSITORY / "themes"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\nprimary: '#123456'\nsparkle: true\n", "unknown theme fields: sparkle"),
        ("name: x\n", "a theme needs at least 'name' and 'primary'"),
        ("- just\n- a list\n", "expected a mapping of theme fields"),
        ("name: [unclosed\n", "while parsing"),
    ],
)
def test_a_broken_theme_file_is_a_one_line_error(tmp_path, text, problem):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ThemeFileError, match=re.escape(problem)) as raised:
        load_theme(path)
    assert str(raised.value).startswith(str(path))


def test_unknown_theme_name_is_refused(make_app):
    with pytest.raises(ValueError, match="unknown theme 'sparkly'; choose one of: pgtop-dark, "):
        make_app(theme="sparkly")


def test_every_theme_renders_the_dashboard(make_app):
    app = make_app(theme="textual-light")
    app.post_snapshot(fake.snapshot_of(fake.crash_cycle_state()))
    names = sorted(set(BUILTIN_THEMES) | {"pgtop-dark", "pgtop-light", "pgtop-high-contrast"})

    async def scenario(pilot):
        assert app.theme == "textual-light"
        for name in names:
            app.theme = name
            await pilot.pause()
            svg = app.export_screenshot()
            assert "PM_WAIT_BACKENDS" in svg, name

    drive(app, scenario)
