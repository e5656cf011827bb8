"""`pgtop demo [NAME]`: without a name, the scenarios one line each; with one, play it in the
dashboard on a throwaway cluster (`--headless`: no terminal, every expectation checked, a
report on stdout, exit 1 if one failed)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from pgtop.demo.loader import ScenarioError, load_scenario
from pgtop.demo.scenario import Scenario

HEADLESS_SIZE = (160, 48)


def demo_dir() -> Path:
    """The repository's `demo/` directory of scenario files."""
    return Path(__file__).resolve().parent.parent.parent / "demo"


def scenario_paths(directory: Path | None = None) -> list[Path]:
    return sorted((directory or demo_dir()).glob("*.yaml"))


def find_scenario(name: str, directory: Path | None = None) -> Path:
    """A scenario by name (the file demo/NAME.yaml) or by path. Raises ScenarioError."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    path = (directory or demo_dir()) / f"{name}.yaml"
    if not path.exists():
        raise ScenarioError(f"no scenario named {name!r}; `pgtop demo` lists them")
    return path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="play a presentation scenario on a throwaway cluster (no NAME: list them)",
        description="Play a scripted presentation in the dashboard, on a cluster made for it.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="a scenario name (see the list) or a .yaml file")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--headless", action="store_true", help="no terminal: play straight through and check every expectation")
    pace.add_argument("--auto", action="store_true", help="pauses last a few seconds instead of waiting for a key")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        return list_scenarios()
    try:
        scenario = load_scenario(find_scenario(args.name))
    except ScenarioError as error:
        print(f"pgtop demo: {error}", file=sys.stderr)
        return 2
    if scenario.needs_clients and importlib.util.find_spec("psycopg") is None:
        print(f"pgtop demo: {scenario.name} needs psycopg for its clients: pip install 'psycopg[binary]'", file=sys.stderr)
        return 1
    pace = "headless" if args.headless else "auto" if args.auto else "stage"
    return play(scenario, pace, theme=getattr(args, "theme", None))


def list_scenarios(directory: Path | None = None) -> int:
    scenarios, broken = [], []
    for path in scenario_paths(directory):
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as error:
            broken.append(str(error))
    width = max((len(s.name) for s in scenarios), default=0)
    for scenario in scenarios:
        print(f"{scenario.name:<{width}}  {scenario.summary}")
    for line in broken:
        print(f"pgtop demo: {line}", file=sys.stderr)
    if not scenarios and not broken:
        print(f"pgtop demo: no scenario files in {directory or demo_dir()}", file=sys.stderr)
    return 1 if broken or not scenarios else 0


def play(scenario: Scenario, pace: str, *, theme: str | None = None) -> int:
    """Play in this process: signals blocked first (the supervisor takes them), the cluster
    made, the dashboard run; everything is stopped and removed at the end."""
    from pgtop.runtime.signals import SignalCatcher, block_postmaster_signals

    block_postmaster_signals()  # before any thread starts, so every thread inherits it
    from pgtop.demo.app import DemoApp
    from pgtop.demo.observer import Observer
    from pgtop.demo.stage import DemoController, PrimaryCluster, ThrowawayCluster
    from pgtop.runtime.snapshot import CommandRefused
    from pgtop.ui.launch import terminal_fds

    primary = PrimaryCluster() if "standby" in scenario.needs else None
    cluster = None
    try:
        if primary is not None:
            primary.start()
        cluster = ThrowawayCluster(scenario.settings, standby_of=primary.conninfo if primary else None)
        observer = Observer()
        terminal = terminal_fds() if pace != "headless" else ()  # a closed terminal: fast shutdown
        controller = DemoController(cluster, observer, terminal)
        report = _print_report if pace == "headless" else None
        app = DemoApp(controller, observer, scenario, pace=pace, theme=theme, report=report)
    except (CommandRefused, ValueError, OSError) as error:  # no primary, an unknown theme, a full disk
        print(f"pgtop demo: {error}", file=sys.stderr)
        _remove(cluster, primary)
        return 1
    controller.app = app
    controller.add_cleanup(lambda: _remove(cluster, primary))  # by the hangup's backstop too
    catcher = SignalCatcher(controller.deliver_signal)
    catcher.start()
    try:
        if pace == "headless":
            print(f"playing {scenario.name} headless: {scenario.summary}", flush=True)
            app.run(headless=True, size=HEADLESS_SIZE)
        else:
            app.run()
    finally:
        app.player.stop()
        controller.finish()
        catcher.stop()
    return 0 if pace != "headless" or app.player.passed else 1


def _remove(cluster: object | None, primary: object | None) -> None:
    if cluster is not None:
        cluster.remove()  # type: ignore[attr-defined]
    if primary is not None:
        primary.stop()  # type: ignore[attr-defined]


def _print_report(line: str) -> None:
    """Live, so a slow step shows where it is; Textual does not own this stream."""
    stream = sys.__stdout__
    if stream is not None:
        stream.write(line + "\n")
        stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgtop")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["demo", *(argv if argv is not None else sys.argv[1:])]))
