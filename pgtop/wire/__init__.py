"""The PostgreSQL wire protocol (v3), server side: startup packets, messages, sessions.

No processes and no postmaster logic here: a backend child reads the startup packet with
`read_startup_packet`, authenticates (see `pgtop.wire.auth`), and hands the socket to a
`Session` that runs an `Executor` (`pgtop.sql.Engine`).
"""

from pgtop.wire.errors import (
    ADMIN_SHUTDOWN,
    CRASH_SHUTDOWN,
    IMMEDIATE_SHUTDOWN,
    UNEXPECTED_SIGQUIT,
    Diagnostic,
    PgError,
    ProtocolViolation,
    SessionTerminated,
)
from pgtop.wire.executor import Executor, Result, TransactionControl
from pgtop.wire.interrupts import Interrupts
from pgtop.wire.messages import Column
from pgtop.wire.session import Ending, EndReason, Session
from pgtop.wire.startup import (
    CancelRequest,
    StartupMessage,
    read_startup_packet,
    split_options,
    violation_response,
)
from pgtop.wire.stream import ConnectionLost, MessageStream

__all__ = [
    "ADMIN_SHUTDOWN",
    "CRASH_SHUTDOWN",
    "IMMEDIATE_SHUTDOWN",
    "UNEXPECTED_SIGQUIT",
    "CancelRequest",
    "Column",
    "ConnectionLost",
    "Diagnostic",
    "EndReason",
    "Ending",
    "Executor",
    "Interrupts",
    "MessageStream",
    "PgError",
    "ProtocolViolation",
    "Result",
    "Session",
    "SessionTerminated",
    "StartupMessage",
    "TransactionControl",
    "read_startup_packet",
    "split_options",
    "violation_response",
]
