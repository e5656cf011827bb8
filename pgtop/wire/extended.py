"""The extended query protocol: Parse, Bind, Describe, Execute and Close (postgres.c's exec_*_message).

Prepared statements live for the session, portals until their transaction ends. Errors are
raised as PgError; the session reports them and skips messages until Sync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pgtop.wire import messages
from pgtop.wire.errors import PgError
from pgtop.wire.executor import (
    BoundStatement,
    Deallocate,
    Executor,
    ParsedStatement,
    PreparedStatement,
    Result,
    TransactionControl,
)
from pgtop.wire.frontend import Bind, Close, Describe, Execute, Parse
from pgtop.wire.messages import Column
from pgtop.wire.transaction import TransactionBlock


@dataclass(frozen=True, slots=True)
class EmptyStatement:
    """What Parse of an empty query string prepares: Execute answers EmptyQueryResponse."""

    param_types: tuple[int, ...] = ()
    text: str = ""
    transaction_control: TransactionControl | None = None
    deallocate: Deallocate | None = None
    tag: str = ""
    columns: tuple[Column, ...] | None = None


@dataclass(frozen=True, slots=True)
class PlainBinding:
    """A binding the session makes itself (empty and transaction-control statements)."""

    statement: PreparedStatement
    result_formats: tuple[int, ...] = ()


@dataclass(slots=True)
class Portal:
    bound: BoundStatement
    result: Result | None = None  # filled by the first Execute
    sent: int = 0  # rows already sent


def expand_formats(codes: Sequence[int], count: int, what: str, total_what: str) -> tuple[int, ...]:
    """One format code per item, from none (all text), one (for all) or one each."""
    if len(codes) not in (0, 1, count):
        raise PgError("08P01", f"bind message has {len(codes)} {what} formats but {total_what}")
    for code in codes:
        if code not in (0, 1):
            raise PgError("22023", f"unsupported format code: {code}")
    if not codes:
        return (0,) * count
    return tuple(codes) if len(codes) == count else (codes[0],) * count


def runs_in_session(statement: ParsedStatement) -> bool:
    return statement.transaction_control is not None or statement.deallocate is not None


def _missing_statement(name: str) -> PgError:
    if not name:
        return PgError("26000", "unnamed prepared statement does not exist")
    return PgError("26000", f'prepared statement "{name}" does not exist')


class ExtendedQuery:
    def __init__(
        self,
        executor: Executor,
        xact: TransactionBlock,
        send: Callable[[bytes], None],
        report_activity: Callable[[str], None],
        check_interrupts: Callable[[], None],
    ) -> None:
        self.executor = executor
        self.xact = xact
        self.send = send
        self.report_activity = report_activity
        self.check_interrupts = check_interrupts
        self.statements: dict[str, PreparedStatement] = {}
        self.portals: dict[str, Portal] = {}

    def drop_portals(self) -> None:
        self.portals.clear()

    def parse(self, message: Parse) -> None:
        if message.statement and message.statement in self.statements:
            raise PgError("42P05", f'prepared statement "{message.statement}" already exists')
        parsed = self.executor.parse(message.query)
        if len(parsed) > 1:
            raise PgError("42601", "cannot insert multiple commands into a prepared statement")
        if not parsed:
            prepared: PreparedStatement = EmptyStatement(param_types=message.param_types)
        else:
            self.xact.check_not_aborted(parsed[0])
            prepared = self.executor.analyze(parsed[0], message.param_types)
        self.statements[message.statement] = prepared
        self.send(messages.parse_complete())

    def bind(self, message: Bind) -> None:
        prepared = self.statements.get(message.statement)
        if prepared is None:
            raise _missing_statement(message.statement)
        wanted = len(prepared.param_types)
        if len(message.params) != wanted:
            raise PgError(
                "08P01",
                f"bind message supplies {len(message.params)} parameters, but prepared "
                f'statement "{message.statement}" requires {wanted}',
            )
        self.xact.check_not_aborted(prepared)
        if message.portal and message.portal in self.portals:
            raise PgError("42P03", f'cursor "{message.portal}" already exists')
        param_formats = expand_formats(message.param_formats, wanted, "parameter", f"{wanted} parameters")
        columns = prepared.columns or ()
        result_formats = expand_formats(
            message.result_formats, len(columns), "result", f"query has {len(columns)} columns"
        )
        self.xact.start_statement()  # a portal belongs to a transaction, as in PostgreSQL
        if isinstance(prepared, EmptyStatement) or runs_in_session(prepared):
            bound: BoundStatement = PlainBinding(prepared)
        else:
            bound = self.executor.bind(prepared, message.params, param_formats, result_formats)
        self.portals[message.portal] = Portal(bound)
        self.send(messages.bind_complete())

    def describe(self, message: Describe) -> None:
        if message.kind == "S":
            prepared = self.statements.get(message.name)
            if prepared is None:
                raise _missing_statement(message.name)
            self.send(messages.parameter_description(prepared.param_types))
            self._describe_rows(prepared.columns, ())
            return
        portal = self._portal(message.name)
        self._describe_rows(portal.bound.statement.columns, portal.bound.result_formats)

    def _describe_rows(self, columns: tuple[Column, ...] | None, formats: tuple[int, ...]) -> None:
        if columns is None:
            self.send(messages.no_data())
        else:
            self.send(messages.row_description(columns, formats))

    def execute(self, message: Execute) -> None:
        portal = self._portal(message.portal)
        statement = portal.bound.statement
        self.report_activity(statement.text)
        if isinstance(statement, EmptyStatement):
            self.send(messages.empty_query_response())
            return
        self.xact.check_not_aborted(statement)
        if runs_in_session(statement):
            self.run_in_session(statement)
            return
        if portal.result is None:
            self.check_interrupts()
            self.xact.start_statement()
            portal.result = self.executor.execute(portal.bound)
            for notice in portal.result.notices:
                self.send(messages.notice_response(notice))
        self._send_rows(portal, message.max_rows)

    def run_in_session(self, statement: ParsedStatement) -> None:
        """BEGIN/COMMIT/ROLLBACK and DEALLOCATE: statements about the session's own state."""
        if statement.deallocate is not None:
            self.deallocate(statement.deallocate)
            self.send(messages.command_complete(statement.tag))
            return
        tag, warnings = self.xact.control(statement)
        for warning in warnings:
            self.send(messages.notice_response(warning))
        self.send(messages.command_complete(tag))

    def deallocate(self, command: Deallocate) -> None:
        if command.name is None:
            self.statements.clear()
        elif self.statements.pop(command.name, None) is None:
            raise PgError("26000", f'prepared statement "{command.name}" does not exist')

    def _send_rows(self, portal: Portal, max_rows: int) -> None:
        result = portal.result
        assert result is not None
        start = portal.sent
        end = len(result.rows) if not max_rows else min(len(result.rows), start + max_rows)
        for row in result.rows[start:end]:
            self.send(messages.data_row(row))
        portal.sent = end
        if end < len(result.rows):
            self.send(messages.portal_suspended())
            return
        tag = result.tag
        if tag.startswith("SELECT "):
            tag = f"SELECT {end - start}"  # a resumed portal counts the rows of this Execute
        self.send(messages.command_complete(tag))

    def close(self, message: Close) -> None:
        # Closing something that does not exist is not an error.
        if message.kind == "S":
            self.statements.pop(message.name, None)
        else:
            self.portals.pop(message.name, None)
        self.send(messages.close_complete())

    def _portal(self, name: str) -> Portal:
        portal = self.portals.get(name)
        if portal is None:
            raise PgError("34000", f'portal "{name}" does not exist')
        return portal
