"""`python -m bench hotcode`: record the fork server's code profile (pgtop/runtime/hot_code.txt)
from a real backend's life, or with `--check` say how much of it the committed one covers.

One pgtop cluster runs with PGTOP_RECORD_CODE set, so its spares record the code they run
(see pgtop.runtime.codelayout). One client connects over the Unix socket, runs SELECT 1 and
says Terminate; once its backend has exited, that backend's record is the profile: the
functions it ran, spare to exit, in the order of their first call.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import psutil

from bench.many import message, read_until_ready, startup_packet
from bench.proctable import poll_until
from bench.servers import PgtopServer
from pgtop.runtime.codelayout import PROFILE, RECORD_ENV, Key, load_profile

EXIT_TIMEOUT = 10.0
ATTEMPTS = 5  # connections, until one is served by a spare
CHECK_COVERAGE = 0.9  # --check fails below this share of the backend's functions


def record_backend() -> list[Key]:
    """The functions one backend ran, from its spare's start to its exit, in order."""
    with tempfile.TemporaryDirectory(prefix="pgtop-hotcode-") as directory, PgtopServer(max_connections=10) as server:
        os.environ[RECORD_ENV] = directory  # for the server process only, which inherits it
        try:
            server.start()
        finally:
            del os.environ[RECORD_ENV]
        for _ in range(ATTEMPTS):
            record = Path(directory, str(_one_session(server)))
            if record.exists():
                break
            # Forked on demand (no spare was ready): it recorded nothing. Again.
        else:
            raise RuntimeError(f"no backend of {ATTEMPTS} came from a spare")
        return list(dict.fromkeys(load_profile(record)))  # a record is a profile, repeats aside


def _one_session(server: PgtopServer) -> int:
    """Connect, SELECT 1, Terminate; the backend's PID, once it has exited."""
    poll_until(lambda: server.backends() == [] or None, EXIT_TIMEOUT)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(os.path.join(server.socket_dir, f".s.PGSQL.{server.port}"))
        sock.sendall(startup_packet())
        read_until_ready(sock)
        (pid,) = server.backends()
        sock.sendall(message(b"Q", b"SELECT 1\0"))
        read_until_ready(sock)
        sock.sendall(message(b"X"))
    poll_until(lambda: not psutil.pid_exists(pid) or None, EXIT_TIMEOUT)
    return pid


def write_profile(keys: list[Key], path: Path = PROFILE) -> None:
    version = ".".join(map(str, sys.version_info[:2]))
    header = (
        "# The functions a backend runs, spare to exit, in the order of their first call: the\n"
        "# fork server re-creates their code objects side by side (pgtop/runtime/codelayout.py).\n"
        f"# Recorded by `python -m bench hotcode` under Python {version}; do not edit.\n"
    )
    path.write_text(header + "".join(f"{module}\t{qualname}\n" for module, qualname in keys))


def coverage(recorded: list[Key], profile: list[Key]) -> float:
    """The share of the recorded functions the profile names."""
    named = set(profile)
    return sum(key in named for key in recorded) / len(recorded) if recorded else 1.0


def main(check: bool) -> int:
    recorded = record_backend()
    committed = load_profile()
    share = coverage(recorded, committed)
    print(f"a backend ran {len(recorded)} functions; the profile names {share:.0%} of them ({len(committed)} entries)")
    if check:
        return 0 if share >= CHECK_COVERAGE else 1
    write_profile(recorded)
    print(f"wrote {PROFILE}")
    return 0
