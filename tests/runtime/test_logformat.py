"""One server log entry as PostgreSQL writes it to stderr (elog.c's send_message_to_server_log)."""

from __future__ import annotations

from pgtop.common.logformat import format_log_line
from pgtop.core.vocabulary import LogLevel

NOW = 1700000000.25  # 2023-11-14 22:13:20.250 UTC


def test_an_entry_has_detail_hint_context_and_statement_lines_in_elogs_order() -> None:
    """Each on a line of its own with the same prefix; a value's own newlines continue with
    a tab, as append_with_tabs does."""
    text = format_log_line(
        "%m [%p] ", LogLevel.ERROR, "division by zero", pid=4301, backend_type="client backend", now=NOW,
        detail="the detail", hint="the hint", context="Traceback:\n  line 1", statement="select 1/0;\nselect 2",
    )
    assert text.split("\n") == [
        "2023-11-14 22:13:20.250 UTC [4301] ERROR:  division by zero",
        "2023-11-14 22:13:20.250 UTC [4301] DETAIL:  the detail",
        "2023-11-14 22:13:20.250 UTC [4301] HINT:  the hint",
        "2023-11-14 22:13:20.250 UTC [4301] CONTEXT:  Traceback:",
        "\t  line 1",
        "2023-11-14 22:13:20.250 UTC [4301] STATEMENT:  select 1/0;",
        "\tselect 2",
    ]


def test_an_entry_without_extras_is_one_line() -> None:
    text = format_log_line("%m [%p] ", LogLevel.LOG, "checkpoint starting: time", pid=7, backend_type="checkpointer", now=NOW)
    assert text == "2023-11-14 22:13:20.250 UTC [7] LOG:  checkpoint starting: time"
