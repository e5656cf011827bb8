"""Warming the fork server up for backends: one short session against memory, run once
before the fork server freezes its heap, so that every backend starts with its work done."""

from __future__ import annotations

import os
import socket
import struct

from pgtop.children.backend_procs import CLIENT_BACKEND, TOO_MANY_CLIENTS
from pgtop.common.shmem_records import ActivityRow
from pgtop.sql import Engine, settings_from_config
from pgtop.wire import messages
from pgtop.wire.interrupts import Interrupts
from pgtop.wire.session import Session
from pgtop.wire.startup import StartupMessage, read_startup_packet

_WARM_HBA = "local all all trust\nhost all all 127.0.0.1/32 md5\n"


def warm_up() -> None:
    """Run a short session against memory, once, in the fork server (before it freezes its
    heap): regular expressions compile, lazy imports happen and the interpreter specializes
    the session's bytecode there, so a backend starts with all of it instead of redoing it
    for every connection. Nothing here touches the data directory or signals."""
    from pgtop.common.hba import parse_hba_text
    from pgtop.common.shmem import Segment
    from pgtop.core.config import Config
    from pgtop.sql import MemoryEnvironment, MemoryStorage

    rules = parse_hba_text(_WARM_HBA, "warm-up")
    rules.match("local", "postgres", "postgres")
    rules.match("host", "postgres", "postgres", "127.0.0.1")
    with Segment.create(2) as segment, segment.proc_lock():
        segment.write_activity(1, ActivityRow(pid=os.getpid(), backend_type=CLIENT_BACKEND))
        segment.update_activity(1, state="idle", query="", user="warm-up")
        segment.activity_entries()
    client, server = socket.socketpair()
    with client, server:
        client.sendall(_packet(b"", struct.pack("!i", 196608) + b"user\0warm-up\0database\0warm-up\0\0"))
        startup = read_startup_packet(server)
        assert isinstance(startup, StartupMessage)
        client.sendall(b"".join(_query(text) for text in ("select 1", "begin", "show work_mem", "commit", "selec 1"))
                       + _packet(b"P", b"\0select $1::int\0\0\0") + _packet(b"B", b"\0\0\0\0\0\1\0\0\0\0011\0\0")
                       + _packet(b"D", b"P\0") + _packet(b"E", b"\0\0\0\0\0") + _packet(b"S") + _packet(b"X"))  # fmt: skip
        interrupts = Interrupts()
        environment = MemoryEnvironment(interrupts=interrupts, settings=settings_from_config(Config()))
        engine = Engine(environment, MemoryStorage())
        Session(server, startup, pid=os.getpid(), secret_key=0, parameters={}, executor=engine,
                interrupts=interrupts).run()  # fmt: skip
        interrupts.close()
        messages.error_response(TOO_MANY_CLIENTS)


def _packet(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _query(text: str) -> bytes:
    return _packet(b"Q", text.encode() + b"\0")
