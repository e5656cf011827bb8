"""pg_hba.conf in PostgreSQL's own format: tokenise, parse, match, and the refusal texts.

Loading follows PostgreSQL 15's hba.c: the whole file is tokenised first (quotes, commas,
comments, backslash continuations, @file inclusion), then each line is parsed and the first
problem of every bad line is reported with PostgreSQL's message and the CONTEXT
'line %d of configuration file "%s"'. One bad line makes the whole file bad: the caller keeps
its old rules and logs "pg_hba.conf was not reloaded" (at startup, FATAL "could not load
pg_hba.conf"). Matching is check_hba(): the first line whose connection type, address,
database and user all match decides; no match at all is an implicit reject.

pgtop has no SSL and no GSSAPI encryption: hostssl/hostgssenc lines load with PostgreSQL's
"cannot match" warning and never match. Methods other than trust, reject, password, md5 and
scram-sha-256 are "not supported by this build". Role membership (+group, samerole) needs a
role catalogue pgtop does not have, so such lines are refused at load with a clear message.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

HBA_FILE_NAME = "pg_hba.conf"
METHODS = ("trust", "reject", "password", "md5", "scram-sha-256")
IMPLEMENTED_METHODS = frozenset({"trust", "reject", "password", "md5"})
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


@dataclass(frozen=True, slots=True)
class AuthToken:
    """One word of a field; a quoted keyword ("all") is just a name."""

    string: str
    quoted: bool = False

    def is_keyword(self, word: str) -> bool:
        return not self.quoted and self.string == word


@dataclass(frozen=True, slots=True)
class HbaIssue:
    """One problem, as PostgreSQL logs it: LOG message, optional HINT and CONTEXT."""

    message: str
    hint: str | None = None
    context: str | None = None


class HbaError(Exception):
    """The file cannot be used; `issues` in the order PostgreSQL logs them."""

    def __init__(self, path: str, issues: tuple[HbaIssue, ...]) -> None:
        self.path = path
        self.issues = issues
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        where = f", {issues[0].context}" if issues[0].context else ""
        super().__init__(f"{issues[0].message}{where}{more}")


class AddressKind(enum.Enum):
    ALL = "all"
    SAMEHOST = "samehost"
    SAMENET = "samenet"
    MASK = "mask"  # an address and a mask (CIDR or separate)
    HOSTNAME = "hostname"


@dataclass(frozen=True, slots=True)
class Address:
    """The ADDRESS field of a host line."""

    kind: AddressKind
    version: int = 0  # 4 or 6, for MASK
    network: int = 0
    mask: int = 0
    hostname: str = ""


@dataclass(frozen=True, slots=True)
class HbaLine:
    """One parsed record (HbaLine in hba.h); `raw_line` has continuations joined."""

    line_number: int
    raw_line: str
    conn_type: str  # local, host, hostssl, hostnossl, hostgssenc, hostnogssenc
    databases: tuple[AuthToken, ...]
    users: tuple[AuthToken, ...]
    address: Address | None  # None for local
    method: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HbaMatch:
    """The line that decided a connection."""

    line_number: int
    raw_line: str
    method: str

    @property
    def implemented(self) -> bool:
        """The backend can carry this method out (scram-sha-256 cannot yet)."""
        return self.method in IMPLEMENTED_METHODS

    @property
    def detail(self) -> str:
        """The server log DETAIL PostgreSQL adds to an authentication failure."""
        return f'Connection matched pg_hba.conf line {self.line_number}: "{self.raw_line}"'


@dataclass(frozen=True)
class HbaRules:
    """A loaded pg_hba.conf. `warnings` were logged but did not make the file bad."""

    path: str
    lines: tuple[HbaLine, ...]
    warnings: tuple[HbaIssue, ...] = ()

    def match(
        self,
        conn_type: Literal["local", "host"],
        database: str,
        user: str,
        address: str | None = None,
        replication: bool = False,
    ) -> HbaMatch | None:
        """check_hba(): the first matching line, or None (implicit reject).

        `replication` is a physical replication connection (replication=true), which only
        the "replication" keyword matches; a logical walsender is an ordinary connection.
        """
        if conn_type not in ("local", "host"):
            raise ValueError(f"connection type must be local or host, not {conn_type!r}")
        client = _client_address(address) if conn_type == "host" else None
        lookups: dict[str, str | None] = {}
        for line in self.lines:
            if (line.conn_type == "local") != (conn_type == "local"):
                continue
            if line.conn_type in ("hostssl", "hostgssenc"):
                continue  # pgtop offers neither encryption
            if client is not None and not _address_matches(line.address, client, lookups):
                continue
            if _database_matches(line.databases, database, user, replication) and _role_matches(line.users, user):
                return HbaMatch(line.line_number, line.raw_line, line.method)
        return None


# -- refusals -----------------------------------------------------------------------------


class Refusal(enum.Enum):
    """Why a backend refuses a client after the pg_hba.conf check."""

    NO_ENTRY = "no entry"  # implicit reject: no line matched
    REJECT = "reject"  # a "reject" line matched
    PASSWORD_FAILED = "password failed"  # password, md5 or scram-sha-256 said no

    @property
    def sqlstate(self) -> str:
        """28000 invalid_authorization_specification, 28P01 invalid_password."""
        return "28P01" if self is Refusal.PASSWORD_FAILED else "28000"

    @classmethod
    def for_match(cls, match: HbaMatch | None) -> Refusal | None:
        """ClientAuthentication's first verdict: refused outright, or None to go on with
        the matched method."""
        if match is None:
            return cls.NO_ENTRY
        return cls.REJECT if match.method == "reject" else None


def refusal_message(refusal: Refusal, *, host: str | None, user: str, database: str, replication: bool = False) -> str:
    """The FATAL text the client gets. `host` is the client address, None for a Unix socket."""
    shown = "[local]" if host is None else host
    if refusal is Refusal.PASSWORD_FAILED:
        return f'password authentication failed for user "{user}"'
    if refusal is Refusal.REJECT:
        if replication:
            return f'pg_hba.conf rejects replication connection for host "{shown}", user "{user}", no encryption'
        return f'pg_hba.conf rejects connection for host "{shown}", user "{user}", database "{database}", no encryption'
    if replication:
        return f'no pg_hba.conf entry for replication connection from host "{shown}", user "{user}", no encryption'
    return f'no pg_hba.conf entry for host "{shown}", user "{user}", database "{database}", no encryption'


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


# -- matching (check_hba, check_db, check_role, check_ip, check_hostname) ------------------


def _client_address(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if address is None:
        raise ValueError("a host connection needs the client address")
    return ipaddress.ip_address(address.split("%", 1)[0])


def _database_matches(tokens: tuple[AuthToken, ...], database: str, user: str, replication: bool) -> bool:
    for token in tokens:
        if replication:
            if token.is_keyword("replication"):
                return True  # physical replication matches this keyword only
        elif token.is_keyword("all"):
            return True
        elif token.is_keyword("sameuser"):
            if database == user:
                return True
        elif token.is_keyword("replication"):
            continue
        elif token.string == database:
            return True
    return False


def _role_matches(tokens: tuple[AuthToken, ...], user: str) -> bool:
    return any(token.is_keyword("all") or token.string == user for token in tokens)


def _address_matches(spec: Address | None, client, lookups: dict[str, str | None]) -> bool:
    assert spec is not None
    if spec.kind is AddressKind.ALL:
        return True
    if spec.kind is AddressKind.MASK:
        return client.version == spec.version and (int(client) & spec.mask) == (spec.network & spec.mask)
    if spec.kind is AddressKind.HOSTNAME:
        return _hostname_matches(spec.hostname, client, lookups)
    return _same_host_or_net(client, same_net=spec.kind is AddressKind.SAMENET)


def _same_host_or_net(client, *, same_net: bool) -> bool:
    """check_same_host_or_net(): compare with every interface address of this machine."""
    family = socket.AF_INET if client.version == 4 else socket.AF_INET6
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family != family:
                continue
            own = ipaddress.ip_address(entry.address.split("%", 1)[0])
            if not same_net:
                if own == client:
                    return True
            elif entry.netmask:
                mask = int(ipaddress.ip_address(entry.netmask.split("/", 1)[0]))
                if (int(own) & mask) == (int(client) & mask):
                    return True
    return False


def _hostname_matches(pattern: str, client, lookups: dict[str, str | None]) -> bool:
    """check_hostname(): reverse lookup, name match (".suffix" allowed), forward confirm."""
    key = str(client)
    if key not in lookups:
        lookups[key] = _verified_name(key)
    name = lookups[key]
    if name is None:
        return False
    if pattern.startswith("."):
        return len(name) >= len(pattern) and name[-len(pattern):].lower() == pattern.lower()
    return name.lower() == pattern.lower()


def _verified_name(ip: str) -> str | None:
    try:
        name, _ = socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)
        forward = socket.getaddrinfo(name, None)
    except OSError:
        return None
    return name if any(info[4][0].split("%", 1)[0] == ip for info in forward) else None


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
