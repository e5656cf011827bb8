"""`pgtop serve [-D DIR] [--port N]`: the dashboard in web browsers, through textual-serve.

Every browser tab gets a `pgtop view` of its own, and every view attaches to the one
`pgtop run` of DIR through its control socket: the supervisor is never started per viewer.
If no cluster runs in DIR, serve starts one in the background first (a fresh DIR is
initialised, as the dashboard does) and stops it when serve exits.

`pgtop serve --attach -D PGDATA` (or --pid, --pg-port, --spawn) serves a real PostgreSQL
server instead: every tab runs an attach viewer (see `pgtop.attach.served`).

A tab's viewer is serve's own child (the shell textual-serve starts it with execs it), so
its parent-death signal, SIGTERM, comes when serve dies, even by SIGKILL; Textual's web
driver turns a SIGTERM into a clean exit, and closing the tab sends it a quit message.

`pgtop view -D DIR`: the dashboard attached to a running cluster, in the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
from pathlib import Path

from pgtop.arguments import port_number
from pgtop.runtime import pidfile
from pgtop.runtime.background import BackgroundCluster
from pgtop.runtime.control import control_socket_path

DEFAULT_PORT = 8000
READY_TIMEOUT = 30.0  # seconds a background postmaster may take to reach PM_RUN
UNIX_PATH_MAX = 108  # sun_path, with its terminating zero
SHUTDOWN_GRACE = 2.0  # seconds open browser sessions get when serve stops
BACKGROUND_LOG = "serve-postmaster.log"  # under log/ in the data directory


# -- the command line -------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """`pgtop serve` and `pgtop view`."""
    from pgtop.attach import served

    serve = subparsers.add_parser("serve", help="the dashboard in web browsers, all watching one cluster")
    serve.add_argument("-D", "--pgdata", metavar="DIR", help="data directory (default: the per-user cluster; with --attach: the real server's)")
    serve.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    serve.add_argument("--host", default="localhost", help="address to listen on (default localhost)")
    serve.add_argument("--public-url", help="the URL browsers use, when it differs (a proxy)")
    _viewer_options(serve)
    served.add_options(serve)
    view = subparsers.add_parser("view", help="the dashboard attached to a running `pgtop run`")
    view.add_argument("-D", "--pgdata", metavar="DIR", required=True)
    view.add_argument("--wait", action="store_true", help="wait for a postmaster to start instead of failing")
    _viewer_options(view)


def _viewer_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: the same options given before the subcommand are not overwritten.
    parser.add_argument("--readonly", action="store_true", default=argparse.SUPPRESS, help="watch only: keys send nothing")
    parser.add_argument("--no-confirm", action="store_true", default=argparse.SUPPRESS, help="no confirmation for destructive keys")
    parser.add_argument("--theme", default=argparse.SUPPRESS, help="dashboard theme")


def run(args: argparse.Namespace) -> int:
    if args.command == "view":
        return run_view(args)
    return run_serve(args)


def main(argv: list[str] | None = None) -> int:
    """`python -m pgtop.ui.serve serve|view ...`, the same as `pgtop serve|view`."""
    parser = argparse.ArgumentParser(prog="pgtop")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


def _fail(command: str, message: str) -> int:
    print(f"pgtop {command}: {message}", file=sys.stderr)
    return 1


# -- view -------------------------------------------------------------------------------------


def running_postmaster(datadir: Path) -> int | None:
    """The PID of the postmaster running in `datadir`, if one is."""
    contents = pidfile.read(datadir)
    if contents is None:
        return None
    try:
        os.kill(contents.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return contents.pid


def die_with_serve() -> bool:
    """In a browser tab's viewer: SIGTERM when serve, its parent, dies. False if serve died
    before the death signal was armed (then the viewer must not start)."""
    from pgtop.runtime.forkserver import set_parent_death_signal

    parent = os.getppid()
    set_parent_death_signal(signal.SIGTERM)
    return os.getppid() == parent


def run_view(args: argparse.Namespace) -> int:
    from pgtop.ui.remote import RemoteController, ViewerApp

    if args.wait and not die_with_serve():  # a browser tab's viewer: never outlives serve
        return 1

    datadir = Path(args.pgdata).absolute()
    if not (datadir / "pgtop.yaml").exists():
        return _fail("view", f"{datadir} is not a pgtop data directory (no pgtop.yaml)")
    if len(os.fsencode(control_socket_path(datadir))) >= UNIX_PATH_MAX:
        return _fail("view", f"{datadir} is too long a path for its control socket ({UNIX_PATH_MAX - 1} bytes at most)")
    if running_postmaster(datadir) is None and not args.wait:
        return _fail("view", f"no server running in {datadir} (start one with: pgtop run -D {datadir})")
    controller = RemoteController(datadir)
    try:
        app = ViewerApp(
            controller,
            confirm=not getattr(args, "no_confirm", False),
            readonly=getattr(args, "readonly", False),
            theme=getattr(args, "theme", None),
            title_note=f"viewer of the cluster in {datadir}",
        )
    except ValueError as error:  # an unknown theme
        return _fail("view", str(error))
    controller.attach(app)
    try:
        app.run()
    finally:
        controller.close()
    return 0


# -- serve ------------------------------------------------------------------------------------


def viewer_command(datadir: Path, args: argparse.Namespace) -> str:
    """The shell command textual-serve runs for each browser tab."""
    argv = [sys.executable, "-m", "pgtop.ui.serve", "view", "--wait", "-D", str(datadir)]
    return tab_command(argv + viewer_options(args))


def viewer_options(args: argparse.Namespace) -> list[str]:
    """serve's dashboard options, passed on to every tab's viewer."""
    options = []
    if getattr(args, "readonly", False):
        options.append("--readonly")
    if getattr(args, "no_confirm", False):
        options.append("--no-confirm")
    if getattr(args, "theme", None):
        options += ["--theme", args.theme]
    return options


def tab_command(argv: list[str]) -> str:
    """textual-serve runs a tab's command through /bin/sh, which (dash) would stay as the
    viewer's parent: its parent-death signal would then wait for the shell, which outlives a
    killed serve. `exec` makes the viewer serve's own child."""
    return f"exec {shlex.join(argv)}"


def _server_class(server: type) -> type:
    """textual-serve's Server, except that stopping it does not wait up to a minute for the
    browser tabs still open: their sessions are cut after SHUTDOWN_GRACE seconds."""
    from aiohttp import web

    class PgtopServer(server):  # type: ignore[misc, valid-type]
        def serve(self, debug: bool = False) -> None:
            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            web.run_app(
                self._make_app(),  # textual-serve's own application, routes and all
                host=self.host,
                port=self.port,
                handle_signals=False,
                loop=loop,
                print=lambda *args: None,
                shutdown_timeout=SHUTDOWN_GRACE,
            )

    return PgtopServer


def run_serve(args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        return _fail("serve", "textual-serve is not installed (pip install textual-serve)")
    from pgtop.attach import served

    problem = served.usage_problem(args)
    if problem is not None:
        print(f"pgtop serve: {problem}", file=sys.stderr)
        return 2
    if served.wanted(args):
        return _serve_attached(Server, args)
    return _serve_cluster(Server, args)


def _serve(server: type, command: str, title: str, args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM."""
    _server_class(server)(command, host=args.host, port=args.port, title=title, public_url=args.public_url).serve()


def _serve_cluster(server: type, args: argparse.Namespace) -> int:
    """Every tab a `pgtop view` of the one `pgtop run` of DIR (started here if none runs)."""
    from pgtop.runtime.datadir import (
        DataDirError,
        default_datadir,
        find_free_port,
        init_datadir,
    )

    datadir = (Path(args.pgdata) if args.pgdata else default_datadir()).absolute()
    if not (datadir / "pgtop.yaml").exists():
        try:
            init_datadir(datadir, port=find_free_port(5432))
        except DataDirError as error:
            return _fail("serve", str(error))
        print(f"pgtop serve: created a cluster in {datadir}", flush=True)
    background = None
    if running_postmaster(datadir) is None:
        background = BackgroundCluster(datadir, datadir / "log" / BACKGROUND_LOG)
        background.start()  # here, on the main thread: its death signal is tied to this thread
        problem = background.wait_ready(READY_TIMEOUT)
        if problem is not None:
            background.stop()
            return _fail("serve", problem)
        print(f"pgtop serve: started the cluster in {datadir} (PID {background.process.pid}); it stops when serve does", flush=True)
    try:
        _serve(server, viewer_command(datadir, args), f"pgtop · {datadir}", args)
    finally:
        if background is not None:
            code = background.stop()
            print(f"pgtop serve: the cluster in {datadir} stopped (exit code {code})", flush=True)
    return 0


def _serve_attached(server: type, args: argparse.Namespace) -> int:
    """Every tab an attach viewer of the one real server; a --spawn cluster is serve's."""
    from pgtop.attach import served
    from pgtop.attach.locate import AttachError
    from pgtop.attach.spawn import SpawnError

    # Until the server's loop takes SIGTERM over, SIGTERM unwinds through the `finally`s: a
    # throwaway cluster (pg_ctl daemonises it, so it would not die with serve) is removed.
    signal.signal(signal.SIGTERM, _leave)
    try:
        source = served.source(args)
    except (AttachError, SpawnError) as error:
        return _fail("serve", str(error))
    try:
        print(f"pgtop serve: {served.describe(source)}", flush=True)
        _serve(server, tab_command(served.viewer_command(source, args)), served.title(source), args)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup is bounded: let it finish
        source.stop()
    if source.owns_cluster:
        print("pgtop serve: the throwaway cluster stopped and was removed", flush=True)
    return 0


def _leave(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
