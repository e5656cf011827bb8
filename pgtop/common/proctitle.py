"""Process titles as `ps` and psutil show them: ``pgtop: checkpointer``.

setproctitle rewrites the argv area (what `ps -f` and psutil's cmdline show) and the
15-character command name (`ps -e`, /proc/PID/comm), so both say what the process is.
"""

from __future__ import annotations

import setproctitle

TITLE_PREFIX = "pgtop: "


def set_title(title: str) -> None:
    """Set the whole process title, e.g. ``pgtop: walwriter``."""
    setproctitle.setproctitle(title)


def get_title() -> str:
    return setproctitle.getproctitle()


def kind_title(backend_type: str) -> str:
    """The title of an auxiliary process, from its backend type (``pgtop: checkpointer``)."""
    return f"{TITLE_PREFIX}{backend_type}"


def backend_title(user: str, database: str, remote: str, state: str) -> str:
    """A client backend's title, as PostgreSQL's ps display: user, database, host, state."""
    return f"{TITLE_PREFIX}{user} {database} {remote} {state}".rstrip()
