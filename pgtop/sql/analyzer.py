"""Parse analysis: names resolved against the statement's scope, types decided, expressions
compiled into closures (`Compiled`) that the statements run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pgtop.sql import ast
from pgtop.sql.compiled import (
    Compiled,
    Context,
    Params,
    Scope,
    coerce,
    constant,
    implicitly_coercible,
    output,
)
from pgtop.sql.errors import NO_MATCH_HINT, SqlError
from pgtop.sql.functions import (
    AGGREGATE_INPUTS,
    AGGREGATES,
    FUNCTIONS,
    Aggregate,
    Builtin,
)
from pgtop.sql.operators import (
    ARITHMETIC,
    COMPARISONS,
    arithmetic,
    boolean_argument,
    common_type,
    compare,
    concatenate,
    like,
    negate,
    no_operator,
    three_valued,
)
from pgtop.sql.types import (
    BOOL,
    NAME,
    NUMERIC_TYPES,
    TIMESTAMPTZ,
    UNKNOWN,
    SqlType,
    can_cast,
)

SQL_VALUE_TYPES = {
    "current_timestamp": TIMESTAMPTZ, "current_user": NAME, "session_user": NAME, "user": NAME,
    "current_catalog": NAME, "current_schema": NAME,
}


@dataclass(slots=True)
class AggregateCall:
    aggregate: Aggregate
    argument: Compiled | None  # None for count(*)
    result: SqlType


class Analyzer:
    """Compiles the expressions of one statement. `clause` names where aggregates would be
    misplaced ("WHERE"); `grouped` says the SELECT has aggregates, so bare columns are errors."""

    def __init__(self, scope: Scope, params: Params) -> None:
        self.scope = scope
        self.params = params
        self.aggregates: list[AggregateCall] = []
        self.aggregates_allowed_in: str | None = None  # None: aggregates allowed
        self.grouped = False
        self._in_aggregate = False

    def compile(self, node: ast.Expr) -> Compiled:
        method = getattr(self, f"_compile_{type(node).__name__}")
        return method(node)

    def compile_in(self, node: ast.Expr, clause: str | None) -> Compiled:
        """Compile where aggregates are forbidden (`clause` says where, for the message)."""
        saved, self.aggregates_allowed_in = self.aggregates_allowed_in, clause
        try:
            return self.compile(node)
        finally:
            self.aggregates_allowed_in = saved

    def output(self, node: ast.Expr) -> Compiled:
        return output(self.compile(node), self.params)

    def condition(self, node: ast.Expr, what: str) -> Compiled:
        return boolean_argument(self.compile_in(node, what), self.params, what)

    # -- leaves -------------------------------------------------------------------------------

    def _compile_Const(self, node: ast.Const) -> Compiled:
        return constant(node.value, node.type, node.position)

    def _compile_Param(self, node: ast.Param) -> Compiled:
        typ = self.params.reference(node.number, node.position)
        index = node.number - 1
        if typ is None:
            return Compiled(UNKNOWN, lambda ctx: ctx.params[index], node.position, param=node.number)
        return Compiled(typ, lambda ctx: ctx.params[index], node.position)

    def _compile_ColumnRef(self, node: ast.ColumnRef) -> Compiled:
        column = self.scope.find(node.names, node.position)
        if self.grouped and not self._in_aggregate:
            raise SqlError(
                "42803",
                f'column "{self.scope.reference_name}.{column.name}" must appear in the GROUP BY '
                "clause or be used in an aggregate function",
                position=node.position,
            )
        index = column.index
        return Compiled(column.type, lambda ctx: ctx.row[index], node.position, column.typmod,
                        label=column.name, strength=2)

    def _compile_Star(self, node: ast.Star) -> Compiled:
        raise SqlError("42601", "row expansion via \"*\" is not supported here", position=node.position)

    def _compile_SqlValue(self, node: ast.SqlValue) -> Compiled:
        name = node.name

        def value(ctx: Context) -> Any:
            session = ctx.session
            if name == "current_timestamp":
                return session.transaction_start
            if name == "current_catalog":
                return session.database
            return "public" if name == "current_schema" else session.user

        return Compiled(SQL_VALUE_TYPES[name], value, node.position, label=name, strength=2)

    # -- operators ----------------------------------------------------------------------------

    def _compile_BinaryOp(self, node: ast.BinaryOp) -> Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        if node.op in ARITHMETIC:
            return arithmetic(node.op, left, right, self.params, node.position)
        if node.op in COMPARISONS:
            return compare(node.op, left, right, self.params, node.position)
        if node.op == "||":
            return concatenate(left, right, node.position)
        raise no_operator(left.type, node.op, right.type, node.position)

    def _compile_UnaryOp(self, node: ast.UnaryOp) -> Compiled:
        operand = self.compile(node.operand)
        if node.op not in ("-", "+"):
            raise no_operator(None, node.op, operand.type, node.position)
        return negate(node.op, operand, node.position)

    def _compile_BoolOp(self, node: ast.BoolOp) -> Compiled:
        parts = [node.left] if node.right is None else [node.left, node.right]
        args = [boolean_argument(self.compile(part), self.params, node.op) for part in parts]
        fns = [a.fn for a in args]
        if node.op == "NOT":
            inner = fns[0]
            return Compiled(BOOL, lambda ctx: None if (v := inner(ctx)) is None else not v, node.position)
        op = node.op
        return Compiled(BOOL, lambda ctx: three_valued(op, [f(ctx) for f in fns]), node.position)

    def _compile_IsTest(self, node: ast.IsTest) -> Compiled:
        operand = self.compile(node.operand)
        if node.test != "null":
            operand = boolean_argument(operand, self.params, f"IS {node.test.upper()}")
        fn, test, negated = operand.fn, node.test, node.negated

        def run(ctx: Context) -> bool:
            value = fn(ctx)
            if test == "null" or test == "unknown":
                result = value is None
            else:
                result = value is (test == "true")
            return result != negated

        return Compiled(BOOL, run, node.position)

    def _compile_Between(self, node: ast.Between) -> Compiled:
        operand = self.compile(node.operand)
        low = compare(">=", operand, self.compile(node.low), self.params, node.position)
        high = compare("<=", operand, self.compile(node.high), self.params, node.position)
        fns, negated = (low.fn, high.fn), node.negated

        def run(ctx: Context) -> bool | None:
            result = three_valued("AND", [f(ctx) for f in fns])
            return None if result is None else result != negated

        return Compiled(BOOL, run, node.position)

    def _compile_InList(self, node: ast.InList) -> Compiled:
        operand = self.compile(node.operand)
        tests = [compare("=", operand, self.compile(item), self.params, node.position).fn for item in node.items]
        negated = node.negated

        def run(ctx: Context) -> bool | None:
            result = three_valued("OR", [t(ctx) for t in tests])
            return None if result is None else result != negated

        return Compiled(BOOL, run, node.position)

    def _compile_Like(self, node: ast.Like) -> Compiled:
        left, pattern = self.compile(node.operand), self.compile(node.pattern)
        return like(left, pattern, self.params, node.negated, node.case_insensitive, node.position)

    def _compile_Cast(self, node: ast.Cast) -> Compiled:
        operand = self.compile(node.operand)
        target = node.type_name
        if operand.type is not UNKNOWN and not can_cast(operand.type, target.type):
            raise SqlError("42846", f"cannot cast type {operand.type} to {target.type}", position=node.position)
        result = coerce(operand, target.type, self.params, target.typmod, how="explicit")
        if operand.strength >= 2:
            return replace(result, label=operand.label, strength=operand.strength)
        return replace(result, label=target.label, strength=1)

    def _compile_Case(self, node: ast.Case) -> Compiled:
        subject = self.compile(node.operand) if node.operand is not None else None
        conditions, results = [], []
        for when, then in node.whens:
            if subject is None:
                conditions.append(boolean_argument(self.compile(when), self.params, "CASE/WHEN"))
            else:
                conditions.append(compare("=", subject, self.compile(when), self.params, node.position))
            results.append(self.compile(then))
        default = self.compile(node.default) if node.default is not None else constant(None, UNKNOWN, node.position)
        typ = common_type(results + [default], "CASE")
        results = [coerce(r, typ, self.params) for r in results]
        default = coerce(default, typ, self.params)
        pairs = [(c.fn, r.fn) for c, r in zip(conditions, results)]
        otherwise = default.fn

        def run(ctx: Context) -> Any:
            for condition, result in pairs:
                if condition(ctx):
                    return result(ctx)
            return otherwise(ctx)

        return Compiled(typ, run, node.position, label="case", strength=1)

    # -- function calls -----------------------------------------------------------------------

    def _compile_FuncCall(self, node: ast.FuncCall) -> Compiled:
        if node.name in AGGREGATES:
            return self._aggregate(node)
        if node.star:
            raise SqlError("42809", f"{node.name}(*) specified, but {node.name} is not an aggregate function",
                           position=node.position)
        args = [self.compile(arg) for arg in node.args]
        if node.name in ("coalesce", "nullif", "greatest", "least"):
            return self._special(node, args)
        builtin = self._choose(node, args)
        coerced = [coerce(arg, typ, self.params) for arg, typ in zip(args, builtin.args)]
        fns, impl, strict = [a.fn for a in coerced], builtin.impl, builtin.strict

        def run(ctx: Context) -> Any:
            values = [f(ctx) for f in fns]
            if strict and None in values:
                return None
            return impl(ctx.session, *values)

        return Compiled(builtin.result, run, node.position, label=node.name, strength=2)

    def _choose(self, node: ast.FuncCall, args: list[Compiled]) -> Builtin:
        best, best_score = None, -1
        for candidate in FUNCTIONS.get(node.name, []):
            if len(candidate.args) != len(args):
                continue
            if all(implicitly_coercible(a.type, t) for a, t in zip(args, candidate.args)):
                score = sum(a.type == t for a, t in zip(args, candidate.args))
                if score > best_score:
                    best, best_score = candidate, score
        if best is None:
            signature = ", ".join(str(a.type) for a in args)
            raise SqlError("42883", f"function {node.name}({signature}) does not exist", hint=NO_MATCH_HINT,
                           position=node.position)
        return best

    def _special(self, node: ast.FuncCall, args: list[Compiled]) -> Compiled:
        if not args or (node.name == "nullif" and len(args) != 2):
            raise SqlError("42883", f"function {node.name}() does not exist", hint=NO_MATCH_HINT,
                           position=node.position)
        typ = common_type(args, node.name.upper())
        fns = [coerce(a, typ, self.params).fn for a in args]
        name = node.name

        def run(ctx: Context) -> Any:
            if name == "coalesce":
                return next((v for f in fns if (v := f(ctx)) is not None), None)
            if name == "nullif":
                first, second = fns[0](ctx), fns[1](ctx)
                return None if first is not None and first == second else first
            values = [v for f in fns if (v := f(ctx)) is not None]
            if not values:
                return None
            return max(values) if name == "greatest" else min(values)

        return Compiled(typ, run, node.position, label=name, strength=2)

    def _aggregate(self, node: ast.FuncCall) -> Compiled:
        if self.aggregates_allowed_in is not None:
            raise SqlError("42803", f"aggregate functions are not allowed in {self.aggregates_allowed_in}",
                           position=node.position)
        if self._in_aggregate:
            raise SqlError("42803", "aggregate function calls cannot be nested", position=node.position)
        aggregate = AGGREGATES[node.name]
        argument = None
        if not node.star:
            if len(node.args) != 1:
                raise SqlError("42883", f"function {node.name}() does not exist", hint=NO_MATCH_HINT,
                               position=node.position)
            self._in_aggregate = True
            try:
                argument = output(self.compile(node.args[0]), self.params)
            finally:
                self._in_aggregate = False
            wanted = AGGREGATE_INPUTS.get(node.name)
            if wanted and argument.type not in NUMERIC_TYPES:
                raise SqlError("42883", f"function {node.name}({argument.type}) does not exist",
                               hint=NO_MATCH_HINT, position=node.position)
        elif node.name != "count":
            raise SqlError("42809", f"{node.name}(*) specified, but {node.name} is not an aggregate function",
                           position=node.position)
        result = aggregate.result(argument.type if argument else None)
        self.aggregates.append(AggregateCall(aggregate, argument, result))
        index = len(self.aggregates) - 1
        return Compiled(result, lambda ctx: ctx.aggregates[index], node.position, label=node.name, strength=2)


def has_aggregates(node: Any) -> bool:
    """Does an expression tree call an aggregate (so its SELECT is grouped)?"""
    if isinstance(node, ast.FuncCall) and node.name in AGGREGATES:
        return True
    if isinstance(node, tuple):
        return any(has_aggregates(item) for item in node)
    if hasattr(node, "__dataclass_fields__"):
        return any(has_aggregates(getattr(node, f)) for f in node.__dataclass_fields__)
    return False
