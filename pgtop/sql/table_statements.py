"""The grammar of the statements about tables: CREATE TABLE, DROP TABLE, INSERT, UPDATE,
DELETE, and the pieces SELECT shares with them (target lists, table names)."""

from __future__ import annotations

from pgtop.sql import ast
from pgtop.sql.errors import not_supported
from pgtop.sql.expressions import ExpressionParser
from pgtop.sql.types import UNKNOWN

JOIN_WORDS = ("join", "inner", "left", "right", "full", "cross", "natural")


class TableStatementParser(ExpressionParser):
    def _targets(self) -> list[ast.Target]:
        targets = [self._target()]
        while self.accept_punct(","):
            targets.append(self._target())
        return targets

    def _target(self) -> ast.Target:
        if self.at_op("*"):
            return ast.Target(ast.Star(None, self.advance().position), None)
        expr = self.expression()
        if self.accept_word("as"):
            return ast.Target(expr, self.identifier(allow_reserved=True)[0])
        if self.at_identifier():
            return ast.Target(expr, self.identifier()[0])
        return ast.Target(expr, None)

    def _table_ref(self) -> ast.TableRef:
        if self.at_punct("("):
            raise not_supported("a subquery in FROM", self.peek().position)
        name, position = self._qualified_name()
        alias = None
        if self.accept_word("as"):
            alias = self.identifier(allow_reserved=True)[0]
        elif self.at_identifier() and not self.at_word(*JOIN_WORDS, "set"):
            alias = self.identifier()[0]
        return ast.TableRef(name, alias, position)

    def _qualified_name(self) -> tuple[str, int]:
        name, position = self.identifier()
        if self.accept_punct("."):
            schema, name = name, self.identifier(allow_reserved=True)[0]
            if schema not in ("public", "pg_catalog"):
                raise not_supported(f'schema "{schema}"', position)
        return name, position

    def _create(self) -> ast.CreateTable:
        self.advance()
        if not self.at_word("table"):
            what = self.peek()
            if what.kind == "ident":
                raise not_supported(f"CREATE {what.value.upper()}", what.position)
            raise self.error()
        self.advance()
        if_not_exists = False
        if self.accept_word("if"):
            self.expect_word("not")
            self.expect_word("exists")
            if_not_exists = True
        name, position = self._qualified_name()
        self.expect_punct("(")
        columns: list[ast.ColumnSpec] = []
        primary_key: list[str] = []
        while True:
            if self.at_word("primary"):
                primary_key += self._table_primary_key()
            elif self.at_word("constraint", "unique", "check", "foreign"):
                raise not_supported("a table constraint other than PRIMARY KEY", self.peek().position)
            else:
                columns.append(self._column_spec())
            if not self.accept_punct(","):
                break
        self.expect_punct(")")
        columns = [
            ast.ColumnSpec(c.name, c.type_name, c.not_null or c.name in primary_key, c.primary_key or c.name in primary_key)
            for c in columns
        ]
        return ast.CreateTable(ast.TableRef(name, None, position), tuple(columns), if_not_exists)

    def _table_primary_key(self) -> list[str]:
        self.advance()
        self.expect_word("key")
        self.expect_punct("(")
        names = [self.identifier()[0]]
        while self.accept_punct(","):
            names.append(self.identifier()[0])
        self.expect_punct(")")
        return names

    def _column_spec(self) -> ast.ColumnSpec:
        name, _ = self.identifier()
        type_name = self.type_name()
        not_null = primary_key = False
        while not (self.at_punct(",") or self.at_punct(")")):
            if self.accept_word("not"):
                self.expect_word("null")
                not_null = True
            elif self.accept_word("null"):
                not_null = False
            elif self.accept_word("primary"):
                self.expect_word("key")
                not_null = primary_key = True
            elif self.at_word("default", "unique", "check", "references", "constraint", "generated", "collate"):
                raise not_supported(f"column option {self.peek().value.upper()}", self.peek().position)
            else:
                raise self.error()
        return ast.ColumnSpec(name, type_name, not_null, primary_key)

    def _drop(self) -> ast.DropTable:
        self.advance()
        if not self.at_word("table"):
            what = self.peek()
            if what.kind == "ident":
                raise not_supported(f"DROP {what.value.upper()}", what.position)
            raise self.error()
        self.advance()
        if_exists = False
        if self.accept_word("if"):
            self.expect_word("exists")
            if_exists = True
        tables = [ast.TableRef(*self._qualified_name(), None)]
        while self.accept_punct(","):
            tables.append(ast.TableRef(*self._qualified_name(), None))
        self.accept_word("cascade", "restrict")
        return ast.DropTable(tuple(tables), if_exists)

    def _insert(self) -> ast.Insert:
        self.advance()
        self.expect_word("into")
        name, position = self._qualified_name()
        columns = None
        if self.accept_punct("("):
            columns = [self.identifier()]
            while self.accept_punct(","):
                columns.append(self.identifier())
            self.expect_punct(")")
        if self.at_word("select", "default"):
            raise not_supported(f"INSERT ... {self.peek().value.upper()}", self.peek().position)
        self.expect_word("values")
        rows = [self._values_row()]
        while self.accept_punct(","):
            rows.append(self._values_row())
        if self.at_word("on"):
            raise not_supported("ON CONFLICT", self.peek().position)
        returning = self._returning()
        return ast.Insert(ast.TableRef(name, None, position), tuple(columns) if columns is not None else None,
                          tuple(rows), returning)

    def _values_row(self) -> tuple[ast.Expr, ...]:
        self.expect_punct("(")
        values: list[ast.Expr] = []
        while True:
            token = self.peek()
            if token.is_word("default"):  # no column has a default: DEFAULT is NULL
                self.advance()
                values.append(ast.Const(None, UNKNOWN, token.position))
            else:
                values.append(self.expression())
            if not self.accept_punct(","):
                break
        self.expect_punct(")")
        return tuple(values)

    def _returning(self) -> tuple[ast.Target, ...] | None:
        if not self.accept_word("returning"):
            return None
        return tuple(self._targets())

    def _update(self) -> ast.Update:
        self.advance()
        table = self._table_ref()
        self.expect_word("set")
        assignments = []
        while True:
            column, position = self.identifier()
            if not self.at_op("="):
                raise self.error()
            self.advance()
            assignments.append((column, self.expression(), position))
            if not self.accept_punct(","):
                break
        if self.at_word("from"):
            raise not_supported("UPDATE ... FROM", self.peek().position)
        where = self.expression() if self.accept_word("where") else None
        return ast.Update(table, tuple(assignments), where, self._returning())

    def _delete(self) -> ast.Delete:
        self.advance()
        self.expect_word("from")
        table = self._table_ref()
        if self.at_word("using"):
            raise not_supported("DELETE ... USING", self.peek().position)
        where = self.expression() if self.accept_word("where") else None
        return ast.Delete(table, where, self._returning())
