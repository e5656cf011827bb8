"""The statements that write: CREATE TABLE, DROP TABLE, INSERT, UPDATE, DELETE. Each checks
the recovery state first (25006), as PostgreSQL refuses writes on a standby: the state when
the transaction began (a transaction open across a promotion stays read-only) or now."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pgtop.sql import ast
from pgtop.sql.analyzer import Analyzer
from pgtop.sql.compiled import Compiled, Params, Scope, assignable, coerce
from pgtop.sql.environment import ColumnDef, Storage, TableDef
from pgtop.sql.errors import SqlError, read_only
from pgtop.sql.plans import (
    Execution,
    OutputColumn,
    Plan,
    Values,
    decode_row,
    encode_row,
    source_for,
    table_scope,
)
from pgtop.sql.select import plan_returning
from pgtop.sql.types import BY_NAME, output_value


def require_writable(ex: Execution, command: str) -> None:
    # Recovery never starts again under a session, so "now" only matters to a caller that
    # ran a statement without begin().
    if ex.session.started_in_recovery or ex.env.in_recovery():
        raise read_only(command)


def plan_create_table(node: ast.CreateTable) -> Plan:
    seen: set[str] = set()
    for column in node.columns:
        if column.name in seen:
            raise SqlError("42701", f'column "{column.name}" specified more than once')
        seen.add(column.name)
    table = TableDef(
        node.table.name,
        tuple(ColumnDef(c.name, c.type_name.type.name, c.type_name.typmod, c.not_null) for c in node.columns),
        tuple(c.name for c in node.columns if c.primary_key),
    )

    def run(ex: Execution) -> tuple[list[Values], str]:
        require_writable(ex, "CREATE TABLE")
        if ex.storage.get_table(table.name) is not None:
            if not node.if_not_exists:
                raise SqlError("42P07", f'relation "{table.name}" already exists')
            ex.notice("42P07", f'relation "{table.name}" already exists, skipping')
        else:
            ex.storage.create_table(table)
        return [], "CREATE TABLE"

    return Plan(None, run)


def plan_drop_table(node: ast.DropTable) -> Plan:
    def run(ex: Execution) -> tuple[list[Values], str]:
        require_writable(ex, "DROP TABLE")
        for ref in node.tables:
            if ex.storage.get_table(ref.name) is not None:
                ex.storage.drop_table(ref.name)
            elif node.if_exists:
                ex.notice("00000", f'table "{ref.name}" does not exist, skipping')
            else:
                raise SqlError("42P01", f'table "{ref.name}" does not exist')
        return [], "DROP TABLE"

    return Plan(None, run)


def _writable_table(storage: Storage, ref: ast.TableRef, verb: str) -> TableDef:
    source = source_for(storage, ref.name, ref.alias, ref.position)
    if source.table is None:
        raise SqlError("55000", f'cannot {verb} view "{ref.name}"',
                       detail="Views that do not select from a single table or view are not automatically updatable.")
    return source.table


def _assign(analyzer: Analyzer, table: TableDef, column: ColumnDef, expr: ast.Expr) -> Compiled:
    compiled = analyzer.compile_in(expr, "VALUES" if analyzer.scope.table is None else "UPDATE")
    target = BY_NAME[column.type_name]
    if compiled.type.name != "unknown" and not assignable(compiled.type, target):
        raise SqlError("42804", f'column "{column.name}" is of type {target} but expression is of type {compiled.type}',
                       hint="You will need to rewrite or cast the expression.", position=compiled.position)
    return coerce(compiled, target, analyzer.params, column.type_modifier, how="assignment")


def _column_index(table: TableDef, name: str, position: int) -> int:
    for index, column in enumerate(table.columns):
        if column.name == name:
            return index
    raise SqlError("42703", f'column "{name}" of relation "{table.name}" does not exist', position=position)


def check_row(table: TableDef, values: Values) -> None:
    for column, value in zip(table.columns, values):
        if value is None and column.not_null:
            shown = ", ".join("null" if v is None else output_value(BY_NAME[c.type_name], v)
                              for c, v in zip(table.columns, values))
            raise SqlError("23502", f'null value in column "{column.name}" of relation "{table.name}" violates '
                           "not-null constraint", detail=f"Failing row contains ({shown}).")


def check_unique(table: TableDef, rows: Sequence[Values]) -> None:
    """The primary key: no two rows may share it (checked against all rows, old and new)."""
    if not table.primary_key:
        return
    indexes = [next(i for i, c in enumerate(table.columns) if c.name == k) for k in table.primary_key]
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        key = tuple(row[i] for i in indexes)
        if key in seen:
            shown = ", ".join(output_value(BY_NAME[table.columns[i].type_name], row[i]) for i in indexes)
            raise SqlError("23505", f'duplicate key value violates unique constraint "{table.name}_pkey"',
                           detail=f"Key ({', '.join(table.primary_key)})=({shown}) already exists.")
        seen.add(key)


def _existing(ex: Execution, table: TableDef) -> list[tuple[int, Values]]:
    return [(row_id, decode_row(table, row)) for row_id, row in ex.storage.scan(table.name)]


def _returning(node_returning: Sequence[ast.Target] | None, table: TableDef, alias: str | None,
               params: Params) -> tuple[tuple[OutputColumn, ...] | None, Callable[[Execution, list[Values]], list[Values]]]:
    if node_returning is None:
        return None, lambda ex, rows: []
    return plan_returning(node_returning, table_scope(table, alias), params)


def plan_insert(node: ast.Insert, storage: Storage, params: Params) -> Plan:
    table = _writable_table(storage, node.table, "insert into")
    if node.columns is None:
        indexes = list(range(len(table.columns)))
    else:
        indexes = [_column_index(table, name, position) for name, position in node.columns]
    analyzer = Analyzer(Scope(), params)  # VALUES cannot name the table's columns
    compiled_rows = []
    for row in node.rows:
        if len(row) > len(indexes):
            raise SqlError("42601", "INSERT has more expressions than target columns", position=_position(row[len(indexes)]))
        if len(row) < len(indexes) and node.columns is not None:
            raise SqlError("42601", "INSERT has more target columns than expressions",
                           position=node.columns[len(row)][1])
        compiled_rows.append([(indexes[i], _assign(analyzer, table, table.columns[indexes[i]], expr))
                              for i, expr in enumerate(row)])
    columns, project = _returning(node.returning, table, None, params)

    def run(ex: Execution) -> tuple[list[Values], str]:
        require_writable(ex, "INSERT")
        ctx = ex.context()
        new_rows = []
        for compiled in compiled_rows:
            values: list[Any] = [None] * len(table.columns)
            for index, value in compiled:
                values[index] = value.fn(ctx)
            check_row(table, tuple(values))
            new_rows.append(tuple(values))
        if table.primary_key:
            check_unique(table, [v for _, v in _existing(ex, table)] + new_rows)
        ex.storage.insert(table.name, [encode_row(table, v) for v in new_rows])
        return project(ex, new_rows), f"INSERT 0 {len(new_rows)}"

    return Plan(columns, run)


def _position(expr: ast.Expr) -> int:
    return getattr(expr, "position", 0)


def _matching(ex: Execution, table: TableDef, where: Compiled | None) -> tuple[list[tuple[int, Values]], list[tuple[int, Values]]]:
    """All rows of the table, and those WHERE selects."""
    rows = _existing(ex, table)
    if where is None:
        return rows, rows
    ctx = ex.context()
    chosen = []
    for row_id, values in rows:
        ctx.row = values
        if where.fn(ctx) is True:
            chosen.append((row_id, values))
    return rows, chosen


def plan_update(node: ast.Update, storage: Storage, params: Params) -> Plan:
    table = _writable_table(storage, node.table, "update")
    analyzer = Analyzer(table_scope(table, node.table.alias), params)
    assignments = []
    for name, expr, position in node.assignments:
        index = _column_index(table, name, position)
        assignments.append((index, _assign(analyzer, table, table.columns[index], expr)))
    where = analyzer.condition(node.where, "WHERE") if node.where is not None else None
    columns, project = _returning(node.returning, table, node.table.alias, params)

    def run(ex: Execution) -> tuple[list[Values], str]:
        require_writable(ex, "UPDATE")
        everything, chosen = _matching(ex, table, where)
        ctx = ex.context()
        changes: dict[int, Values] = {}
        for row_id, values in chosen:
            ctx.row = values
            new = list(values)
            for index, value in assignments:
                new[index] = value.fn(ctx)
            check_row(table, tuple(new))
            changes[row_id] = tuple(new)
        check_unique(table, [changes.get(row_id, values) for row_id, values in everything])
        ex.storage.update(table.name, {row_id: encode_row(table, v) for row_id, v in changes.items()})
        return project(ex, list(changes.values())), f"UPDATE {len(changes)}"

    return Plan(columns, run)


def plan_delete(node: ast.Delete, storage: Storage, params: Params) -> Plan:
    table = _writable_table(storage, node.table, "delete from")
    analyzer = Analyzer(table_scope(table, node.table.alias), params)
    where = analyzer.condition(node.where, "WHERE") if node.where is not None else None
    columns, project = _returning(node.returning, table, node.table.alias, params)

    def run(ex: Execution) -> tuple[list[Values], str]:
        require_writable(ex, "DELETE")
        _, chosen = _matching(ex, table, where)
        ex.storage.delete(table.name, [row_id for row_id, _ in chosen])
        return project(ex, [values for _, values in chosen]), f"DELETE {len(chosen)}"

    return Plan(columns, run)

