"""Password authentication exchanges (auth.c): cleartext and MD5. The backend picks the method
(from pg_hba.conf) and decides; these helpers only speak the protocol and check a password."""

from __future__ import annotations

import hashlib
import hmac
import os

from pgtop.wire.errors import PgError, ProtocolViolation
from pgtop.wire.frontend import SMALL_MESSAGE_LIMIT, parse_password
from pgtop.wire.messages import (
    authentication_cleartext_password,
    authentication_md5_password,
)
from pgtop.wire.stream import ConnectionLost, MessageStream


def _read_password(stream: MessageStream) -> str:
    """Read the PasswordMessage. A client that hangs up here (psql does, to prompt its user and
    reconnect) raises ConnectionLost, which PostgreSQL does not log."""
    stream.flush()
    kind = stream.read_available_or_eof()
    if not kind:
        raise ConnectionLost()
    if kind != b"p":
        raise ProtocolViolation("08P01", f"expected password response, got message type {kind[0]}", True)
    try:
        message = parse_password(stream.read_body(SMALL_MESSAGE_LIMIT))
    except PgError as error:
        raise ProtocolViolation(error.sqlstate, error.message, True) from None
    return message.password.decode("utf-8", errors="replace")


def request_cleartext_password(stream: MessageStream) -> str:
    """Send AuthenticationCleartextPassword and return what the client answered."""
    stream.send(authentication_cleartext_password())
    return _read_password(stream)


def request_md5_password(stream: MessageStream, salt: bytes | None = None) -> tuple[bytes, str]:
    """Send AuthenticationMD5Password; return (salt, the client's "md5..." response)."""
    salt = os.urandom(4) if salt is None else salt
    stream.send(authentication_md5_password(salt))
    return salt, _read_password(stream)


def md5_password_hash(user: str, password: str) -> str:
    """What pg_authid stores for an MD5 password: "md5" + md5(password || user)."""
    return "md5" + hashlib.md5(password.encode() + user.encode()).hexdigest()


def md5_response(user: str, password: str, salt: bytes) -> str:
    """What a client sends for `password` (plain, or already an "md5..." hash as stored):
    "md5" + md5(md5(password || user) || salt)."""
    stored = password if _is_md5_hash(password) else md5_password_hash(user, password)
    return "md5" + hashlib.md5(stored[3:].encode() + salt).hexdigest()


def check_md5_response(user: str, password: str, salt: bytes, response: str) -> bool:
    """`password` is the plain password or its stored "md5..." hash."""
    return hmac.compare_digest(md5_response(user, password, salt), response)


def _is_md5_hash(text: str) -> bool:
    return len(text) == 35 and text.startswith("md5") and all(c in "0123456789abcdef" for c in text[3:])


def check_cleartext_password(password: str, response: str) -> bool:
    return hmac.compare_digest(password.encode(), response.encode())


def password_authentication_failed(user: str) -> PgError:
    """The FATAL a client gets for a wrong password (28P01)."""
    return PgError("28P01", f'password authentication failed for user "{user}"', severity="FATAL")
