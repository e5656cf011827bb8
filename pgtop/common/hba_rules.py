"""A loaded pg_hba.conf: its parsed lines, check_hba() matching, and the refusal texts.

Matching is check_hba(): the first line whose connection type, address, database and user all
match decides; no match at all is an implicit reject. pgtop has no SSL and no GSSAPI
encryption, so hostssl/hostgssenc lines never match. Reading the file is pgtop.common.hba.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass
from typing import Literal

IMPLEMENTED_METHODS = frozenset({"trust", "reject", "password", "md5"})


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
    # Imported here, for the rare samehost/samenet line: psutil is 1.2 MiB of the fork
    # server's heap otherwise, which every fork copies the page tables of.
    import psutil

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
