"""Connection speed, pgtop against PostgreSQL 15 in one run: `pgbench -C` (a new connection,
so a new backend, for every transaction) and persistent pgbench, both with a SELECT 1 script.

Run: python -m bench.connections [--quick] [--clients N] [--seconds S] [--rounds R]

It starts `pgtop run` and PostgreSQL 15's `postgres` (as the postgres user, on ports of their
own, data under /tmp), runs each load R times per server, alternating pgtop and PostgreSQL so a
burst of load from elsewhere on the machine hits both alike, prints median/min/max tps and the
ratio pgtop/PostgreSQL of the medians against the goals (issue 4: -C at least 50%, persistent
at least 30%), then stops both servers and removes their directories, Ctrl-C included.
`--quick` takes under a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

READY = "database system is ready to accept connections"
START_TIMEOUT = 60.0
SELECT_1 = "select 1;\n"


@dataclass(frozen=True)
class Load:
    """One pgbench load: -C or persistent, clients, seconds, and the goal ratio."""

    name: str
    connect: bool
    goal: float


LOADS = (Load("pgbench -n -C (new connection per transaction)", True, 0.5),
         Load("pgbench -n (persistent connections)", False, 0.3))  # fmt: skip


@dataclass
class Line:
    """The tps samples of one load on both servers."""

    load: Load
    pgtop: list[float]
    postgres: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.pgtop) / statistics.median(self.postgres)

    @property
    def met(self) -> bool:
        return self.ratio >= self.load.goal


# -- the servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server on a port of its own with its socket and data under a fresh /tmp directory."""

    label = "server"

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pgtop-bench-{self.label.lower()}-", dir="/tmp"))
        self.workdir.chmod(0o755)
        self.port = free_port()
        self.socket_dir = self.workdir
        self.process: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Server:
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # a Ctrl-C reaches the bench only, which then stops us
        )  # fmt: skip
        assert self.process.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT
        for line in self.process.stderr:  # the log goes to stderr until it is ready
            if READY in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} did not start within {START_TIMEOUT} s")
        else:
            raise RuntimeError(f"{self.label} exited before it was ready (exit code {self.process.wait()})")
        # Keep draining its log so it never blocks on a full pipe.
        os.set_blocking(self.process.stderr.fileno(), False)
        return self

    def postmaster_pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        """Fast shutdown and wait (SIGKILL if it hangs); remove the directory."""
        pid = self.postmaster_pid()
        if self.process is not None and self.process.poll() is None and pid is not None:
            _kill(pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                _kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


class PgtopServer(Server):
    label = "pgtop"

    def __init__(self) -> None:
        super().__init__()
        from pgtop.runtime.datadir import init_datadir

        self.datadir = self.workdir / "data"
        init_datadir(self.datadir, port=self.port)
        with open(self.datadir / "pgtop.yaml", "a") as config:
            config.write(f"unix_socket_directories: '{self.socket_dir}'\n")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pgtop", "run", "-D", str(self.datadir)]


class PostgresServer(Server):
    """PostgreSQL 15, run as the postgres user (runuser), initdb'd with trust."""

    label = "PostgreSQL"

    def __init__(self) -> None:
        super().__init__()
        self.datadir = self.workdir / "pg"
        shutil.chown(self.workdir, "postgres")
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
             "--no-sync", "--no-instructions"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def command(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--", "postgres", "-D", str(self.datadir), "-p", str(self.port),
                "-k", str(self.socket_dir), "-c", "listen_addresses=127.0.0.1", "-c", "logging_collector=off"]  # fmt: skip

    def postmaster_pid(self) -> int | None:
        """runuser's child: the postmaster's PID is line 1 of postmaster.pid."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# -- pgbench --------------------------------------------------------------------------------


def pgbench_tps(server: Server, script: Path, load: Load, clients: int, seconds: float) -> float:
    """One pgbench run over the Unix socket; its tps (with reconnection times for -C)."""
    command = ["pgbench", "-n", *(["-C"] if load.connect else []), "-c", str(clients), "-j", str(min(clients, 2)),
               "-T", str(seconds), "-f", str(script), "-h", str(server.socket_dir), "-p", str(server.port),
               "-U", "postgres", "postgres"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    found = re.search(r"^tps = ([\d.]+)", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None or failed is None or failed.group(1) != "0":
        raise RuntimeError(f"pgbench against {server.label} failed:\n{done.stdout}\n{done.stderr}")
    return float(found.group(1))


def compare(pgtop: Server, postgres: Server, *, clients: int, seconds: float, rounds: int,
            progress: bool = True) -> list[Line]:  # fmt: skip
    """Every load on both servers, `rounds` times, alternating which server goes first."""
    with tempfile.TemporaryDirectory(prefix="pgtop-bench-") as scratch:
        script = Path(scratch) / "select1.sql"
        script.write_text(SELECT_1)
        lines = [Line(load, [], []) for load in LOADS]
        for round_number in range(rounds):
            for line in lines:
                order = [(pgtop, line.pgtop), (postgres, line.postgres)]
                for server, samples in order if round_number % 2 == 0 else reversed(order):
                    samples.append(pgbench_tps(server, script, line.load, clients, seconds))
                    if progress:
                        print(f"  round {round_number + 1}: {server.label:<10} {line.load.name}: "
                              f"{samples[-1]:.1f} tps", file=sys.stderr, flush=True)  # fmt: skip
    return lines


def report(lines: list[Line], clients: int, seconds: float) -> str:
    out = [f"SELECT 1, {clients} clients, {seconds:g} s per run, {len(lines[0].pgtop)} runs per server",
           f"{'load':<48} {'server':<11} {'median':>9} {'min':>9} {'max':>9}"]  # fmt: skip
    for line in lines:
        for label, samples in (("pgtop", line.pgtop), ("PostgreSQL", line.postgres)):
            out.append(f"{line.load.name:<48} {label:<11} {statistics.median(samples):>9.1f} "
                       f"{min(samples):>9.1f} {max(samples):>9.1f}")  # fmt: skip
        verdict = "met" if line.met else "NOT met"
        out.append(f"{'':<48} ratio pgtop/PostgreSQL {line.ratio:.1%} (goal {line.load.goal:.0%}): {verdict}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.connections", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 clients, 2 s runs, 3 rounds: under a minute")
    parser.add_argument("--clients", type=int, help="pgbench -c (default 8; --quick 4)")
    parser.add_argument("--seconds", type=float, help="pgbench -T per run (default 10; --quick 2)")
    parser.add_argument("--rounds", type=int, help="runs per load and server (default 3)")
    args = parser.parse_args(argv)
    clients = args.clients or (4 if args.quick else 8)
    seconds = args.seconds or (2 if args.quick else 10)
    rounds = args.rounds or 3
    if shutil.which("pgbench") is None or shutil.which("postgres") is None:
        print("bench.connections: pgbench and postgres (PostgreSQL 15) must be on PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the servers on a kill too
    with ExitStack() as stack:
        servers = []
        for make in (PgtopServer, PostgresServer):
            server = make()
            stack.callback(server.stop)
            servers.append(server.start())
        lines = compare(*servers, clients=clients, seconds=seconds, rounds=rounds)
    print(report(lines, clients, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
