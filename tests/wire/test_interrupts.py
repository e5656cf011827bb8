"""CHECK_FOR_INTERRUPTS at the session's safe points: statement_timeout's deadline."""

from __future__ import annotations

import pytest

from pgtop.wire.errors import PgError
from pgtop.wire.interrupts import Interrupts


def test_a_statement_deadline_cuts_a_sleep_short_and_ends_with_the_statement() -> None:
    interrupts = Interrupts()
    try:
        interrupts.start_statement(0.05)
        with pytest.raises(PgError) as raised:
            interrupts.sleep(30)
        assert (raised.value.sqlstate, str(raised.value)) == ("57014", "canceling statement due to statement timeout")
        interrupts.start_statement(0.05)
        interrupts.end_statement()
        interrupts.sleep(0.1)  # past the old deadline: nothing fires once the statement ended
        interrupts.start_statement(0)  # 0: no limit
        interrupts.sleep(0.01)
        interrupts.check()
    finally:
        interrupts.close()
