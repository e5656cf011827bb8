"""The transaction block as the protocol sees it (xact.c's TBLOCK states, cut down).

    IDLE       no transaction                              ReadyForQuery 'I'
    IMPLICIT   started by a statement outside a block;     (never seen by ReadyForQuery:
               ends at the end of the Query message or      it commits first)
               at Sync
    BLOCK      after BEGIN                                 'T'
    FAILED     a statement failed inside the block; only   'E'
               COMMIT/ROLLBACK are accepted, both roll back

Rules (checked against PostgreSQL 15): an error in IMPLICIT rolls back everything the Query
message (or the messages since Sync) did; BEGIN inside IMPLICIT turns it into a block; COMMIT
or ROLLBACK outside a block warn 25P01 and still end the implicit transaction; BEGIN inside a
block warns 25001.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from pgtop.wire.errors import Diagnostic, PgError
from pgtop.wire.executor import Executor, ParsedStatement, TransactionControl


class BlockState(enum.Enum):
    IDLE = "idle"
    IMPLICIT = "implicit"
    BLOCK = "block"
    FAILED = "failed"


# ReadyForQuery's status byte for each state (an implicit block reports idle, as PostgreSQL's does).
_STATUS = {BlockState.IDLE: "I", BlockState.IMPLICIT: "I", BlockState.BLOCK: "T", BlockState.FAILED: "E"}

NO_TRANSACTION = Diagnostic("WARNING", "25P01", "there is no transaction in progress")
ALREADY_IN_TRANSACTION = Diagnostic("WARNING", "25001", "there is already a transaction in progress")


def aborted_block_error() -> PgError:
    return PgError(
        "25P02", "current transaction is aborted, commands ignored until end of transaction block"
    )


class TransactionBlock:
    def __init__(self, executor: Executor, on_end: Callable[[], None] = lambda: None) -> None:
        self.executor = executor
        self.state = BlockState.IDLE
        self._on_end = on_end  # portals die with their transaction

    @property
    def status(self) -> str:
        """ReadyForQuery's transaction status byte."""
        return _STATUS[self.state]

    def check_not_aborted(self, statement: ParsedStatement) -> None:
        """In a failed block only COMMIT and ROLLBACK run (IsTransactionExitStmt)."""
        exits = (TransactionControl.COMMIT, TransactionControl.ROLLBACK)
        if self.state is BlockState.FAILED and statement.transaction_control not in exits:
            raise aborted_block_error()

    def start_statement(self) -> None:
        if self.state is BlockState.IDLE:
            self.executor.begin()
            self.state = BlockState.IMPLICIT

    def control(self, statement: ParsedStatement) -> tuple[str, list[Diagnostic]]:
        """Run BEGIN / COMMIT / ROLLBACK; return the command tag and any warnings."""
        kind, state = statement.transaction_control, self.state
        if kind is TransactionControl.BEGIN:
            if state is BlockState.IDLE:
                self.executor.begin()
            self.state = BlockState.BLOCK
            return statement.tag, [ALREADY_IN_TRANSACTION] if state is BlockState.BLOCK else []
        warnings = [NO_TRANSACTION] if state in (BlockState.IDLE, BlockState.IMPLICIT) else []
        if kind is TransactionControl.COMMIT and state is not BlockState.FAILED:
            self._end(commit=True)
            return statement.tag, warnings
        self._end(commit=False)
        # COMMIT of a failed block rolls back and says so.
        return "ROLLBACK", warnings

    def on_error(self) -> None:
        """A statement failed: a block becomes FAILED, an implicit transaction is rolled back."""
        if self.state is BlockState.BLOCK:
            self._rollback_quietly()
            self.state = BlockState.FAILED
            self._on_end()
        elif self.state is BlockState.IMPLICIT:
            self._end(commit=False)

    def finish_command(self) -> None:
        """End of a Query message or a Sync: commit the implicit transaction."""
        if self.state is BlockState.IMPLICIT:
            self._end(commit=True)

    def abandon(self) -> None:
        """The session is ending: roll back whatever is open."""
        if self.state in (BlockState.IMPLICIT, BlockState.BLOCK):
            self._rollback_quietly()
        self.state = BlockState.IDLE
        self._on_end()

    def _end(self, commit: bool) -> None:
        state, self.state = self.state, BlockState.IDLE
        self._on_end()
        if state is BlockState.FAILED or state is BlockState.IDLE:
            return  # the failed block was already rolled back when it failed
        if commit:
            self.executor.commit()
        else:
            self.executor.rollback()

    def _rollback_quietly(self) -> None:
        try:
            self.executor.rollback()
        except Exception:  # noqa: BLE001 - an abort must not fail the session
            pass
