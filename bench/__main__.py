"""`python -m bench [--quick]`: pgtop, PostgreSQL 15 and supervisord side by side;
`python -m bench soak --minutes N`: the chaos soak; `python -m bench hotcode`: the fork
server's code profile. See bench/README.md."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from pgtop.arguments import positive

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials: the whole run takes under 3 minutes")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write every figure and its samples as JSON")
    parser.add_argument("--no-install", action="store_true", help="do not pip-install supervisor if it is missing (skip that line)")
    parser.add_argument("--no-dashboard", action="store_true", help="skip the dashboard lines (no tmux needed)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    soak = sub.add_parser("soak", help="the chaos soak against one pgtop cluster")
    soak.add_argument("--minutes", type=positive("number of minutes", float), default=2.0, help="how long the chaos lasts (default 2)")
    soak.add_argument("--seed", type=int, help="replay the choices of an earlier run")
    soak.add_argument("--clients", type=int, default=4, help="INSERT threads (default 4)")
    soak.add_argument("--max-actions", type=int, default=5000, help="upper bound on chaos actions")
    soak.add_argument("--include-fork-server", action="store_true", help="also signal pgtop's fork server and its spare child")
    soak.add_argument("-v", "--verbose", action="store_true", help="print each action and quiet sample as it happens")
    hotcode = sub.add_parser("hotcode", help="record the fork server's code profile from a real backend")
    hotcode.add_argument("--check", action="store_true", help="only say how much of it the committed profile covers (exit 1 below 90%%)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C, SIGTERM or SIGHUP: unwind, so every server is stopped and its directory
    removed on the way out; further signals are ignored so they cannot cut that short (every
    step of the clean-up has its own deadline)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    try:
        if args.command == "soak":
            return soak(args)
        if args.command == "hotcode":
            from bench.hotcode import main as hotcode

            return hotcode(args.check)
        return benchmark(args)
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped and removed", file=sys.stderr)
        return 130


def benchmark(args: argparse.Namespace) -> int:
    from bench.report import summary_table, to_json
    from bench.suite import Plan, Run

    run = Run(Plan.for_mode(args.quick), install=not args.no_install, dashboard=not args.no_dashboard)
    figures = run.execute()
    print("\nsummary (pgtop/PostgreSQL are ratios of medians)\n")
    print(summary_table(figures))
    if args.json:
        args.json.write_text(to_json(figures))
    return 0


def soak(args: argparse.Namespace) -> int:
    from bench.soak import SoakOptions, run_soak

    result = run_soak(SoakOptions(
        minutes=args.minutes, seed=args.seed, clients=args.clients, max_actions=args.max_actions,
        include_fork_server=args.include_fork_server, verbose=args.verbose,
    ))
    print(result.render())
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
