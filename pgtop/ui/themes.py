"""pgtop's Textual themes, read from the YAML files in the repository's `themes/` folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parents[2] / "themes"
DEFAULT_THEME = "pgtop-dark"
THEME_FIELDS = {f.name for f in dataclasses.fields(Theme)}


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file and the problem."""


def load_theme(path: Path) -> Theme:
    """One theme file: a mapping of textual.theme.Theme fields."""
    try:
        fields = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ThemeFileError(f"{path}: {error}") from None
    if not isinstance(fields, dict):
        raise ThemeFileError(f"{path}: expected a mapping of theme fields")
    unknown = sorted(set(fields) - THEME_FIELDS)
    if unknown:
        raise ThemeFileError(f"{path}: unknown theme fields: {', '.join(unknown)}")
    if "name" not in fields or "primary" not in fields:
        raise ThemeFileError(f"{path}: a theme needs at least 'name' and 'primary'")
    return Theme(**fields)


def load_themes(directory: Path = THEMES_DIR) -> list[Theme]:
    """Every `*.yaml` theme in the directory, by file name; none if the folder is absent."""
    if not directory.is_dir():
        return []
    return [load_theme(path) for path in sorted(directory.glob("*.yaml"))]
