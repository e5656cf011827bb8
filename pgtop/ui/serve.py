"""`pgtop serve [-D DIR] [--port N]`: the dashboard in web browsers, through textual-serve.

Every browser tab gets a `pgtop view` of its own, and every view attaches to the one
`pgtop run` of DIR through its control socket: the supervisor is never started per viewer.
If no cluster runs in DIR, serve starts one in the background first (a fresh DIR is
initialised, as the dashboard does) and stops it when serve exits.

`pgtop view -D DIR`: the dashboard attached to a running cluster, in the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from pgtop.runtime import pidfile
from pgtop.runtime.control import control_socket_path, request

DEFAULT_PORT = 8000
READY_TIMEOUT = 30.0  # seconds a background postmaster may take to reach PM_RUN
STOP_TIMEOUT = 60.0
UNIX_PATH_MAX = 108  # sun_path, with its terminating zero
SHUTDOWN_GRACE = 2.0  # seconds open browser sessions get when serve stops
BACKGROUND_LOG = "serve-postmaster.log"  # under log/ in the data directory


# -- the command line -------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """`pgtop serve` and `pgtop view`."""
    serve = subparsers.add_parser("serve", help="the dashboard in web browsers, all watching one cluster")
    serve.add_argument("-D", "--pgdata", metavar="DIR", help="data directory (default: the per-user cluster)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    serve.add_argument("--host", default="localhost", help="address to listen on (default localhost)")
    serve.add_argument("--public-url", help="the URL browsers use, when it differs (a proxy)")
    _viewer_options(serve)
    view = subparsers.add_parser("view", help="the dashboard attached to a running `pgtop run`")
    view.add_argument("-D", "--pgdata", metavar="DIR", required=True)
    view.add_argument("--wait", action="store_true", help="wait for a postmaster to start instead of failing")
    _viewer_options(view)


def _viewer_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: the same options given before the subcommand are not overwritten.
    parser.add_argument("--readonly", action="store_true", default=argparse.SUPPRESS, help="watch only: keys send nothing")
    parser.add_argument("--no-confirm", action="store_true", default=argparse.SUPPRESS, help="no confirmation for destructive keys")
    parser.add_argument("--theme", default=argparse.SUPPRESS, help="dashboard theme")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 1..65535")
    return port


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


def run_view(args: argparse.Namespace) -> int:
    from pgtop.runtime.forkserver import set_parent_death_signal
    from pgtop.ui.remote import RemoteController, ViewerApp

    if args.wait:  # a browser tab's viewer, run by `pgtop serve`: it must not outlive serve
        parent = os.getppid()
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent:  # serve died before the death signal was armed
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


class BackgroundCluster:
    """A `pgtop run` that serve started, and so must stop."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.log_path = datadir / "log" / BACKGROUND_LOG
        self.log_path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pgtop", "run", "-D", str(datadir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl+C meant for serve is serve's to pass on
                preexec_fn=_fast_shutdown_if_orphaned,  # noqa: PLW1509 - no thread runs yet
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> str | None:
        """None once it is in PM_RUN (or hot standby); else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"the postmaster exited with code {self.process.returncode}: {self.last_lines()}"
            try:
                status = request(self.datadir, {"op": "status"}, timeout=1.0).get("status") or {}
            except (OSError, ValueError):
                status = {}
            if status.get("pm_state") in ("PM_RUN", "PM_HOT_STANDBY"):
                return None
            time.sleep(0.1)  # polling the control socket, with a deadline
        return f"the postmaster did not reach PM_RUN within {timeout:g} s: {self.last_lines()}"

    def last_lines(self, count: int = 3) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                return " / ".join(line.strip() for line in deque(log, count))
        except OSError:
            return "(no log)"

    def stop(self) -> int | None:
        """Fast shutdown, then immediate if it hangs; the exit code."""
        for sig, patience in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 15.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(patience)
            except subprocess.TimeoutExpired:
                continue
        return self.process.poll()


def _fast_shutdown_if_orphaned() -> None:
    """In the child before exec: if serve dies, even by SIGKILL, its cluster gets SIGINT."""
    from pgtop.runtime.forkserver import set_parent_death_signal

    set_parent_death_signal(signal.SIGINT)


def viewer_command(datadir: Path, args: argparse.Namespace) -> str:
    """The shell command textual-serve runs for each browser tab."""
    argv = [sys.executable, "-m", "pgtop.ui.serve", "view", "--wait", "-D", str(datadir)]
    if getattr(args, "readonly", False):
        argv.append("--readonly")
    if getattr(args, "no_confirm", False):
        argv.append("--no-confirm")
    if getattr(args, "theme", None):
        argv += ["--theme", args.theme]
    return shlex.join(argv)


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
        background = BackgroundCluster(datadir)
        problem = background.wait_ready()
        if problem is not None:
            background.stop()
            return _fail("serve", problem)
        print(f"pgtop serve: started the cluster in {datadir} (PID {background.process.pid}); it stops when serve does", flush=True)
    server = _server_class(Server)(
        viewer_command(datadir, args),
        host=args.host,
        port=args.port,
        title=f"pgtop · {datadir}",
        public_url=args.public_url,
    )
    try:
        server.serve()
    finally:
        if background is not None:
            code = background.stop()
            print(f"pgtop serve: the cluster in {datadir} stopped (exit code {code})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
