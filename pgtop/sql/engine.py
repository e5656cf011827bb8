"""The engine a backend runs statements with: `Engine` implements `pgtop.wire.Executor` over an
`Environment` and a `Storage`.

    engine = Engine(environment, storage)
    Session(sock, startup, pid=..., secret_key=..., parameters={}, executor=engine).run()
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pgtop.core.guc import InvalidValue, parse_value
from pgtop.sql import ast
from pgtop.sql.binary import binary_supported, decode_parameter, encode_result
from pgtop.sql.compiled import Params
from pgtop.sql.environment import Environment, Storage
from pgtop.sql.errors import SqlError
from pgtop.sql.modify import (
    plan_create_table,
    plan_delete,
    plan_drop_table,
    plan_insert,
    plan_update,
)
from pgtop.sql.parser import parse_script
from pgtop.sql.plans import Execution, OutputColumn, Plan, Values
from pgtop.sql.select import plan_select
from pgtop.sql.settings import Settings
from pgtop.sql.types import BY_OID, TEXT, SqlType, input_value, output_value
from pgtop.wire.errors import Diagnostic
from pgtop.wire.executor import Deallocate, Result, TransactionControl
from pgtop.wire.messages import Column
from pgtop.wire.startup import StartupMessage, split_options


@dataclass(frozen=True, slots=True)
class Statement:
    """A parsed statement (pgtop.wire.executor.ParsedStatement)."""

    tree: ast.Statement
    text: str
    transaction_control: TransactionControl | None
    tag: str
    deallocate: Deallocate | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """An analysed statement (pgtop.wire.executor.PreparedStatement)."""

    parsed: Statement
    plan: Plan
    param_types: tuple[int, ...]
    columns: tuple[Column, ...] | None
    output: tuple[OutputColumn, ...] | None

    @property
    def text(self) -> str:
        return self.parsed.text

    @property
    def transaction_control(self) -> TransactionControl | None:
        return self.parsed.transaction_control

    @property
    def tag(self) -> str:
        return self.parsed.tag

    @property
    def deallocate(self) -> Deallocate | None:
        return self.parsed.deallocate


@dataclass(frozen=True, slots=True)
class Bound:
    """A prepared statement with decoded parameters (pgtop.wire.executor.BoundStatement)."""

    statement: Prepared
    values: tuple[Any, ...]
    result_formats: tuple[int, ...]


@dataclass(slots=True)
class SessionState:
    """What statements read about their session (functions get it as their `ctx`)."""

    env: Environment
    settings: Settings
    user: str = ""
    database: str = ""
    transaction_start: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    statement_start: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    notices: list[Diagnostic] = field(default_factory=list)
    # StartTransaction's startedInRecovery: a transaction begun on a hot standby stays
    # read-only (25006) until it ends, even if the server is promoted meanwhile.
    started_in_recovery: bool = False

    def notify(self, severity: str, sqlstate: str, message: str) -> None:
        self.notices.append(Diagnostic(severity, sqlstate, message))

    def warn(self, sqlstate: str, message: str) -> None:
        self.notify("WARNING", sqlstate, message)


def _wire_column(column: OutputColumn) -> Column:
    return Column(column.name, column.type.oid, column.type.size, column.typmod)


class Engine:
    def __init__(self, env: Environment, storage: Storage) -> None:
        self.env = env
        self.storage = storage
        self.settings = Settings(env.settings())
        self.state = SessionState(env, self.settings)
        # Analyses of SELECTs without FROM, by text and parameter types: their plans read
        # neither storage nor settings (the analyzer gets neither), so they stay valid.
        self._table_free: dict[tuple[str, tuple[int, ...] | None], Prepared] = {}
        self._status: tuple[tuple[object, ...], dict[str, str]] | None = None
        self._timeout: tuple[str | None, float] = (None, 0.0)  # statement_timeout: text, seconds

    # -- session ----------------------------------------------------------------------------

    def start_session(self, startup: StartupMessage) -> None:
        self.state.user, self.state.database = startup.user, startup.database
        pairs = list(startup.parameters.items()) + split_options(startup.options)
        self.settings.apply_startup(pairs)

    def parameter_status(self) -> Mapping[str, str]:
        # Asked before every ReadyForQuery: the same mapping until something in it changed.
        key = (self.settings.reported_base(), self.state.user, self.env.in_recovery())
        if self._status is None or self._status[0] != key:
            base, user, in_recovery = key
            values = {**base, "is_superuser": "on", "session_authorization": user,
                      "in_hot_standby": "on" if in_recovery else "off"}  # fmt: skip
            self._status = (key, values)
        return self._status[1]

    def statement_timeout(self) -> float:
        try:
            text = self.settings.get("statement_timeout")
        except SqlError:  # an environment without the parameter
            return 0.0
        if text != self._timeout[0]:  # asked before every statement: parsed once per value
            try:
                seconds = parse_value("statement_timeout", text) / 1000
            except InvalidValue:  # a SET value that is no time
                seconds = 0.0
            self._timeout = (text, seconds)
        return self._timeout[1]

    # -- statements ---------------------------------------------------------------------------

    def parse(self, query: str) -> list[Statement]:
        if len(query) <= _REMEMBER_UP_TO:
            return list(_parse_remembered(query))
        return list(_statements(query))

    def analyze(self, parsed: Statement, param_types: Sequence[int] | None) -> Prepared:
        table_free = isinstance(parsed.tree, ast.Select) and parsed.tree.table is None
        key = (parsed.text, None if param_types is None else tuple(param_types))
        if table_free and (known := self._table_free.get(key)) is not None:
            return known if known.parsed is parsed else replace(known, parsed=parsed)
        prepared = self._analyze(parsed, param_types)
        if table_free and len(self._table_free) < _REMEMBER_PLANS:
            self._table_free[key] = prepared
        return prepared

    def _analyze(self, parsed: Statement, param_types: Sequence[int] | None) -> Prepared:
        params = Params(param_types)
        with _STACK_GUARD:
            plan = self._plan(parsed.tree, params)
        types = params.final_types()
        columns = None if plan.columns is None else tuple(_wire_column(c) for c in plan.columns)
        return Prepared(parsed, plan, tuple(t.oid for t in types), columns, plan.columns)

    def _plan(self, tree: ast.Statement, params: Params) -> Plan:
        if isinstance(tree, ast.Select):
            return plan_select(tree, self.storage, params)
        if isinstance(tree, ast.Insert):
            return plan_insert(tree, self.storage, params)
        if isinstance(tree, ast.Update):
            return plan_update(tree, self.storage, params)
        if isinstance(tree, ast.Delete):
            return plan_delete(tree, self.storage, params)
        if isinstance(tree, ast.CreateTable):
            return plan_create_table(tree)
        if isinstance(tree, ast.DropTable):
            return plan_drop_table(tree)
        if isinstance(tree, ast.Show):
            return self._plan_show(tree)
        if isinstance(tree, (ast.SetParameter, ast.Reset)):
            return self._plan_set(tree)
        # Transaction control and DEALLOCATE belong to the session (pgtop.wire), which runs
        # them itself; their plan is never run.
        return Plan(None, _session_statement)

    def _plan_show(self, tree: ast.Show) -> Plan:
        settings = self.settings
        if tree.name is None:
            columns = (OutputColumn("name", TEXT), OutputColumn("setting", TEXT), OutputColumn("description", TEXT))
            return Plan(columns, lambda ex: ([(i.name, i.value, i.description) for i in settings.all()], "SHOW"))
        info = settings.info(tree.name)
        return Plan((OutputColumn(info.name, TEXT),), lambda ex: ([(settings.get(info.name),)], "SHOW"))

    def _plan_set(self, tree: ast.SetParameter | ast.Reset) -> Plan:
        settings = self.settings

        def run(ex: Execution) -> tuple[list[Values], str]:
            if isinstance(tree, ast.Reset):
                settings.reset(tree.name)
                return [], "RESET"
            settings.set(tree.name, tree.value, tree.local)
            return [], "SET"

        return Plan(None, run)

    def bind(self, statement: Prepared, params: Sequence[bytes | None], param_formats: Sequence[int],
             result_formats: Sequence[int]) -> Bound:
        if len(params) != len(statement.param_types):
            raise SqlError("08P01", f"bind message supplies {len(params)} parameters, but prepared statement "
                           f"requires {len(statement.param_types)}")
        formats = _one_per(param_formats, len(params))
        values = []
        for number, (oid, data, fmt) in enumerate(zip(statement.param_types, params, formats), start=1):
            typ = BY_OID[oid]
            if data is None:
                values.append(None)
            elif fmt == 1:
                values.append(decode_parameter(typ, data, number))
            else:
                values.append(_text_parameter(typ, data))
        output = statement.output or ()
        result_formats = _one_per(result_formats, len(output))
        for column, fmt in zip(output, result_formats):
            if fmt == 1 and not binary_supported(column.type):
                raise SqlError("0A000", f"binary format is not supported for results of type {column.type}")
        return Bound(statement, tuple(values), result_formats)

    def execute(self, bound: Bound) -> Result:
        state = self.state
        state.notices = []
        state.statement_start = dt.datetime.now(dt.UTC)
        self.env.check_for_interrupts()
        execution = Execution(state, self.storage, bound.values)
        with _STACK_GUARD:
            rows, tag = bound.statement.plan.run(execution)
        encoded = self._encode(bound, rows)
        return Result(tag, bound.statement.columns, encoded, tuple(state.notices))

    def _encode(self, bound: Bound, rows: list[Values]) -> list[list[bytes | None]]:
        output = bound.statement.output or ()
        formats = bound.result_formats
        encoders = [
            (lambda v, t=c.type: encode_result(t, v)) if fmt == 1 else (lambda v, t=c.type: output_value(t, v).encode())
            for c, fmt in zip(output, formats)
        ]
        return [[None if v is None else enc(v) for enc, v in zip(encoders, row)] for row in rows]

    # -- transactions ---------------------------------------------------------------------------

    def begin(self) -> None:
        self.state.transaction_start = dt.datetime.now(dt.UTC)
        self.state.started_in_recovery = self.env.in_recovery()
        self.settings.begin()
        self.storage.begin()

    def commit(self) -> None:
        self.settings.commit()
        self.storage.commit()

    def rollback(self) -> None:
        self.settings.rollback()
        self.storage.abort()


def _one_per(codes: Sequence[int], count: int) -> tuple[int, ...]:
    """Format codes as the protocol sends them (none, one for all, or one each), one each."""
    if len(codes) == count:
        return tuple(codes)
    return (codes[0] if codes else 0,) * count


_REMEMBER_UP_TO = 4096  # characters: longer statements are parsed each time
_REMEMBER_PLANS = 64  # table-free analyses a session keeps


def _statements(query: str) -> tuple[Statement, ...]:
    """The statements of a query string, each with its text, transaction control and tag."""
    with _STACK_GUARD:
        raws = parse_script(query)
    statements = []
    for raw in raws:
        tree, text = raw.tree, query[raw.start : raw.end]
        if isinstance(tree, ast.TransactionStmt):
            statement = Statement(tree, text, TransactionControl(tree.kind), tree.tag)
        elif isinstance(tree, ast.DeallocateStmt):
            tag = "DEALLOCATE ALL" if tree.name is None else "DEALLOCATE"
            statement = Statement(tree, text, None, tag, Deallocate(tree.name))
        else:
            statement = Statement(tree, text, None, "")
        statements.append(statement)
    return tuple(statements)


# Remembered: clients repeat their statements (pgbench, an application's few queries), and
# statements are frozen, so one parse serves every repetition, and the analysis remembered
# for a statement is found again by identity. A syntax error raises each time (lru_cache
# keeps no exceptions).
_parse_remembered = functools.lru_cache(maxsize=256)(_statements)


class _StackGuard:
    """Deeply nested input exhausts Python's stack, as it would PostgreSQL's. (A class
    rather than a generator: it guards every statement, and this costs a fifth as much.)"""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> bool:
        if kind is not None and issubclass(kind, RecursionError):
            raise SqlError("54001", "stack depth limit exceeded",
                           hint="pgtop limits how deeply expressions may nest.") from None
        return False


_STACK_GUARD = _StackGuard()


def _session_statement(ex: Execution) -> tuple[list[Values], str]:
    raise SqlError("XX000", "transaction control and DEALLOCATE are run by the session")


def _text_parameter(typ: SqlType, data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SqlError("22021", "invalid byte sequence for encoding \"UTF8\"") from None
    return input_value(typ, text)
