"""pg_hba.conf in PostgreSQL's own format: read, tokenise and parse it, with the load messages.

Loading follows PostgreSQL 15's hba.c: the whole file is tokenised first (quotes, commas,
comments, backslash continuations, @file inclusion), then each line is parsed and the first
problem of every bad line is reported with PostgreSQL's message and the CONTEXT
'line %d of configuration file "%s"'. One bad line makes the whole file bad: the caller keeps
its old rules and logs "pg_hba.conf was not reloaded" (at startup, FATAL "could not load
pg_hba.conf"). The loaded rules, and matching a connection to them, are
pgtop.common.hba_rules.

pgtop has no SSL and no GSSAPI encryption: hostssl/hostgssenc lines load with PostgreSQL's
"cannot match" warning and never match. Methods other than trust, reject, password, md5 and
scram-sha-256 are "not supported by this build". Role membership (+group, samerole) needs a
role catalogue pgtop does not have, so such lines are refused at load with a clear message.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

from pgtop.common.hba_rules import (
    Address,
    AddressKind,
    AuthToken,
    HbaIssue,
    HbaLine,
    HbaRules,
)

HBA_FILE_NAME = "pg_hba.conf"
METHODS = ("trust", "reject", "password", "md5", "scram-sha-256")
# Methods PostgreSQL knows but pgtop cannot do: "not supported by this build".
_FOREIGN_METHODS = frozenset({"ident", "peer", "gss", "sspi", "pam", "bsd", "ldap", "cert", "radius"})
_HOST_TYPES = ("host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
# Options of methods pgtop does not have, with the methods PostgreSQL names in its message.
_FOREIGN_OPTIONS = {
    "map": "ident, peer, gssapi, sspi, and cert",
    "pamservice": "pam", "pam_use_hostname": "pam",
    "krb_realm": "gssapi and sspi", "include_realm": "gssapi and sspi",
    "compat_realm": "sspi", "upn_username": "sspi",
    **{name: "ldap" for name in ("ldapurl", "ldaptls", "ldapscheme", "ldapserver", "ldapport",
       "ldapbinddn", "ldapbindpasswd", "ldapsearchattribute", "ldapsearchfilter",
       "ldapbasedn", "ldapprefix", "ldapsuffix")},
    **{name: "radius" for name in ("radiusserver", "radiusservers", "radiussecret",
       "radiussecrets", "radiusidentifier", "radiusidentifiers", "radiusport", "radiusports")},
}
_MAX_TOKEN = 10240  # MAX_TOKEN in hba.c: a token of this many bytes minus one is "too long"
_MAX_INCLUDE_DEPTH = 10


class HbaError(Exception):
    """The file cannot be used; `issues` in the order PostgreSQL logs them."""

    def __init__(self, path: str, issues: tuple[HbaIssue, ...]) -> None:
        self.path = path
        self.issues = issues
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        where = f", {issues[0].context}" if issues[0].context else ""
        super().__init__(f"{issues[0].message}{where}{more}")


# -- loading ------------------------------------------------------------------------------


def load_hba(path: str | Path) -> HbaRules:
    """load_hba(): the rules, or HbaError with every problem PostgreSQL would log."""
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        raise HbaError(name, (HbaIssue(f'could not open configuration file "{name}": {exc.strerror}'),)) from None
    return parse_hba_text(text, name)


def parse_hba_text(text: str, path: str) -> HbaRules:
    issues: list[HbaIssue] = []
    tokenized = _tokenize_file(text, path, issues, depth=0)
    lines: list[HbaLine] = []
    warnings: list[HbaIssue] = []
    bad = bool(issues)
    for number, raw, fields, error in tokenized:
        if error is not None:
            continue  # already logged while tokenising
        context = f'line {number} of configuration file "{path}"'
        try:
            line, warning = _parse_line(number, raw, fields)
        except _LineError as exc:
            issues.append(HbaIssue(exc.message, exc.hint, context))
            bad = True
            continue
        if warning is not None:
            warnings.append(HbaIssue(warning, None, context))
        lines.append(line)
    if not bad and not lines:
        issues.append(HbaIssue(f'configuration file "{path}" contains no entries'))
    if issues:
        raise HbaError(path, tuple(issues))
    return HbaRules(path, tuple(lines), tuple(warnings))


# -- tokenising (tokenize_auth_file, next_token, next_field_expand) --------------------------

_Fields = list[list[AuthToken]]


def _tokenize_file(text: str, path: str, issues: list[HbaIssue], depth: int) -> list[tuple[int, str, _Fields, str | None]]:
    """Logical lines (continuations joined) as (first line number, raw text, fields, error)."""
    physical = text.split("\n")
    if physical and physical[-1] == "":
        physical.pop()
    result = []
    index = 0
    while index < len(physical):
        number = index + 1
        buf = physical[index].rstrip("\r")
        index += 1
        while buf.endswith("\\") and index < len(physical):
            buf = buf[:-1] + physical[index].rstrip("\r")
            index += 1
        buf = buf.removesuffix("\\").split("\0", 1)[0]  # C strings end at NUL
        fields, error = _tokenize_line(buf, path, issues, depth)
        if fields or error is not None:
            result.append((number, buf, fields, error))
    return result


def _tokenize_line(line: str, path: str, issues: list[HbaIssue], depth: int) -> tuple[_Fields, str | None]:
    fields: _Fields = []
    pos = 0
    error: str | None = None
    while pos < len(line) and error is None:
        tokens: list[AuthToken] = []
        while True:
            token, pos, comma, error = _next_token(line, pos, issues)
            if token is None:
                break
            if not token.quoted and token.string.startswith("@") and len(token.string) > 1:
                error = _include_file(token.string[1:], path, tokens, issues, depth)
            else:
                tokens.append(token)
            if not comma or error is not None:
                break
        if tokens:
            fields.append(tokens)
    return fields, error


def _next_token(line: str, pos: int, issues: list[HbaIssue]) -> tuple[AuthToken | None, int, bool, str | None]:
    """next_token(): (token or None at end of line/comment, new position, ended by comma, error)."""
    blank = " \t\r"
    while pos < len(line) and (line[pos] in blank or line[pos] == ","):
        pos += 1
    buf: list[str] = []
    in_quote = was_quote = saw_quote = initial_quote = False
    while pos < len(line) and (line[pos] not in blank or in_quote):
        c = line[pos]
        if c == "#" and not in_quote:
            pos = len(line)
            break
        if len(buf) >= _MAX_TOKEN - 1:
            partial = "".join(buf)
            issues.append(HbaIssue(f'authentication file token too long, skipping: "{partial}"'))
            return None, len(line), False, "authentication file token too long"
        if c == "," and not in_quote:
            return _token(buf, saw_quote, initial_quote), pos + 1, True, None
        if c != '"' or was_quote:
            buf.append(c)
        was_quote = (not was_quote) if (in_quote and c == '"') else False
        if c == '"':
            in_quote = not in_quote
            saw_quote = True
            if not buf:
                initial_quote = True
        pos += 1
    return _token(buf, saw_quote, initial_quote), pos, False, None


def _token(buf: list[str], saw_quote: bool, initial_quote: bool) -> AuthToken | None:
    if not buf and not saw_quote:
        return None
    return AuthToken("".join(buf), initial_quote)


def _include_file(name: str, outer: str, tokens: list[AuthToken], issues: list[HbaIssue], depth: int) -> str | None:
    """tokenize_inc_file(): every token of @file, relative to the including file."""
    full = Path(name) if Path(name).is_absolute() else Path(outer).parent / name
    try:
        if depth >= _MAX_INCLUDE_DEPTH:
            raise OSError(40, "Too many levels of symbolic links")  # ELOOP: a file includes itself
        text = full.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        message = f'could not open secondary authentication file "@{name}" as "{full}": {exc.strerror}'
        issues.append(HbaIssue(message))
        return message
    for _number, _raw, fields, error in _tokenize_file(text, str(full), issues, depth + 1):
        if error is not None:
            return error
        tokens.extend(token for tokens_of_field in fields for token in tokens_of_field)
    return None


# -- parsing (parse_hba_line) ----------------------------------------------------------------


class _LineError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _parse_line(number: int, raw: str, fields: _Fields) -> tuple[HbaLine, str | None]:
    remaining = iter(fields)
    conn_type = _single(next(remaining), "connection type", "Specify exactly one connection type per line.")
    if conn_type.string != "local" and conn_type.string not in _HOST_TYPES:
        raise _LineError(f'invalid connection type "{conn_type.string}"')
    warning = None
    if conn_type.string == "hostssl":
        warning = "hostssl record cannot match because SSL is not supported by this build"
    elif conn_type.string == "hostgssenc":
        warning = "hostgssenc record cannot match because GSSAPI is not supported by this build"
    databases = _next_field(remaining, "end-of-line before database specification")
    users = _next_field(remaining, "end-of-line before role specification")
    _refuse_membership(databases, users)
    address = None
    if conn_type.string != "local":
        address = _parse_address(remaining)
    method_field = _next_field(remaining, "end-of-line before authentication method")
    method = _single(method_field, "authentication type", "Specify exactly one authentication type per line.").string
    if method in _FOREIGN_METHODS:
        raise _LineError(f'invalid authentication method "{method}": not supported by this build')
    if method not in METHODS:
        raise _LineError(f'invalid authentication method "{method}"')
    options = tuple(_parse_option(token.string, conn_type.string) for rest in remaining for token in rest)
    line = HbaLine(number, raw, conn_type.string, tuple(databases), tuple(users), address, method, options)
    return line, warning


def _next_field(remaining: Iterator[list[AuthToken]], missing: str) -> list[AuthToken]:
    tokens = next(remaining, None)
    if tokens is None:
        raise _LineError(missing)
    return tokens


def _single(tokens: list[AuthToken], what: str, hint: str | None = None) -> AuthToken:
    if len(tokens) > 1:
        raise _LineError(f"multiple values specified for {what}", hint)
    return tokens[0]


def _refuse_membership(databases: list[AuthToken], users: list[AuthToken]) -> None:
    for token in databases:
        if token.is_keyword("samerole") or token.is_keyword("samegroup"):
            raise _LineError(f'"{token.string}" is not supported by pgtop: it has no role membership')
    for token in users:
        if not token.quoted and token.string.startswith("+"):
            raise _LineError(f'group "{token.string}" is not supported by pgtop: it has no role membership')


def _parse_address(remaining: Iterator[list[AuthToken]]) -> Address:
    field = _next_field(remaining, "end-of-line before IP address specification")
    token = _single(field, "host address", "Specify one address range per line.")
    for kind in (AddressKind.ALL, AddressKind.SAMEHOST, AddressKind.SAMENET):
        if token.is_keyword(kind.value):
            return Address(kind)
    text, slash, bits = token.string.partition("/")
    try:
        version, network = _numeric_host(text)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            raise _LineError(f'invalid IP address "{text}": {exc.strerror}') from None
        if slash:
            raise _LineError(f'specifying both host name and CIDR mask is invalid: "{token.string}"') from None
        return Address(AddressKind.HOSTNAME, hostname=text)
    width = 32 if version == 4 else 128
    if slash:
        length = _cidr_bits(bits, width)
        if length is None:
            raise _LineError(f'invalid CIDR mask in address "{token.string}"')
        mask = ((1 << width) - 1) ^ ((1 << (width - length)) - 1)
        return Address(AddressKind.MASK, version, network, mask)
    mask_tokens = next(remaining, None)
    if mask_tokens is None:
        raise _LineError(
            "end-of-line before netmask specification",
            "Specify an address range in CIDR notation, or provide a separate netmask.",
        )
    mask_token = _single(mask_tokens, "netmask")
    try:
        mask_version, mask = _numeric_host(mask_token.string)
    except socket.gaierror as exc:
        raise _LineError(f'invalid IP mask "{mask_token.string}": {exc.strerror}') from None
    if mask_version != version:
        raise _LineError("IP address and mask do not match")
    return Address(AddressKind.MASK, version, network, mask)


def _numeric_host(text: str) -> tuple[int, int]:
    """getaddrinfo(AI_NUMERICHOST), as PostgreSQL: glibc also takes forms like 127.1."""
    try:
        info = socket.getaddrinfo(text, None, flags=socket.AI_NUMERICHOST)[0]
    except (UnicodeError, ValueError):  # NUL or undecodable bytes: not a numeric address
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    literal = info[4][0].split("%", 1)[0]  # drop an IPv6 zone: addresses compare without it
    ip = ipaddress.ip_address(literal)
    return ip.version, int(ip)


def _cidr_bits(text: str, width: int) -> int | None:
    """pg_sockaddr_cidr_mask(): strtol over the whole text, 0..width."""
    body = text.lstrip(" \t\n\r\f\v")
    digits = body[1:] if body[:1] in "+-" else body
    if not digits.isdigit() or not digits.isascii():
        return None
    value = int(body)
    return value if 0 <= value <= width else None


def _parse_option(text: str, conn_type: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals:
        raise _LineError(f"authentication option not in name=value format: {text}")
    if name in ("clientcert", "clientname"):
        if conn_type != "hostssl":
            raise _LineError(f'{name} can only be configured for "hostssl" rows')
        allowed = ("verify-ca", "verify-full") if name == "clientcert" else ("CN", "DN")
        if value not in allowed:
            raise _LineError(f'invalid value for {name}: "{value}"')
        return name, value
    if name in _FOREIGN_OPTIONS:
        raise _LineError(f'authentication option "{name}" is only valid for authentication methods {_FOREIGN_OPTIONS[name]}')
    raise _LineError(f'unrecognized authentication option name: "{name}"')


# -- the file `pgtop init` writes ------------------------------------------------------------

DEFAULT_HBA = """\
# PostgreSQL Client Authentication Configuration File (pgtop)
# ==========================================================
#
# Records take one of these forms:
#
# local         DATABASE  USER  METHOD  [OPTIONS]
# host          DATABASE  USER  ADDRESS  METHOD  [OPTIONS]
# hostnossl     DATABASE  USER  ADDRESS  METHOD  [OPTIONS]
#
# "local" is a Unix-domain socket, "host" a TCP/IP socket.  DATABASE can be
# "all", "sameuser", "replication", a database name, or a comma-separated list
# thereof; "all" does not match "replication".  USER can be "all", a user name,
# or a comma-separated list.  In both fields "@file" includes names from a file.
# ADDRESS is an IP address with a CIDR mask (127.0.0.1/32), an address and a
# separate netmask, a host name, "all", "samehost" or "samenet".  METHOD can be
# "trust", "reject", "password", "md5" or "scram-sha-256" (pgtop carries out
# trust, reject, password and md5).  Quote names with spaces, commas or
# keywords; a quoted keyword is just a name.
#
# This file is read on server startup and when the server receives a SIGHUP
# signal ("pgtop ctl reload").  The first record that matches a connection
# decides; if none matches, the connection is refused.

# CAUTION: Configuring the system for local "trust" authentication
# allows any local user to connect as any PostgreSQL user, including
# the database superuser.  If you do not trust all your local users,
# use another authentication method.


# TYPE  DATABASE        USER            ADDRESS                 METHOD

# "local" is for Unix domain socket connections only
local   all             all                                     trust
# IPv4 local connections:
host    all             all             127.0.0.1/32            trust
# IPv6 local connections:
host    all             all             ::1/128                 trust
# Allow replication connections from localhost, by a user with the
# replication privilege.
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
"""
