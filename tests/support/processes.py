"""What a test left running, and the raw socket talk the fuzz tests share."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil


def living_in(directory: Path) -> list[int]:
    """Processes (not zombies) whose working directory is in `directory`."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and Path(process.cwd()).is_relative_to(directory):
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, FileNotFoundError):
            continue
    return found


def send_and_drain(sock: socket.socket, data: bytes) -> bytes:
    """Send `data`, half-close, and read until the server closes (the socket's timeout bounds
    each read)."""
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may already have closed on us
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received
