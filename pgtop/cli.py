"""The `pgtop` command: the dashboard, and init / run / ctl as initdb, postgres and pg_ctl."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from pgtop import __version__
from pgtop.arguments import port_number
from pgtop.runtime import pidfile

STOP_WAIT_SECS = 60.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgtop",
        description="PostgreSQL's postmaster as a live model: watch it and break it.",
    )
    parser.add_argument("--version", action="version", version=f"pgtop {__version__}")
    parser.add_argument("-D", "--pgdata", metavar="DIR", help="data directory (default: a per-user cluster)")
    parser.add_argument("--theme", help="dashboard theme (pgtop-dark, pgtop-light, pgtop-high-contrast, or any Textual theme)")
    parser.add_argument("--no-confirm", action="store_true", help="no confirmation for destructive keys (presenters)")
    parser.add_argument("--readonly", action="store_true", help="watch only: keys send nothing")
    parser.add_argument("--with-standby", action="store_true",
                        help="also run a streaming standby of the cluster, shown in the same dashboard (keys 1 and 2)")
    parser.add_argument("--standby-dir", metavar="DIR", help="the standby's data directory (default: DIR-standby; made on the first run)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = sub.add_parser("init", help="create a data directory, like initdb")
    init.add_argument("-D", "--pgdata", metavar="DIR", required=True)
    init.add_argument("--port", type=port_number, default=5432)
    init.add_argument("--standby-of", metavar="HOST:PORT", type=_primary,
                      help="make a standby of this running primary (a base backup over replication)")

    run = sub.add_parser("run", help="run the postmaster in the foreground, without the dashboard")
    run.add_argument("-D", "--pgdata", metavar="DIR", required=True)

    ctl = sub.add_parser("ctl", help="control a running postmaster, like pg_ctl")
    ctl.add_argument("-D", "--pgdata", metavar="DIR", required=True)
    actions = ctl.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="is it running (--json: the live state)")
    status.add_argument("--json", action="store_true")
    actions.add_parser("reload", help="send SIGHUP")
    stop = actions.add_parser("stop", help="shut down (default: fast) and wait")
    stop.add_argument("-m", "--mode", choices=("smart", "fast", "immediate", "s", "f", "i"), default="fast")
    wait = stop.add_mutually_exclusive_group()
    wait.add_argument("-w", "--wait", dest="wait", action="store_true", default=True)
    wait.add_argument("-W", "--no-wait", dest="wait", action="store_false")
    stop.add_argument("-t", "--timeout", type=float, default=STOP_WAIT_SECS)
    actions.add_parser("promote", help="promote a standby")
    actions.add_parser("logrotate", help="rotate the server log file")
    for module in dict.fromkeys(_command_modules().values()):  # serve registers view too
        module.add_parser(sub)
    return parser


def _command_modules() -> dict[str, ModuleType]:
    """Commands that live with their feature: each module has add_parser() and run()."""
    from pgtop.attach import command as attach
    from pgtop.demo import command as demo
    from pgtop.ui import serve

    return {"attach": attach, "demo": demo, "serve": serve, "view": serve}


def _primary(text: str) -> str:
    """HOST:PORT (HOST may be a socket directory or [IPv6]) as a conninfo; a conninfo as is."""
    if "=" in text or text.startswith(("postgresql://", "postgres://")):
        return text
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid primary {text!r}: expected HOST:PORT")
    if any(char in host for char in " \t'\\"):
        host = "'" + host.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"host={host} port={port}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.standby_dir and not args.with_standby:
        parser.error("--standby-dir needs --with-standby")  # exits 2 with the usage
    if args.command == "init":
        return cmd_init(args)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "ctl":
        return cmd_ctl(args)
    modules = _command_modules()
    if args.command in modules:
        return modules[args.command].run(args)
    from pgtop.ui.launch import run_dashboard

    return run_dashboard(args)


def cmd_init(args: argparse.Namespace) -> int:
    from pgtop.runtime.datadir import DataDirError, init_datadir

    try:
        summary = init_datadir(args.pgdata, port=args.port, standby_of=args.standby_of)
    except DataDirError as error:
        _fail(str(error), getattr(error, "hint", None))
        return 1
    print(f'Success. The data directory "{summary.datadir}" was created; port {summary.port}.')
    if summary.standby:
        print(f"It is a standby: it streams WAL from its primary ({args.standby_of}) once started.")
    print("You can now start the server using:\n")
    print(f"    pgtop run -D {summary.datadir}     (or: pgtop -D {summary.datadir} for the dashboard)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The postmaster in the foreground: the main thread only waits and passes signals on."""
    from pgtop.runtime.background import arm_stop_with_parent
    from pgtop.runtime.signals import SignalCatcher, block_postmaster_signals
    from pgtop.runtime.supervisor import StartupError, Supervisor

    if not arm_stop_with_parent():
        return 1  # the pgtop that started us is already gone
    block_postmaster_signals()  # before any thread exists, so every thread inherits it
    supervisor = Supervisor(args.pgdata, argv=sys.argv)
    try:
        supervisor.start()
    except StartupError as error:
        supervisor.log.write_startup_failure(error)
        return error.exit_code
    catcher = SignalCatcher(supervisor.post_signal)
    catcher.start()
    code = supervisor.wait()
    catcher.stop()
    return code if code is not None else 1


def cmd_ctl(args: argparse.Namespace) -> int:
    datadir = Path(args.pgdata)
    contents = pidfile.read(datadir)
    running = contents is not None and pidfile.postmaster_alive(contents.pid)
    if args.action == "status":
        return _ctl_status(datadir, contents, running, as_json=args.json)
    if not running or contents is None:
        _fail("no server running", prog="pgtop ctl")
        return 3 if args.action == "status" else 1
    pid = contents.pid
    if args.action == "reload":
        os.kill(pid, 1)
        print("server signaled")
        return 0
    if args.action == "promote":
        (datadir / "promote").touch()
        os.kill(pid, 10)
        print("server signaled to promote")
        return 0
    if args.action == "logrotate":
        (datadir / "logrotate").touch()
        os.kill(pid, 10)
        print("server signaled to rotate log file")
        return 0
    return _ctl_stop(datadir, pid, args)


def _ctl_status(datadir: Path, contents: pidfile.PidFileContents | None, running: bool, *, as_json: bool) -> int:
    if not running or contents is None:
        if as_json:
            print(json.dumps({"running": False}))
        else:
            print("pgtop ctl: no server running")
        return 3
    if as_json:
        from pgtop.runtime.control import request

        try:
            reply = request(datadir, {"op": "status"})
        except OSError as error:
            _fail(f"could not reach the server's control socket: {error}", prog="pgtop ctl")
            return 1
        if "error" in reply:
            _fail(reply["error"], prog="pgtop ctl")
            return 1
        print(json.dumps({"running": True, **reply["status"]}, indent=2))
        return 0
    print(f"pgtop ctl: server is running (PID: {contents.pid})")
    opts = datadir / pidfile.OPTS_FILE_NAME
    if opts.exists():
        print(opts.read_text().strip())
    return 0


def _ctl_stop(datadir: Path, pid: int, args: argparse.Namespace) -> int:
    signals = {"s": 15, "smart": 15, "f": 2, "fast": 2, "i": 3, "immediate": 3}
    os.kill(pid, signals[args.mode])
    if not args.wait:
        print("server shutting down")
        return 0
    print("waiting for server to shut down...", end="", flush=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if pidfile.read(datadir) is None or not pidfile.postmaster_alive(pid):
            print(" done\nserver stopped")
            return 0
        print(".", end="", flush=True)
        time.sleep(0.2)  # polling the pid file, as pg_ctl does
    print(" failed")
    _fail("server does not shut down", prog="pgtop ctl")
    return 1


def _fail(message: str, hint: str | None = None, *, prog: str = "pgtop") -> None:
    print(f"{prog}: {message}", file=sys.stderr)
    if hint:
        print(f"HINT:  {hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
