"""The postmaster's listen sockets: TCP on listen_addresses/port and a Unix socket per
directory in unix_socket_directories, with its lock file (StreamServerPort)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pgtop.core.config import Config
from pgtop.core.vocabulary import LogLevel
from pgtop.runtime import pidfile

LISTEN_BACKLOG = 1024  # PostgreSQL: MaxBackends * 2, capped by SOMAXCONN

LogFn = Callable[[LogLevel, str, str | None, str | None], None]


class NoSocketsError(Exception):
    """A FATAL at startup: no socket could be created at all."""


@dataclass
class ListenSockets:
    """The open sockets, their Unix socket files and lock files, and what pid-file lines
    5 and 6 should say."""

    sockets: list[socket.socket] = field(default_factory=list)
    unix_paths: list[Path] = field(default_factory=list)
    lock_paths: list[Path] = field(default_factory=list)
    first_socket_dir: str = ""
    first_address: str = ""

    def close(self) -> None:
        """Close everything and remove the socket and lock files (at postmaster exit)."""
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        for path in self.unix_paths + self.lock_paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.unix_paths.clear()
        self.lock_paths.clear()

    def touch(self) -> None:
        for path in self.unix_paths + self.lock_paths:
            try:
                os.utime(path)
            except OSError:
                pass


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def open_listen_sockets(
    config: Config, datadir: str, postmaster_pid: int, start_time: float, log: LogFn
) -> ListenSockets:
    """Open every socket the configuration asks for, logging as PostgreSQL does."""
    result = ListenSockets()
    addresses = _split_list(config.listen_addresses)
    for address in addresses:
        opened = _open_tcp(address, config.port, result, log)
        if opened and not result.first_address:
            result.first_address = address
    if addresses and not any(s.family != socket.AF_UNIX for s in result.sockets):
        raise NoSocketsError("could not create any TCP/IP sockets")
    directories = _split_list(config.unix_socket_directories)
    for directory in directories:
        if _open_unix(directory, config.port, result, datadir, postmaster_pid, start_time, log):
            result.first_socket_dir = result.first_socket_dir or directory
    if directories and not any(s.family == socket.AF_UNIX for s in result.sockets):
        raise NoSocketsError("could not create any Unix-domain sockets")
    if not result.sockets:
        raise NoSocketsError("no socket created for listening")
    return result


def _open_tcp(host: str, port: int, result: ListenSockets, log: LogFn) -> bool:
    lookup = None if host == "*" else host
    try:
        infos = socket.getaddrinfo(lookup, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        log(LogLevel.LOG, f'could not translate host name "{host}", service "{port}" to address: {error.strerror}', None, None)
        log(LogLevel.WARNING, f'could not create listen socket for "{host}"', None, None)
        return False
    opened = False
    seen: set[tuple[int, str]] = set()
    for family, kind, proto, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6) or (family, sockaddr[0]) in seen:
            continue
        seen.add((family, sockaddr[0]))
        label = "IPv4" if family == socket.AF_INET else "IPv6"
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(LISTEN_BACKLOG)
        except OSError as error:
            sock.close()
            log(
                LogLevel.LOG,
                f'could not bind {label} address "{sockaddr[0]}": {error.strerror}',
                None,
                f"Is another postmaster already running on port {port}? If not, wait a few seconds and retry.",
            )
            continue
        sock.setblocking(False)
        result.sockets.append(sock)
        log(LogLevel.LOG, f'listening on {label} address "{sockaddr[0]}", port {port}', None, None)
        opened = True
    if not opened:
        log(LogLevel.WARNING, f'could not create listen socket for "{host}"', None, None)
    return opened


def _open_unix(
    directory: str,
    port: int,
    result: ListenSockets,
    datadir: str,
    postmaster_pid: int,
    start_time: float,
    log: LogFn,
) -> bool:
    path = Path(directory) / f".s.PGSQL.{port}"
    try:
        lock = pidfile.create_socket_lock(directory, port, pid=postmaster_pid, datadir=datadir, start_time=int(start_time))
    except pidfile.LockFileError as error:
        log(LogLevel.LOG, str(error), None, error.hint)
        log(LogLevel.WARNING, f'could not create Unix-domain socket in directory "{directory}"', None, None)
        return False
    try:
        path.unlink()  # a stale socket file: the lock file said nobody uses it
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o777)
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        sock.close()
        pidfile.remove_socket_lock(lock)
        log(LogLevel.LOG, f'could not bind Unix address "{path}": {error.strerror}', None, "Is another postmaster already running on port {port}?".format(port=port))
        log(LogLevel.WARNING, f'could not create Unix-domain socket in directory "{directory}"', None, None)
        return False
    sock.setblocking(False)
    result.sockets.append(sock)
    result.unix_paths.append(path)
    result.lock_paths.append(Path(lock))
    log(LogLevel.LOG, f'listening on Unix socket "{path}"', None, None)
    return True
