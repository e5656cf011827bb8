"""SELECT: one table (or pg_stat_activity, or none), WHERE, aggregates without GROUP BY,
ORDER BY, LIMIT/OFFSET, DISTINCT; and the RETURNING lists of the writing statements."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pgtop.sql import ast
from pgtop.sql.analyzer import Analyzer, has_aggregates
from pgtop.sql.compiled import Compiled, Params, Scope, coerce, output
from pgtop.sql.environment import Storage
from pgtop.sql.errors import SqlError
from pgtop.sql.plans import (
    Execution,
    OutputColumn,
    Plan,
    Source,
    Values,
    empty_source,
    source_for,
)
from pgtop.sql.types import INT8


def compile_targets(targets: Sequence[ast.Target], analyzer: Analyzer) -> list[tuple[str, Compiled]]:
    """The output columns: `*` expanded, each with its name (alias, or FigureColname's)."""
    result: list[tuple[str, Compiled]] = []
    for target in targets:
        expr = target.expr
        if isinstance(expr, ast.Star):
            scope = analyzer.scope
            if not scope.columns and scope.table is None:
                raise SqlError("42601", "SELECT * with no tables specified is not valid", position=expr.position)
            if expr.qualifier is not None and expr.qualifier != scope.reference_name:
                raise SqlError("42P01", f'missing FROM-clause entry for table "{expr.qualifier}"',
                               position=expr.position)
            for column in scope.columns:
                result.append((column.name, analyzer.output(ast.ColumnRef((column.name,), expr.position))))
            continue
        compiled = analyzer.output(expr)
        result.append((target.alias or compiled.label, compiled))
    return result


@dataclass(slots=True)
class SortKey:
    fn: Callable[[Any, Values], Any]  # (context, output row) -> value
    descending: bool
    nulls_first: bool


def _compare(keys: list[SortKey], a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
    for key, x, y in zip(keys, a, b):
        if x == y or (x is None and y is None):
            continue
        if x is None or y is None:
            return -1 if (x is None) == key.nulls_first else 1
        result = -1 if x < y else 1
        return -result if key.descending else result
    return 0


class SelectPlanner:
    def __init__(self, node: ast.Select, storage: Storage, params: Params) -> None:
        self.node = node
        table = node.table
        self.source: Source = source_for(storage, table.name, table.alias, table.position) if table else empty_source()
        self.params = params
        self.analyzer = Analyzer(self.source.scope, params)

    def plan(self) -> Plan:
        node, analyzer = self.node, self.analyzer
        where = analyzer.condition(node.where, "WHERE") if node.where is not None else None
        analyzer.grouped = has_aggregates(node.targets) or has_aggregates(tuple(i.expr for i in node.order_by))
        targets = compile_targets(node.targets, analyzer)
        keys = [self._sort_key(item, targets) for item in node.order_by]
        limit = self._count(node.limit, "LIMIT")
        offset = self._count(node.offset, "OFFSET")
        columns = tuple(OutputColumn(name, c.type, c.typmod) for name, c in targets)
        target_fns = [c.fn for _, c in targets]
        aggregates = list(analyzer.aggregates)
        grouped, distinct = analyzer.grouped, node.distinct
        source = self.source

        def run(ex: Execution) -> tuple[list[Values], str]:
            ctx = ex.context()
            rows = []
            for _, values in source.rows(ex):
                ctx.row = values
                if where is None or where.fn(ctx) is True:
                    rows.append(values)
            if grouped:
                ctx.row, ctx.aggregates = None, _aggregate(aggregates, rows, ex)
                rows = [()]
            result = []
            for values in rows:
                ctx.row = values
                out = tuple(f(ctx) for f in target_fns)
                result.append((out, tuple(k.fn(ctx, out) for k in keys)))
            if keys:
                result.sort(key=functools.cmp_to_key(lambda a, b: _compare(keys, a[1], b[1])))
            outputs = [out for out, _ in result]
            if distinct:
                outputs = list(dict.fromkeys(outputs))
            start = _bound(offset, ex, "OFFSET") or 0
            count = _bound(limit, ex, "LIMIT")
            outputs = outputs[start:] if count is None else outputs[start : start + count]
            return outputs, f"SELECT {len(outputs)}"

        return Plan(columns, run)

    def _sort_key(self, item: ast.OrderItem, targets: list[tuple[str, Compiled]]) -> SortKey:
        nulls_first = item.descending if item.nulls_first is None else item.nulls_first
        expr = item.expr
        if isinstance(expr, ast.Const) and isinstance(expr.value, int) and not isinstance(expr.value, bool):
            if not 1 <= expr.value <= len(targets):
                raise SqlError("42P10", f"ORDER BY position {expr.value} is not in select list",
                               position=expr.position)
            index = expr.value - 1
            return SortKey(lambda ctx, out: out[index], item.descending, nulls_first)
        if isinstance(expr, ast.ColumnRef) and len(expr.names) == 1:
            matches = [i for i, (name, _) in enumerate(targets) if name == expr.names[0]]
            if matches:
                index = matches[0]
                return SortKey(lambda ctx, out: out[index], item.descending, nulls_first)
        compiled = output(self.analyzer.compile(expr), self.params)
        fn = compiled.fn
        return SortKey(lambda ctx, out: fn(ctx), item.descending, nulls_first)

    def _count(self, node: ast.Expr | None, clause: str) -> Compiled | None:
        if node is None:
            return None
        analyzer = Analyzer(Scope(), self.params)
        compiled = analyzer.compile_in(node, clause)  # no scope: it cannot name a column
        return coerce(compiled, INT8, self.params, how="assignment")


def _bound(compiled: Compiled | None, ex: Execution, clause: str) -> int | None:
    if compiled is None:
        return None
    value = compiled.fn(ex.context())
    if value is not None and value < 0:
        code = "2201W" if clause == "LIMIT" else "2201X"
        raise SqlError(code, f"{clause} must not be negative")
    return value


def _aggregate(aggregates: list[Any], rows: list[Values], ex: Execution) -> list[Any]:
    ctx = ex.context()
    results = []
    for call in aggregates:
        if call.argument is None:
            values = rows
        else:
            values = []
            for row in rows:
                ctx.row = row
                value = call.argument.fn(ctx)
                if value is not None:
                    values.append(value)
        argument_type = call.argument.type if call.argument else None
        results.append(call.aggregate.compute(argument_type, values))
    return results


def plan_select(node: ast.Select, storage: Storage, params: Params) -> Plan:
    return SelectPlanner(node, storage, params).plan()


def plan_returning(targets: Sequence[ast.Target], scope: Scope, params: Params) -> tuple[
        tuple[OutputColumn, ...], Callable[[Execution, list[Values]], list[Values]]]:
    """RETURNING: output columns, and a function from the written rows to the result rows."""
    analyzer = Analyzer(scope, params)
    analyzer.aggregates_allowed_in = "RETURNING"
    compiled = compile_targets(targets, analyzer)
    columns = tuple(OutputColumn(name, c.type, c.typmod) for name, c in compiled)
    fns = [c.fn for _, c in compiled]

    def project(ex: Execution, rows: list[Values]) -> list[Values]:
        ctx = ex.context()
        result = []
        for row in rows:
            ctx.row = row
            result.append(tuple(f(ctx) for f in fns))
        return result

    return columns, project
