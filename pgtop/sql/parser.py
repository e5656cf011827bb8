"""The statement grammar: the statements backends understand, and a clear 0A000 for the
PostgreSQL statements they do not."""

from __future__ import annotations

from dataclasses import dataclass

from pgtop.sql import ast
from pgtop.sql.errors import not_supported
from pgtop.sql.lexer import tokenize
from pgtop.sql.table_statements import JOIN_WORDS, TableStatementParser

# PostgreSQL statements pgtop recognises but does not run.
UNSUPPORTED = frozenset("""
    alter analyse analyze call checkpoint close cluster comment copy declare discard
    do execute explain fetch grant import listen load lock merge move notify prepare reassign
    refresh reindex release revoke savepoint security truncate unlisten vacuum values with
""".split())


@dataclass(frozen=True, slots=True)
class RawStatement:
    """One statement of a query string: its tree and where its text starts and ends."""

    tree: ast.Statement
    start: int  # 0-based offsets into the query string
    end: int


def parse_script(query: str) -> list[RawStatement]:
    """Every statement of `query`; [] when it holds none. Raises SqlError for the first
    error, before anything runs (PostgreSQL parses the whole string first)."""
    parser = StatementParser(tokenize(query))
    statements = []
    while True:
        while parser.accept_punct(";"):
            pass
        first = parser.peek()
        if first.kind == "eof":
            return statements
        tree = parser.statement()
        last = parser.tokens[parser.index - 1]
        if not (parser.at_punct(";") or parser.peek().kind == "eof"):
            raise parser.error()
        statements.append(RawStatement(tree, first.position - 1, last.position - 1 + len(last.text)))


class StatementParser(TableStatementParser):
    def statement(self) -> ast.Statement:
        token = self.peek()
        if token.kind != "ident":
            raise self.error()
        handler = {
            "select": self._select, "table": self._table_shorthand, "show": self._show,
            "set": self._set, "reset": self._reset, "begin": self._begin, "start": self._begin,
            "commit": self._end, "end": self._end, "rollback": self._end, "abort": self._end,
            "create": self._create, "drop": self._drop, "insert": self._insert,
            "update": self._update, "delete": self._delete, "deallocate": self._deallocate,
        }.get(token.value)
        if handler is not None:
            return handler()
        if token.value in UNSUPPORTED:
            raise not_supported(token.value.upper(), token.position)
        raise self.error()

    # -- SELECT -----------------------------------------------------------------------------

    def _select(self) -> ast.Select:
        self.advance()
        distinct = self.accept_word("distinct") is not None
        if distinct and self.at_word("on"):
            raise not_supported("SELECT DISTINCT ON", self.peek().position)
        self.accept_word("all")
        targets = self._targets() if not self._at_clause_end() else ()
        table = None
        if self.accept_word("from"):
            table = self._table_ref()
            if self.at_punct(",") or self.at_word(*JOIN_WORDS):
                raise not_supported("JOIN", self.peek().position)
        where = self.expression() if self.accept_word("where") else None
        for clause in ("group", "having", "window", "union", "intersect", "except"):
            if self.at_word(clause):
                raise not_supported("GROUP BY" if clause == "group" else clause.upper(), self.peek().position)
        order_by = self._order_by() if self.accept_word("order") else ()
        limit = offset = None
        while self.at_word("limit", "offset"):
            if self.advance().value == "limit":
                limit = None if self.accept_word("all") else self.expression()
            else:
                offset = self.expression()
                self.accept_word("row", "rows")
        if self.at_word("for", "fetch"):
            raise not_supported(f"SELECT ... {self.peek().value.upper()}", self.peek().position)
        return ast.Select(tuple(targets), table, where, order_by, limit, offset, distinct)

    def _at_clause_end(self) -> bool:
        token = self.peek()
        return token.kind == "eof" or (token.kind == "punct" and token.value == ";") or token.is_word(
            "from", "where", "order", "limit", "offset", "group", "having", "union"
        )

    def _order_by(self) -> tuple[ast.OrderItem, ...]:
        self.expect_word("by")
        items = []
        while True:
            expr = self.expression()
            direction = self.accept_word("asc", "desc")
            descending = direction is not None and direction.value == "desc"
            nulls_first = None
            if self.accept_word("nulls"):
                nulls_first = self.expect_word("first", "last").value == "first"
            items.append(ast.OrderItem(expr, descending, nulls_first))
            if not self.accept_punct(","):
                return tuple(items)

    def _table_shorthand(self) -> ast.Select:
        """TABLE name: SELECT * FROM name."""
        start = self.advance()
        name, position = self._qualified_name()
        table = ast.TableRef(name, None, position)
        return ast.Select((ast.Target(ast.Star(None, start.position), None),), table, None, (), None, None, False)

    # -- settings ---------------------------------------------------------------------------

    def _parameter_name(self) -> str:
        name = self.identifier(allow_reserved=True)[0]
        while self.accept_punct("."):
            name += "." + self.identifier(allow_reserved=True)[0]
        return name

    def _show(self) -> ast.Show:
        self.advance()
        if self.accept_word("all"):
            return ast.Show(None)
        if self.at_word("time") and self.peek(1).is_word("zone"):
            self.advance(), self.advance()
            return ast.Show("timezone")
        if self.at_word("transaction") and self.peek(1).is_word("isolation"):
            self.advance(), self.advance()
            self.expect_word("level")
            return ast.Show("transaction_isolation")
        return ast.Show(self._parameter_name())

    def _set(self) -> ast.SetParameter:
        self.advance()
        local = False
        if self.at_word("session", "local") and not self.peek(1).is_word("to") and not (
            self.peek(1).kind == "op" and self.peek(1).value == "="
        ):
            local = self.advance().value == "local"
        if self.at_word("transaction") or (self.at_word("session") and self.peek(1).is_word("characteristics")):
            raise not_supported("SET TRANSACTION", self.peek().position)
        if self.at_word("time") and self.peek(1).is_word("zone"):
            self.advance(), self.advance()
            if self.accept_word("local", "default"):
                return ast.SetParameter("timezone", None, local)
            return ast.SetParameter("timezone", self._set_value(), local)
        name = self._parameter_name()
        if not (self.accept_word("to") or (self.at_op("=") and self.advance())):
            raise self.error()
        if self.accept_word("default"):
            return ast.SetParameter(name, None, local)
        values = [self._set_value()]
        while self.accept_punct(","):
            values.append(self._set_value())
        return ast.SetParameter(name, ", ".join(values), local)

    def _set_value(self) -> str:
        token = self.peek()
        sign = ""
        if token.kind == "op" and token.value in ("-", "+"):
            sign = self.advance().value.replace("+", "")
            token = self.peek()
        if token.kind in ("string", "number", "qident") or (token.kind == "ident" and not sign):
            self.advance()
            return sign + token.value
        raise self.error()

    def _reset(self) -> ast.Reset:
        self.advance()
        if self.accept_word("all"):
            return ast.Reset(None)
        return ast.Reset(self._parameter_name())

    # -- transactions -----------------------------------------------------------------------

    def _begin(self) -> ast.TransactionStmt:
        first = self.advance()
        if first.value == "start":
            self.expect_word("transaction")
            tag = "START TRANSACTION"
        else:
            self.accept_word("work", "transaction")
            tag = "BEGIN"
        self._transaction_modes()
        return ast.TransactionStmt("BEGIN", tag)

    def _transaction_modes(self) -> None:
        """Isolation levels are accepted (pgtop has one version of every row, so they all
        behave alike); READ ONLY is refused rather than ignored."""
        while not self._at_statement_end():
            if self.accept_word("isolation"):
                self.expect_word("level")
                if self.accept_word("read"):
                    self.expect_word("committed", "uncommitted")
                elif self.accept_word("repeatable"):
                    self.expect_word("read")
                else:
                    self.expect_word("serializable")
            elif self.accept_word("read"):
                if self.at_word("only"):
                    raise not_supported("READ ONLY", self.peek().position)
                self.expect_word("write")
            elif self.accept_word("not"):
                self.expect_word("deferrable")
            elif not self.accept_word("deferrable"):
                raise self.error()
            self.accept_punct(",")

    def _at_statement_end(self) -> bool:
        return self.peek().kind == "eof" or self.at_punct(";")

    def _end(self) -> ast.TransactionStmt:
        first = self.advance()
        if first.value == "rollback" and self.at_word("to"):
            raise not_supported("ROLLBACK TO SAVEPOINT", self.peek().position)
        self.accept_word("work", "transaction")
        if self.at_word("and"):
            raise not_supported("AND CHAIN", self.peek().position)
        kind = "COMMIT" if first.value in ("commit", "end") else "ROLLBACK"
        return ast.TransactionStmt(kind, kind)

    def _deallocate(self) -> ast.DeallocateStmt:
        self.advance()
        self.accept_word("prepare")
        if self.accept_word("all"):
            return ast.DeallocateStmt(None)
        return ast.DeallocateStmt(self.identifier()[0])
