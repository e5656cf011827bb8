"""`pgtop attach`: the dashboard over a real, running PostgreSQL server.

    pgtop attach (-D PGDATA | --pid PID | --port N [--host-dir DIR] | --spawn)
                 [--log FILE] [--readonly] [--no-confirm] [--theme THEME]

Quitting (Q) leaves an attached server running; only a `--spawn` cluster, which pgtop made,
is stopped (fast) and deleted on the way out.
"""

from __future__ import annotations

import argparse
import signal
import sys

from pgtop.arguments import port_number, positive
from pgtop.attach.locate import AttachError
from pgtop.attach.observed import describe_observed
from pgtop.attach.source import AttachSource, attach_source
from pgtop.attach.spawn import SpawnError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`pgtop attach` and its options."""
    attach = subparsers.add_parser(
        "attach",
        help="the dashboard over a real, running PostgreSQL server",
        description="Watch and drive a real PostgreSQL server (13 to 17): its children, "
        "its log and its pmState, inferred from what can be seen.",
    )
    target = attach.add_mutually_exclusive_group(required=True)
    # SUPPRESS: the same names given before the subcommand (pgtop -D ...) stay untouched.
    target.add_argument("-D", "--pgdata", metavar="PGDATA", default=argparse.SUPPRESS, help="the server's data directory (reads postmaster.pid)")
    target.add_argument("--pid", type=positive("PID"), default=argparse.SUPPRESS, help="the postmaster's PID")
    target.add_argument("--port", type=port_number, default=argparse.SUPPRESS, help="the server's port (finds its socket lock file)")
    target.add_argument("--spawn", action="store_true", default=argparse.SUPPRESS, help="a throwaway cluster in a temporary directory, removed on quit")
    attach.add_argument("--host-dir", metavar="DIR", action="append", help="socket directory to look in with --port (default /tmp and /var/run/postgresql)")
    attach.add_argument("--log", metavar="FILE", help="the server log to follow (default: current_logfiles, or the postmaster's stderr)")
    attach.add_argument("--readonly", action="store_true", default=argparse.SUPPRESS, help="watch only: keys send nothing")
    attach.add_argument("--no-confirm", action="store_true", default=argparse.SUPPRESS, help="no confirmation for destructive keys")
    attach.add_argument("--theme", default=argparse.SUPPRESS, help="dashboard theme")
    # A browser tab's viewer, run by `pgtop serve --attach`: it dies with serve.
    attach.add_argument("--served", action="store_true", help=argparse.SUPPRESS)
    return attach


def run(args: argparse.Namespace) -> int:
    """Attach, run the dashboard, leave everything as it was (a --spawn cluster removed)."""
    if args.host_dir and getattr(args, "port", None) is None:
        print("pgtop attach: --host-dir goes with --port", file=sys.stderr)
        return 2
    if getattr(args, "served", False):
        from pgtop.ui.serve import die_with_serve

        if getattr(args, "spawn", False):  # serve makes the one throwaway cluster, not a tab
            print("pgtop attach: --served does not go with --spawn", file=sys.stderr)
            return 2
        if not die_with_serve():
            return 1
    try:
        source = attach_source(args)
    except (AttachError, SpawnError) as error:
        print(f"pgtop attach: {error}", file=sys.stderr)
        return 1
    try:
        app = attach_app(source, args)
    except ValueError as error:  # an unknown theme
        source.stop()
        print(f"pgtop attach: {error}", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, lambda *_: app.exit()) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        source.start(app)
        app.run()
    except AttachError as error:
        print(f"pgtop attach: {error}", file=sys.stderr)
        return 1
    finally:
        source.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def attach_app(source: AttachSource, args: argparse.Namespace, **options: object):
    """The dashboard for this source (options such as `clock` go to PgtopApp)."""
    from pgtop.ui import app as dashboard
    from pgtop.ui.widgets.cluster_facts import ClusterFacts
    from pgtop.ui.widgets.pmstate_banner import PMStateBanner
    from pgtop.ui.widgets.status_line import StatusLine

    class AttachApp(dashboard.PgtopApp):
        """The dashboard over a real server. Q only leaves (the server keeps running)
        unless pgtop made the cluster; the top line says what was seen, and the banner and
        the facts which of their facts were observed and which inferred."""

        def __init__(self) -> None:
            super().__init__(
                source.controller,
                confirm=not getattr(args, "no_confirm", False),
                readonly=getattr(args, "readonly", False),
                theme=getattr(args, "theme", None),
                title_note=source.title_note,
                **options,
            )
            self.owns_cluster = source.owns_cluster

        def action_quit(self) -> None:
            if self.owns_cluster:
                super().action_quit()
            else:
                self.finish_quit()

        def apply_snapshot(self, snapshot) -> None:
            if not self.screen_stack:
                return  # leaving: the watcher still publishes while the screens come down
            super().apply_snapshot(snapshot)
            main = self.screen_stack[0]  # the dashboard, even under a dialog
            main.query_one(StatusLine).note = f"{source.title_note} · {describe_observed(snapshot.observed)}"
            # Attached even when nothing is observed: the tags say "inferred" then.
            main.query_one(PMStateBanner).attached = True
            main.query_one(ClusterFacts).attached = True

    return AttachApp()


def main(argv: list[str] | None = None) -> int:
    """`python -m pgtop.attach.command ...`, the same as `pgtop attach ...` (for serve)."""
    parser = argparse.ArgumentParser(prog="pgtop")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["attach", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    sys.exit(main())
