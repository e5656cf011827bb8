"""`pgtop serve --attach`: the dashboard over a real PostgreSQL server in web browsers.

    pgtop serve --attach (-D PGDATA | --pid PID | --pg-port N [--host-dir DIR] | --spawn)
                [--log FILE] [--port HTTP_PORT] ...

serve finds the server once, with `attach_source` as `pgtop attach` does (a bad target is one
line and exit 1 before anything is served), and every browser tab then runs an attach viewer
of its own (`python -m pgtop.attach.command --served -D PGDATA`), which follows the server,
and the next postmaster of its data directory, as `pgtop attach` does. `--spawn` makes one
throwaway cluster for all the tabs; serve, not a tab, stops and removes it when it exits.
serve's own `--port` is the HTTP port, so the server's port is `--pg-port`.
"""

from __future__ import annotations

import argparse
import sys

from pgtop.attach.source import AttachSource, attach_source

TARGETS = ("pgdata", "pid", "pg_port", "spawn")
ATTACH_ONLY = {"pid": "--pid", "pg_port": "--pg-port", "host_dir": "--host-dir", "log": "--log", "spawn": "--spawn"}


def add_options(serve: argparse.ArgumentParser) -> None:
    """serve's options for attaching (-D is serve's own: with --attach, the server's)."""
    from pgtop.arguments import port_number, positive

    group = serve.add_argument_group("attach", "serve a real PostgreSQL server, as `pgtop attach` shows it")
    group.add_argument("--attach", action="store_true", help="every tab attaches to a real server (-D PGDATA, --pid, --pg-port or --spawn)")
    group.add_argument("--pid", type=positive("PID"), help="with --attach: the postmaster's PID")
    group.add_argument("--pg-port", type=port_number, metavar="N", help="with --attach: the server's port (finds its socket lock file)")
    group.add_argument("--host-dir", metavar="DIR", action="append", help="with --pg-port: socket directory to look in")
    group.add_argument("--log", metavar="FILE", help="with --attach: the server log to follow")
    group.add_argument("--spawn", action="store_true", help="with --attach: one throwaway cluster for every tab, removed when serve stops")


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "attach", False))


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in one line (None: nothing)."""
    if not wanted(args):
        given = [flag for name, flag in ATTACH_ONLY.items() if getattr(args, name, None)]
        return f"{given[0]} goes with --attach" if given else None
    targets = [name for name in TARGETS if getattr(args, name, None)]
    if len(targets) != 1:
        return "--attach needs exactly one of -D PGDATA, --pid PID, --pg-port N, --spawn"
    if args.host_dir and args.pg_port is None:
        return "--host-dir goes with --pg-port"
    return None


def source(args: argparse.Namespace) -> AttachSource:
    """The one server every tab watches (AttachError, SpawnError: one line)."""
    return attach_source(
        argparse.Namespace(
            pgdata=args.pgdata, pid=args.pid, port=args.pg_port, host_dir=args.host_dir, log=args.log, spawn=args.spawn
        )
    )


def viewer_command(attached: AttachSource, args: argparse.Namespace) -> list[str]:
    """The argv of one tab's attach viewer: by data directory when it is known, so that a
    restarted server is followed; the log serve was told about, or the throwaway cluster's."""
    location = attached.watcher.location
    argv = [sys.executable, "-m", "pgtop.attach.command", "--served"]
    argv += ["-D", str(location.data_dir)] if location.data_dir is not None else ["--pid", str(location.pid)]
    log = attached.watcher.log_path
    if log is not None:
        argv += ["--log", str(log)]
    from pgtop.ui.serve import viewer_options

    return argv + viewer_options(args)


def describe(attached: AttachSource) -> str:
    """What serve says it serves, e.g. "attached to PostgreSQL 15, owner postgres (PID 42) in /data"."""
    location = attached.watcher.location
    where = f" in {location.data_dir}" if location.data_dir is not None else ""
    if attached.owns_cluster:
        return f"started a throwaway PostgreSQL cluster (PID {location.pid}){where}; it is removed when serve stops"
    return f"attached to {attached.title_note} (PID {location.pid}){where}"


def title(attached: AttachSource) -> str:
    location = attached.watcher.location
    return f"pgtop · {location.data_dir or f'PID {location.pid}'}"
