"""The expression grammar (gram.y's a_expr, cut down), precedence as PostgreSQL's:

    OR < AND < NOT < IS, ISNULL, NOTNULL < comparison (non-associative)
       < BETWEEN, IN, LIKE, ILIKE < other operators (||) < + - < * / % < ^ < unary + - < ::
"""

from __future__ import annotations

from decimal import Decimal

from pgtop.sql import ast
from pgtop.sql.errors import SqlError, not_supported, syntax_error
from pgtop.sql.lexer import Token
from pgtop.sql.numeric import check_numeric
from pgtop.sql.types import (
    BOOL,
    INT4,
    INT8,
    NUMERIC,
    TYPE_NAMES,
    UNKNOWN,
    numeric_typmod,
    varchar_typmod,
)

# Words that cannot be a column, table or bare alias (a subset of gram.y's reserved keywords).
RESERVED = frozenset("""
    all analyse analyze and any array as asc asymmetric both case cast check collate column
    constraint create current_catalog current_date current_role current_time current_timestamp
    current_user default deferrable desc distinct do else end except false fetch for foreign
    from grant group having in initially intersect into lateral leading limit localtime
    localtimestamp not null offset on only or order placing primary references returning select
    session_user some symmetric table then to trailing true union unique user using variadic
    when where window with
""".split())
SQL_VALUES = frozenset(
    ["current_timestamp", "current_user", "session_user", "user", "current_catalog", "current_schema"]
)
COMPARISON = frozenset(["=", "<", ">", "<=", ">=", "<>"])
PREC_OR, PREC_AND, PREC_NOT, PREC_IS, PREC_CMP, PREC_LIKE = 1, 2, 3, 4, 5, 6
PREC_OTHER, PREC_ADD, PREC_MUL, PREC_EXP, PREC_UNARY, PREC_CAST = 7, 8, 9, 10, 11, 12
UNSUPPORTED_TYPES = frozenset(
    ["date", "time", "timestamp", "interval", "json", "jsonb", "uuid", "bytea", "char", "bpchar",
     "character", "oid", "regclass", "xml", "money", "bit"]
)


def number_const(text: str, position: int, negate: bool = False) -> ast.Const:
    """An integer literal is int4 if it fits, else int8, else numeric; any other is numeric."""
    if text.isascii() and text.isdigit():
        value = -int(text) if negate else int(text)
        for typ, limit in ((INT4, 2**31), (INT8, 2**63)):
            if -limit <= value < limit:
                return ast.Const(value, typ, position)
        return ast.Const(Decimal(value), NUMERIC, position)
    decimal = check_numeric(Decimal(text))
    return ast.Const(-decimal if negate else decimal, NUMERIC, position)


class TokenStream:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        if token.kind != "eof":
            self.index += 1
        return token

    def error(self, token: Token | None = None) -> SqlError:
        token = token or self.peek()
        return syntax_error(None if token.kind == "eof" else token.text, token.position)

    def at_word(self, *words: str) -> bool:
        return self.peek().is_word(*words)

    def accept_word(self, *words: str) -> Token | None:
        return self.advance() if self.at_word(*words) else None

    def expect_word(self, *words: str) -> Token:
        if not self.at_word(*words):
            raise self.error()
        return self.advance()

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind == "punct" and token.value == char

    def accept_punct(self, char: str) -> bool:
        if self.at_punct(char):
            self.advance()
            return True
        return False

    def expect_punct(self, char: str) -> Token:
        if not self.at_punct(char):
            raise self.error()
        return self.advance()

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.value in ops

    def identifier(self, allow_reserved: bool = False) -> tuple[str, int]:
        """A name: a quoted identifier, or a word that is not reserved."""
        token = self.peek()
        if token.kind == "qident" or (token.kind == "ident" and (allow_reserved or token.value not in RESERVED)):
            self.advance()
            return token.value, token.position
        raise self.error()

    def at_identifier(self) -> bool:
        token = self.peek()
        return token.kind == "qident" or (token.kind == "ident" and token.value not in RESERVED)


class ExpressionParser(TokenStream):
    def expression(self, min_prec: int = 0) -> ast.Expr:
        left = self._prefix()
        previous_cmp = False
        while True:
            token = self.peek()
            prec = self._infix_precedence(token)
            if prec is None or prec < min_prec:
                return left
            if prec == PREC_CMP and previous_cmp:
                raise self.error()  # comparisons do not chain: 1 < 2 < 3
            previous_cmp = prec in (PREC_CMP, PREC_IS)
            left = self._infix(left, prec)

    def _infix_precedence(self, token: Token) -> int | None:
        if token.kind == "punct":
            return PREC_CAST if token.value == "::" else None
        if token.kind == "op":
            if token.value in COMPARISON:
                return PREC_CMP
            return {"+": PREC_ADD, "-": PREC_ADD, "*": PREC_MUL, "/": PREC_MUL, "%": PREC_MUL,
                    "^": PREC_EXP}.get(token.value, PREC_OTHER)
        if token.kind != "ident":
            return None
        if token.value == "not" and self.peek(1).is_word("between", "in", "like", "ilike"):
            return PREC_LIKE
        return {"or": PREC_OR, "and": PREC_AND, "is": PREC_IS, "isnull": PREC_IS,
                "notnull": PREC_IS, "between": PREC_LIKE, "in": PREC_LIKE, "like": PREC_LIKE,
                "ilike": PREC_LIKE}.get(token.value)

    def _infix(self, left: ast.Expr, prec: int) -> ast.Expr:
        token = self.advance()
        if token.kind == "punct":  # ::
            return ast.Cast(left, self.type_name(), token.position)
        if token.kind == "op":
            return ast.BinaryOp(token.value, left, self.expression(prec + 1), token.position)
        word = token.value
        if word in ("or", "and"):
            return ast.BoolOp(word.upper(), left, self.expression(prec + 1), token.position)
        if word in ("isnull", "notnull"):
            return ast.IsTest(left, "null", word == "notnull", token.position)
        if word == "is":
            return self._is_test(left, token)
        negated = word == "not"
        if negated:
            token = self.advance()
        if token.value == "between":
            low = self.expression(PREC_OTHER)
            self.expect_word("and")
            return ast.Between(left, low, self.expression(PREC_OTHER), negated, token.position)
        if token.value == "in":
            self.expect_punct("(")
            items = self._expression_list()
            self.expect_punct(")")
            return ast.InList(left, items, negated, token.position)
        pattern = self.expression(PREC_OTHER)
        if self.at_word("escape"):
            raise not_supported("LIKE ... ESCAPE", self.peek().position)
        return ast.Like(left, pattern, negated, token.value == "ilike", token.position)

    def _is_test(self, left: ast.Expr, token: Token) -> ast.Expr:
        negated = self.accept_word("not") is not None
        test = self.peek()
        if test.is_word("null", "true", "false", "unknown"):
            self.advance()
            return ast.IsTest(left, test.value, negated, token.position)
        if test.is_word("distinct"):
            raise not_supported("IS DISTINCT FROM", test.position)
        raise self.error()

    def _expression_list(self) -> tuple[ast.Expr, ...]:
        items = [self.expression()]
        while self.accept_punct(","):
            items.append(self.expression())
        return tuple(items)

    def _prefix(self) -> ast.Expr:
        token = self.peek()
        if token.kind == "number":
            self.advance()
            return number_const(token.value, token.position)
        if token.kind == "string":
            self.advance()
            return ast.Const(token.value, UNKNOWN, token.position)
        if token.kind == "param":
            self.advance()
            return ast.Param(int(token.value), token.position)
        if token.kind == "op" and token.value in ("-", "+"):
            return self._unary(self.advance())
        if token.kind == "punct" and token.value == "(":
            self.advance()
            inner = self.expression()
            self.expect_punct(")")
            return inner
        if token.kind == "qident":
            return self._name()
        if token.kind == "ident":
            return self._word(token)
        raise self.error()

    def _unary(self, token: Token) -> ast.Expr:
        following = self.peek(1)
        if self.peek().kind == "number" and not (following.kind == "punct" and following.value == "::"):
            literal = self.advance()  # gram.y's doNegate folds "-5" into one constant
            return number_const(literal.value, token.position, negate=token.value == "-")
        return ast.UnaryOp(token.value, self.expression(PREC_UNARY), token.position)

    def _word(self, token: Token) -> ast.Expr:
        word = token.value
        if word in ("true", "false"):
            self.advance()
            return ast.Const(word == "true", BOOL, token.position)
        if word == "null":
            self.advance()
            return ast.Const(None, UNKNOWN, token.position)
        if word == "not":
            self.advance()
            return ast.BoolOp("NOT", self.expression(PREC_NOT + 1), None, token.position)
        if word == "case":
            return self._case()
        if word == "cast":
            self.advance()
            self.expect_punct("(")
            operand = self.expression()
            self.expect_word("as")
            type_name = self.type_name()
            self.expect_punct(")")
            return ast.Cast(operand, type_name, token.position)
        if word in SQL_VALUES:
            self.advance()
            if word == "current_schema" and self.accept_punct("("):
                self.expect_punct(")")
            return ast.SqlValue(word, token.position)
        if word in TYPE_NAMES and self.peek(1).kind == "string":
            type_name = self.type_name()  # int '5', timestamptz '2020-01-01'
            literal = self.advance()
            return ast.Cast(ast.Const(literal.value, UNKNOWN, literal.position), type_name, token.position)
        if word in RESERVED:
            raise self.error()
        return self._name()

    def _name(self) -> ast.Expr:
        name, position = self.identifier()
        if self.accept_punct("("):
            return self._call(name, position)
        names = [name]
        while self.at_punct("."):
            self.advance()
            if self.peek().kind == "op" and self.peek().value == "*":
                self.advance()
                return ast.Star(".".join(names), position)
            names.append(self.identifier(allow_reserved=True)[0])
        return ast.ColumnRef(tuple(names), position)

    def _call(self, name: str, position: int) -> ast.Expr:
        if self.at_op("*"):
            self.advance()
            self.expect_punct(")")
            return ast.FuncCall(name, (), True, position)
        if self.at_word("distinct", "all"):
            raise not_supported(f"{self.peek().value.upper()} in a function call", self.peek().position)
        args: tuple[ast.Expr, ...] = ()
        if not self.at_punct(")"):
            args = self._expression_list()
        self.expect_punct(")")
        return ast.FuncCall(name, args, False, position)

    def _case(self) -> ast.Expr:
        start = self.advance()
        operand = None if self.at_word("when") else self.expression()
        whens = []
        while self.accept_word("when"):
            condition = self.expression()
            self.expect_word("then")
            whens.append((condition, self.expression()))
        if not whens:
            raise self.error()
        default = self.expression() if self.accept_word("else") else None
        self.expect_word("end")
        return ast.Case(operand, tuple(whens), default, start.position)

    # -- type names -------------------------------------------------------------------------

    def type_name(self) -> ast.TypeName:
        token = self.peek()
        if token.kind not in ("ident", "qident"):
            raise self.error()
        self.advance()
        name = token.value
        if name == "pg_catalog" and self.accept_punct("."):
            return self.type_name()
        name = self._multiword_type(name)
        typmod = -1
        if name in ("varchar", "character varying", "numeric", "decimal", "float") and self.at_punct("("):
            typmod, name = self._type_modifiers(name)
        if self.at_punct("["):
            raise not_supported("an array type", self.peek().position)
        if name in UNSUPPORTED_TYPES or name.endswith(("without time zone", "time with time zone")):
            raise not_supported(f"type {name}", token.position)
        typ = TYPE_NAMES.get(name)
        if typ is None:
            raise SqlError("42704", f'type "{token.value}" does not exist', position=token.position)
        return ast.TypeName(typ, typmod, typ.name, token.position)

    def _multiword_type(self, name: str) -> str:
        if name == "double" and self.accept_word("precision"):
            return "double precision"
        if name == "character" and self.accept_word("varying"):
            return "character varying"
        if name in ("timestamp", "time"):
            if self.at_word("with", "without") and self.peek(1).is_word("time"):
                with_zone = self.advance().value == "with"
                self.advance()
                self.expect_word("zone")
                return f"{name} with time zone" if with_zone else f"{name} without time zone"
        return name

    def _type_modifiers(self, name: str) -> tuple[int, str]:
        self.expect_punct("(")
        values = [self._integer()]
        if name in ("numeric", "decimal") and self.accept_punct(","):
            values.append(self._integer())
        self.expect_punct(")")
        if name == "float":
            return -1, "float4" if values[0] <= 24 else "float8"
        if name in ("numeric", "decimal"):
            precision, scale = values[0], values[1] if len(values) > 1 else 0
            if not 1 <= precision <= 1000 or not 0 <= scale <= precision:
                raise SqlError("22023", f"NUMERIC precision {precision} must be between 1 and 1000")
            return numeric_typmod(precision, scale), name
        if values[0] < 1:
            raise SqlError("22023", "length for type varchar must be at least 1")
        return varchar_typmod(values[0]), name

    def _integer(self) -> int:
        token = self.peek()
        if token.kind != "number" or not token.value.isascii() or not token.value.isdigit():
            raise self.error()
        self.advance()
        return int(token.value)

