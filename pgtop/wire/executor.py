"""The contract between a `Session` (the protocol) and whatever runs statements.

`pgtop.sql.Engine` implements it. The session owns the transaction block (BEGIN/COMMIT, the
I/T/E status, the implicit transaction of a Query message or of the messages up to Sync) and
calls `begin`/`commit`/`rollback`; the executor parses, plans and runs single statements.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pgtop.wire.errors import Diagnostic
from pgtop.wire.messages import Column
from pgtop.wire.startup import StartupMessage


class TransactionControl(enum.Enum):
    BEGIN = "BEGIN"  # BEGIN, START TRANSACTION
    COMMIT = "COMMIT"  # COMMIT, END
    ROLLBACK = "ROLLBACK"  # ROLLBACK, ABORT


@dataclass(frozen=True, slots=True)
class Deallocate:
    """DEALLOCATE name / DEALLOCATE ALL (name None): drops the session's prepared statements,
    which the session owns, so it runs this statement itself."""

    name: str | None


class ParsedStatement(Protocol):
    """One statement after the raw parse (syntax only)."""

    @property
    def text(self) -> str: ...

    @property
    def transaction_control(self) -> TransactionControl | None: ...

    @property
    def deallocate(self) -> Deallocate | None: ...

    @property
    def tag(self) -> str:
        """The command tag a statement the session runs itself completes with
        ("BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "DEALLOCATE", "DEALLOCATE ALL")."""
        ...


class PreparedStatement(ParsedStatement, Protocol):
    """A statement after analysis: parameter types resolved, result columns known."""

    @property
    def param_types(self) -> tuple[int, ...]: ...

    @property
    def columns(self) -> tuple[Column, ...] | None:
        """None when the statement returns no rows (NoData)."""
        ...


class BoundStatement(Protocol):
    """A prepared statement with its parameter values: what a portal runs."""

    @property
    def statement(self) -> PreparedStatement: ...

    @property
    def result_formats(self) -> tuple[int, ...]:
        """One format code per result column (0 text, 1 binary)."""
        ...


@dataclass(frozen=True, slots=True)
class Result:
    """What one executed statement produced. `rows` are already encoded in the portal's
    result formats; `notices` go to the client before the rows."""

    tag: str
    columns: tuple[Column, ...] | None = None
    rows: Sequence[Sequence[bytes | None]] = ()
    notices: Sequence[Diagnostic] = ()


class Executor(Protocol):
    def start_session(self, startup: StartupMessage) -> None:
        """Apply the startup packet (user, database, options, settings). A PgError raised here
        is sent as FATAL after AuthenticationOk, e.g. 42704 for an unknown setting."""
        ...

    def parameter_status(self) -> Mapping[str, str]:
        """Current values of the reported settings (server_version, TimeZone, ...). The session
        sends a ParameterStatus for each value that changed before every ReadyForQuery. It may
        return the very same mapping while nothing changed: the session then skips the
        comparison."""
        ...

    def statement_timeout(self) -> float:
        """statement_timeout as the session has it now, in seconds (0: none)."""
        ...

    def parse(self, query: str) -> Sequence[ParsedStatement]:
        """Split and parse a query string; [] for an empty one. Raises PgError (42601...)."""
        ...

    def analyze(self, parsed: ParsedStatement, param_types: Sequence[int] | None) -> PreparedStatement:
        """Resolve names and types. `param_types` (from Parse) holds 0 where the client left a
        type open; None means the simple protocol, where `$1` is an error (42P02)."""
        ...

    def bind(
        self,
        statement: PreparedStatement,
        params: Sequence[bytes | None],
        param_formats: Sequence[int],
        result_formats: Sequence[int],
    ) -> BoundStatement:
        """Decode the parameters. The session has checked the number of parameters and
        expanded both format lists to one code per parameter / column."""
        ...

    def execute(self, bound: BoundStatement) -> Result:
        """Run a non-transaction-control statement inside the current transaction."""
        ...

    def begin(self) -> None: ...

    def commit(self) -> None:
        """Make the transaction durable; may raise PgError, and the transaction is then gone."""
        ...

    def rollback(self) -> None: ...
