"""A backend's ClientAuthentication: pg_hba.conf decides, password methods ask the client,
all under authentication_timeout (spec §6).

Passwords: pgtop has no pg_authid, so password and md5 lines check against `global/pg_auth`,
the flat file PostgreSQL itself kept for the postmaster up to 9.0: one `"user" "password"`
pair per line, the password in clear or as its "md5..." hash. A user without a line has no
password, and password authentication fails for it, as for a role without one.
"""

from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path

from pgtop.children.context import ChildContext
from pgtop.common.hba import HbaError, load_hba
from pgtop.common.hba_rules import HbaMatch, HbaRules, Refusal, refusal_message
from pgtop.wire.auth import (
    check_cleartext_password,
    check_md5_response,
    md5_password_hash,
    request_cleartext_password,
    request_md5_password,
)
from pgtop.wire.errors import Diagnostic
from pgtop.wire.startup import StartupMessage
from pgtop.wire.stream import ConnectionLost, MessageStream

PASSWORD_FILE = os.path.join("global", "pg_auth")
# A timeout while the client authenticates goes to the log only (ClientAuthInProgress).
AUTH_TIMEOUT = Diagnostic("FATAL", "57014", "canceling authentication due to timeout")


class AuthenticationTimeout(Exception):
    """authentication_timeout ran out (SIGALRM), reading the startup packet or a password."""


class ClientGone(Exception):
    """The client hung up while authenticating: the backend ends quietly (exit 0)."""


def on_alarm(*_: object) -> None:
    """The SIGALRM handler: authentication_timeout interrupts whatever waits for the client."""
    raise AuthenticationTimeout()


def authenticate(
    ctx: ChildContext, stream: MessageStream, startup: StartupMessage, host: str | None
) -> Diagnostic | None:
    """ClientAuthentication(): pg_hba.conf decides; password methods ask the client.

    The rules are the postmaster's, as loaded at start or at the last good reload (a broken
    file on SIGHUP keeps the old ones); only a child spawned without them reads the file."""
    rules = ctx.args.get("hba")
    if not isinstance(rules, HbaRules):
        try:
            rules = load_hba(Path(ctx.args["datadir"]) / "pg_hba.conf")
        except HbaError:
            return Diagnostic("FATAL", "28000", "could not load pg_hba.conf")
    conn_type = "local" if host is None else "host"
    replication = bool(startup.replication) and startup.replication != "database"
    match = rules.match(conn_type, startup.database, startup.user, host, replication)
    refused = Refusal.for_match(match)
    if refused is None and match is not None and match.method != "trust":
        return _password_exchange(ctx, stream, startup, host, match)
    if refused is None:
        return None
    text = refusal_message(refused, host=host, user=startup.user, database=startup.database, replication=replication)
    return Diagnostic("FATAL", refused.sqlstate, text)  # no DETAIL: PostgreSQL gives none here


def _password_exchange(
    ctx: ChildContext, stream: MessageStream, startup: StartupMessage, host: str | None, match: HbaMatch
) -> Diagnostic | None:
    """CheckPasswordAuth / CheckMD5Auth under authentication_timeout. A client that hangs
    up to ask its user for the password (psql does) ends the backend silently; one that
    sends something else than a password breaks the protocol (ProtocolViolation)."""
    user = startup.user
    stored = _stored_password(ctx, user)
    signal.alarm(int(ctx.args["config"].authentication_timeout))
    try:
        if match.method == "password":
            ok = _cleartext_matches(user, stored, request_cleartext_password(stream))
        elif match.method == "md5":
            salt, response = request_md5_password(stream)
            ok = stored is not None and check_md5_response(user, stored, salt, response)
        else:
            return Diagnostic("FATAL", "28000", f'authentication method "{match.method}" is not supported by pgtop')
    except AuthenticationTimeout:
        return AUTH_TIMEOUT
    except (ConnectionLost, OSError):
        raise ClientGone() from None  # PostgreSQL logs nothing for a client that left here
    finally:
        signal.alarm(0)
    if ok:
        return None
    # auth_failed(): the reason and the matching line are errdetail_log, for the log only.
    why = f'User "{user}" has no password assigned.' if stored is None else f'Password does not match for user "{user}".'
    text = refusal_message(Refusal.PASSWORD_FAILED, host=host, user=user, database=startup.database)
    return Diagnostic("FATAL", "28P01", text, f"{why}\n{match.detail}")


def _cleartext_matches(user: str, stored: str | None, response: str) -> bool:
    """A cleartext password against the stored one, which may be its "md5..." hash."""
    if stored is None:
        return False
    if stored.startswith("md5") and len(stored) == 35:
        return check_cleartext_password(stored, md5_password_hash(user, response))
    return check_cleartext_password(stored, response)


def _stored_password(ctx: ChildContext, user: str) -> str | None:
    """The user's password from global/pg_auth, or None (no file, no line: no password)."""
    try:
        text = (Path(ctx.args["datadir"]) / PASSWORD_FILE).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # an unbalanced quote: that line names nobody
        if len(words) >= 2 and words[0] == user:
            return words[1]
    return None
