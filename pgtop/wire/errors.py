"""What a backend reports: diagnostics (ErrorResponse/NoticeResponse fields) and the errors that carry them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """The fields of one ErrorResponse or NoticeResponse.

    `severity` is the non-localized one (ERROR, FATAL, PANIC, WARNING, NOTICE, LOG, DEBUG1...);
    `position` is PostgreSQL's 1-based character index into the query string.
    """

    severity: str
    sqlstate: str
    message: str
    detail: str | None = None
    hint: str | None = None
    position: int | None = None


class PgError(Exception):
    """An error a statement or a protocol step raises; the session turns it into ErrorResponse."""

    def __init__(
        self,
        sqlstate: str,
        message: str,
        *,
        detail: str | None = None,
        hint: str | None = None,
        position: int | None = None,
        severity: str = "ERROR",
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.detail = detail
        self.hint = hint
        self.position = position
        self.severity = severity

    @property
    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.severity, self.sqlstate, self.message, self.detail, self.hint, self.position)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sqlstate!r}, {self.message!r})"


class ProtocolViolation(PgError):
    """The client broke the protocol. `send_to_client` False means PostgreSQL only logs it
    (COMMERROR, shown as LOG) and closes the connection; True means a FATAL goes to the client
    first. Either way the connection ends."""

    def __init__(
        self,
        sqlstate: str,
        message: str,
        send_to_client: bool,
        *,
        detail: str | None = None,
        hint: str | None = None,
        legacy_protocol: bool = False,
    ) -> None:
        super().__init__(
            sqlstate, message, detail=detail, hint=hint, severity="FATAL" if send_to_client else "LOG"
        )
        self.send_to_client = send_to_client
        # A client that asked for protocol 2 gets its refusal in protocol 2's error format.
        self.legacy_protocol = legacy_protocol


class SessionTerminated(Exception):
    """Raised at an interrupt check when the backend was told to end the session; the session
    sends `diagnostic` (a FATAL, or quickdie's WARNING) and returns."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def query_canceled(reason: str = "user request") -> PgError:
    """What the running statement fails with: a cancel request (SIGINT, spec issue 4) or,
    with reason "statement timeout", statement_timeout."""
    return PgError("57014", f"canceling statement due to {reason}")


# What a backend tells its client when the postmaster stops it (spec §4.4 and §7).
ADMIN_SHUTDOWN = Diagnostic("FATAL", "57P01", "terminating connection due to administrator command")
IMMEDIATE_SHUTDOWN = Diagnostic("WARNING", "57P01", "terminating connection due to immediate shutdown command")
UNEXPECTED_SIGQUIT = Diagnostic("WARNING", "57P01", "terminating connection because of unexpected SIGQUIT signal")
CRASH_SHUTDOWN = Diagnostic(
    "WARNING",
    "57P02",
    "terminating connection because of crash of another server process",
    detail=(
        "The postmaster has commanded this server process to roll back the current transaction "
        "and exit, because another server process exited abnormally and possibly corrupted "
        "shared memory."
    ),
    hint="In a moment you should be able to reconnect to the database and repeat your command.",
)
