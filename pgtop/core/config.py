"""The server configuration the postmaster reads: a plain, typed, immutable object.

Each field is a PostgreSQL parameter (GUC) with its default, its context and one line of
documentation; `pgtop.core.guc` parses and validates values and decides what a reload changes.
Parameters that pgtop adds for the model itself use PostgreSQL's custom-parameter form with a
dot (`pgtop.redo_delay`), as extensions do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Context(enum.Enum):
    """When a parameter may change (pg_settings.context)."""

    INTERNAL = "internal"
    POSTMASTER = "postmaster"
    SIGHUP = "sighup"
    SUPERUSER_BACKEND = "superuser-backend"
    BACKEND = "backend"
    SUPERUSER = "superuser"
    USER = "user"

    @property
    def reloadable(self) -> bool:
        """Takes a new value from the file on SIGHUP."""
        return self not in (Context.INTERNAL, Context.POSTMASTER)


def _param(
    default: Any,
    context: Context,
    doc: str,
    *,
    unit: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    metadata = {
        "context": context,
        "doc": doc,
        "unit": unit,
        "min": minimum,
        "max": maximum,
        "choices": choices,
    }
    return field(default=default, metadata=metadata)


P, H, S, U = Context.POSTMASTER, Context.SIGHUP, Context.SUPERUSER, Context.USER
LOG_LEVELS = ("debug5", "debug4", "debug3", "debug2", "debug1", "info", "notice", "warning", "error", "log", "fatal", "panic")


@dataclass(frozen=True)
class Config:
    """Every parameter pgtop knows. Times are in the unit named by `unit`."""

    # Connections
    listen_addresses: str = _param("localhost", P, "TCP/IP addresses to listen on ('' for none, '*' for all).")
    port: int = _param(5432, P, "TCP port, also the Unix socket's name.", minimum=1, maximum=65535)
    unix_socket_directories: str = _param("/tmp", P, "Directories for the Unix-domain socket, comma separated.")
    max_connections: int = _param(100, P, "Maximum number of client connections.", minimum=1, maximum=262143)
    superuser_reserved_connections: int = _param(3, P, "Connection slots reserved for superusers.", minimum=0, maximum=262143)
    authentication_timeout: int = _param(60, H, "Time allowed to send the startup packet and authenticate.", unit="s", minimum=1, maximum=600)
    # Processes
    max_worker_processes: int = _param(8, P, "Maximum number of background worker processes.", minimum=0, maximum=262143)
    max_wal_senders: int = _param(10, P, "Maximum number of walsender processes.", minimum=0, maximum=262143)
    max_logical_replication_workers: int = _param(4, P, "Logical replication workers; 0 also disables the launcher.", minimum=0, maximum=262143)
    autovacuum: bool = _param(True, H, "Start the autovacuum launcher.")
    track_counts: bool = _param(True, S, "Collect table statistics (autovacuum needs them).")
    autovacuum_max_workers: int = _param(3, P, "Maximum number of autovacuum workers.", minimum=1, maximum=262143)
    autovacuum_naptime: int = _param(60, H, "Time between autovacuum runs.", unit="s", minimum=1, maximum=2147483)
    restart_after_crash: bool = _param(True, H, "Reinitialise after a backend crash.")
    remove_temp_files_after_crash: bool = _param(True, H, "Remove temporary files after a backend crash.")
    # WAL, checkpoints, archiving
    wal_level: str = _param("replica", P, "How much information is written to the WAL.", choices=("minimal", "replica", "logical"))
    checkpoint_timeout: int = _param(300, H, "Time between automatic checkpoints.", unit="s", minimum=30, maximum=86400)
    bgwriter_delay: int = _param(200, H, "Background writer sleep time between rounds.", unit="ms", minimum=10, maximum=10000)
    wal_writer_delay: int = _param(200, H, "Time between WAL flushes by the WAL writer.", unit="ms", minimum=1, maximum=10000)
    archive_mode: str = _param("off", P, "Archive completed WAL segments with archive_command.", choices=("off", "on", "always"))
    archive_command: str = _param("", H, "Shell command to archive a WAL segment (%p path, %f file name).")
    log_checkpoints: bool = _param(False, H, "Log each checkpoint.")
    # Replication
    hot_standby: bool = _param(True, P, "Allow read-only queries during recovery.")
    primary_conninfo: str = _param("", H, "Connection string to the primary server.")
    wal_retrieve_retry_interval: int = _param(5000, H, "Wait before retrying to retrieve WAL.", unit="ms", minimum=1, maximum=2147483647)
    # Logging
    logging_collector: bool = _param(False, P, "Collect the server's stderr output into log files.")
    log_destination: str = _param("stderr", H, "Where the server log goes.", choices=("stderr",))
    log_directory: str = _param("log", H, "Directory for log files, relative to the data directory.")
    log_filename: str = _param("postgresql-%Y-%m-%d_%H%M%S.log", H, "Log file name pattern (strftime).")
    log_rotation_age: int = _param(1440, H, "Rotate the log file after this many minutes (0 = never).", unit="min", minimum=0, maximum=35791394)
    log_rotation_size: int = _param(10240, H, "Rotate the log file after this many kB (0 = never).", unit="kB", minimum=0, maximum=2097151)
    log_line_prefix: str = _param("%m [%p] ", H, "printf-style prefix of each log line.")
    log_min_messages: str = _param("warning", S, "Lowest level written to the server log.", choices=LOG_LEVELS)
    log_min_error_statement: str = _param("error", S, "Lowest level whose statement is logged (STATEMENT).", choices=LOG_LEVELS)
    log_connections: bool = _param(False, Context.SUPERUSER_BACKEND, "Log each connection attempt.")
    log_disconnections: bool = _param(False, Context.SUPERUSER_BACKEND, "Log the end of each session.")
    log_timezone: str = _param("UTC", H, "Time zone of log timestamps.")
    # Client defaults
    application_name: str = _param("", U, "Name of the application, shown in pg_stat_activity.")
    timezone: str = _param("UTC", U, "Time zone for displaying timestamps.")
    datestyle: str = _param("ISO, MDY", U, "Display format for dates.")
    statement_timeout: int = _param(0, U, "Abort any statement that takes longer (0 = off).", unit="ms", minimum=0, maximum=2147483647)
    # pgtop's own knobs for the model
    redo_delay: int = _param(0, H, "pgtop: time the startup process spends replaying each WAL record, so recovery can be watched.", unit="ms", minimum=0, maximum=10000)

    @property
    def autovacuum_active(self) -> bool:
        """AutoVacuumingActive(): autovacuum=on and track_counts=on."""
        return self.autovacuum and self.track_counts

    @property
    def archiving_active(self) -> bool:
        """XLogArchivingActive(): archive_mode is not off and wal_level is at least replica."""
        return self.archive_mode != "off" and self.wal_level != "minimal"

    @property
    def max_live_children(self) -> int:
        """MaxLivePostmasterChildren() (spec §6)."""
        return 2 * (
            self.max_connections
            + self.autovacuum_max_workers
            + 1
            + self.max_wal_senders
            + self.max_worker_processes
        )

    def setting(self, name: str) -> Any:
        return getattr(self, GUC_FIELD.get(name.lower(), name.lower()))


# Parameter names whose Python field name differs (PostgreSQL spells them in mixed case,
# or with a dot for custom parameters).
GUC_FIELD: dict[str, str] = {
    "datestyle": "datestyle",
    "timezone": "timezone",
    "pgtop.redo_delay": "redo_delay",
}
FIELD_GUC: dict[str, str] = {v: k for k, v in GUC_FIELD.items() if k != v}
