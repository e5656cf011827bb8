"""The SQL scanner (scan.l's rules, cut down): identifiers, keywords, literals, operators.

Positions are PostgreSQL's: 1-based character offsets into the query string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgtop.sql.errors import SqlError

IDENT_START = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
IDENT_REST = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]*")
NUMBER = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
JUNK_AFTER_NUMBER = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
PARAM = re.compile(r"\$([0-9]+)")
DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
OPERATOR_CHARS = set("+-*/<>=~!@#%^&|`?")
# An operator ending in + or - keeps it only if it also holds one of these (scan.l).
KEEPS_TRAILING_SIGN = set("~!@#%^&|`?")
PUNCTUATION = set("(),;[].:")
DIGITS = set("0123456789")

_HEX_ESCAPE = re.compile(r"x([0-9A-Fa-f]{1,2})")
_OCTAL_ESCAPE = re.compile(r"([0-7]{1,3})")


@dataclass(frozen=True, slots=True)
class Token:
    """`kind` is one of ident, qident, string, number, param, op, punct, eof. `value` is the
    lower-cased identifier, the string's content, the operator or the parameter number."""

    kind: str
    value: str
    text: str  # as written, for "syntax error at or near"
    position: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "ident" and self.value in words


def _lex_error(message: str, query: str, start: int) -> SqlError:
    return SqlError("42601", f'{message} at or near "{query[start:]}"', position=start + 1)


class Lexer:
    def __init__(self, query: str) -> None:
        self.query = query
        self.pos = 0

    def tokens(self) -> list[Token]:
        result: list[Token] = []
        while True:
            token = self._next()
            result.append(token)
            if token.kind == "eof":
                return result

    def _skip_space_and_comments(self) -> None:
        query, length = self.query, len(self.query)
        while self.pos < length:
            char = query[self.pos]
            if char.isspace():
                self.pos += 1
            elif query.startswith("--", self.pos):
                end = query.find("\n", self.pos)
                self.pos = length if end < 0 else end + 1
            elif query.startswith("/*", self.pos):
                self._skip_block_comment()
            else:
                return

    def _skip_block_comment(self) -> None:
        start, depth = self.pos, 0
        while self.pos < len(self.query):
            if self.query.startswith("/*", self.pos):
                depth += 1
                self.pos += 2
            elif self.query.startswith("*/", self.pos):
                depth -= 1
                self.pos += 2
                if depth == 0:
                    return
            else:
                self.pos += 1
        raise _lex_error("unterminated /* comment", self.query, start)

    def _next(self) -> Token:
        self._skip_space_and_comments()
        query, start = self.query, self.pos
        if start >= len(query):
            return Token("eof", "", "", start + 1)
        char = query[start]
        if char in "eE" and query.startswith("'", start + 1):
            self.pos += 1
            return self._string(start, escapes=True)
        if char == "'":
            return self._string(start, escapes=False)
        if char == '"':
            return self._quoted_identifier(start)
        if char == "$":
            return self._dollar(start)
        if char in DIGITS or (char == "." and query[start + 1 : start + 2] in DIGITS):
            return self._number(start)
        if IDENT_START.match(char):
            end = IDENT_REST.match(query, start + 1).end()  # type: ignore[union-attr]
            self.pos = end
            word = query[start:end]
            return Token("ident", _downcase(word), word, start + 1)
        if query.startswith("::", start):
            self.pos += 2
            return Token("punct", "::", "::", start + 1)
        if char in PUNCTUATION:
            self.pos += 1
            return Token("punct", char, char, start + 1)
        if char in OPERATOR_CHARS:
            return self._operator(start)
        self.pos += 1
        return Token("op", char, char, start + 1)  # stray character: the parser rejects it

    def _string(self, start: int, escapes: bool) -> Token:
        query, chars = self.query, []
        self.pos += 1  # the opening quote
        while True:
            if self.pos >= len(query):
                raise _lex_error("unterminated quoted string", query, start)
            char = query[self.pos]
            if char == "'":
                if query.startswith("'", self.pos + 1):
                    chars.append("'")
                    self.pos += 2
                    continue
                self.pos += 1
                break
            if escapes and char == "\\" and self.pos + 1 < len(query):
                self.pos += 1
                chars.append(self._escape())
                continue
            chars.append(char)
            self.pos += 1
        return Token("string", "".join(chars), query[start : self.pos], start + 1)

    def _escape(self) -> str:
        """A backslash escape in an E'' string; self.pos is just after the backslash."""
        query, char = self.query, self.query[self.pos]
        simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
        if char in simple:
            self.pos += 1
            return simple[char]
        for pattern, base in ((_HEX_ESCAPE, 16), (_OCTAL_ESCAPE, 8)):
            match = pattern.match(query, self.pos)
            if match:
                self.pos = match.end()
                return chr(int(match.group(1), base) or 0xFFFD)
        self.pos += 1
        return char

    def _quoted_identifier(self, start: int) -> Token:
        query, chars = self.query, []
        self.pos += 1
        while True:
            if self.pos >= len(query):
                raise _lex_error("unterminated quoted identifier", query, start)
            char = query[self.pos]
            if char == '"':
                if query.startswith('"', self.pos + 1):
                    chars.append('"')
                    self.pos += 2
                    continue
                self.pos += 1
                break
            chars.append(char)
            self.pos += 1
        if not chars:
            raise _lex_error("zero-length delimited identifier", query, start)
        return Token("qident", "".join(chars), query[start : self.pos], start + 1)

    def _dollar(self, start: int) -> Token:
        query = self.query
        param = PARAM.match(query, start)
        if param:
            self.pos = param.end()
            if JUNK_AFTER_NUMBER.match(query, self.pos):
                raise _lex_error("trailing junk after parameter", query, start)
            return Token("param", param.group(1), param.group(0), start + 1)
        tag = DOLLAR_TAG.match(query, start)
        if not tag:
            self.pos += 1
            return Token("op", "$", "$", start + 1)
        end = query.find(tag.group(0), tag.end())
        if end < 0:
            raise _lex_error("unterminated dollar-quoted string", query, start)
        self.pos = end + len(tag.group(0))
        return Token("string", query[tag.end() : end], query[start : self.pos], start + 1)

    def _number(self, start: int) -> Token:
        match = NUMBER.match(self.query, start)
        assert match is not None
        self.pos = match.end()
        if JUNK_AFTER_NUMBER.match(self.query, self.pos):
            end = IDENT_REST.match(self.query, self.pos).end()  # type: ignore[union-attr]
            raise SqlError(
                "42601",
                f'trailing junk after numeric literal at or near "{self.query[start:end]}"',
                position=start + 1,
            )
        return Token("number", match.group(0), match.group(0), start + 1)

    def _operator(self, start: int) -> Token:
        query, end = self.query, start
        while end < len(query) and query[end] in OPERATOR_CHARS:
            if query.startswith("--", end) or query.startswith("/*", end):
                break  # a comment starts inside the operator
            end += 1
        end = max(end, start + 1)
        text = query[start:end]
        while len(text) > 1 and text[-1] in "+-" and not (set(text) & KEEPS_TRAILING_SIGN):
            text = text[:-1]
        self.pos = start + len(text)
        return Token("op", "<>" if text == "!=" else text, text, start + 1)


def _downcase(word: str) -> str:
    """downcase_identifier: only ASCII letters fold (multi-byte characters stay)."""
    return word.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def tokenize(query: str) -> list[Token]:
    return Lexer(query).tokens()
