"""`pgtop [-D DIR]`: the dashboard with the supervisor in a background thread of the same process.

Losing the terminal (a closed window, `tmux kill-session`, a dropped ssh) is told apart from a
reload: the kernel's hangup signal (SI_KERNEL) means a fast shutdown, a `kill -HUP` from a
process still means reload. Quitting, or losing the terminal, leaves nothing running.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from pgtop.core.vocabulary import Shutdown, Sig
from pgtop.runtime.control import LocalController
from pgtop.runtime.signals import SignalCatcher, SignalInfo, block_postmaster_signals
from pgtop.runtime.snapshot import CommandRefused, ShutdownMode
from pgtop.runtime.supervisor import StartupError, Supervisor

SHUTDOWN_WAIT_SECS = 60.0


class DashboardController:
    """The dashboard's Controller: commands go to the current postmaster as real signals;
    `start` runs a new postmaster on the same data directory after the last one exited."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.supervisor: Supervisor | None = None
        self.app: object | None = None
        self._lock = threading.Lock()

    def launch(self) -> None:
        """Start a postmaster and wire it to the app. Raises StartupError."""
        supervisor = Supervisor(self.datadir, stderr_fd=None)
        supervisor.hangup_means_fast_shutdown = True
        if self.app is not None:
            supervisor.log.sinks.append(self.app.post_log)  # type: ignore[attr-defined]
            supervisor.snapshots.subscribe(self.app.post_snapshot)  # type: ignore[attr-defined]
        supervisor.start()
        supervisor.snapshots.start_sampling()
        with self._lock:
            self.supervisor = supervisor

    def deliver_signal(self, info: SignalInfo) -> None:
        """From the process's signal thread: the postmaster's signals go to the postmaster."""
        with self._lock:
            supervisor = self.supervisor
        if supervisor is not None and supervisor.exit_code is None:
            supervisor.post_signal(info)

    def _local(self) -> LocalController:
        if self.supervisor is None:
            raise CommandRefused("the postmaster is not running")
        return LocalController(self.supervisor)

    def reload(self) -> None:
        self._local().reload()

    def shutdown(self, mode: ShutdownMode) -> None:
        self._local().shutdown(mode)

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        self._local().signal_child(pid, started_at, signal)

    def promote(self) -> None:
        self._local().promote()

    def logrotate(self) -> None:
        self._local().logrotate()

    def start(self) -> str:
        if self.supervisor is not None and self.supervisor.exit_code is None:
            raise CommandRefused("the cluster is already running")
        try:
            self.launch()
        except StartupError as error:
            raise CommandRefused(f"could not start: {error.message}") from None
        return "postmaster started"

    def close(self) -> None:
        """Leave nothing running: a fast shutdown if needed, then wait for the exit."""
        supervisor = self.supervisor
        if supervisor is None or supervisor.exit_code is not None:
            return
        if supervisor.state is not None and supervisor.state.shutdown < Shutdown.FAST:
            supervisor.post_signal(SignalInfo(int(Sig.INT), 0, 0))
        if supervisor.wait(SHUTDOWN_WAIT_SECS) is None:
            supervisor.post_signal(SignalInfo(int(Sig.QUIT), 0, 0))  # escalate; SIGKILL follows in 5 s
            supervisor.wait(SHUTDOWN_WAIT_SECS)


def run_dashboard(args: argparse.Namespace) -> int:
    block_postmaster_signals()  # before Textual or the supervisor start any thread
    from pgtop.runtime.datadir import default_datadir, find_free_port, init_datadir
    from pgtop.ui.app import PgtopApp

    note = None
    datadir = Path(args.pgdata) if args.pgdata else default_datadir()
    if not datadir.exists() or (args.pgdata is None and not any(datadir.iterdir())):
        port = find_free_port(5432)
        init_datadir(datadir, port=port)
        note = f"created a cluster in {datadir} on port {port}"
        if port != 5432:
            note = f"port 5432 is taken: {note}"
    controller = DashboardController(datadir)
    app = PgtopApp(
        controller,
        confirm=not args.no_confirm,
        readonly=args.readonly,
        theme=args.theme,
        title_note=note,
    )
    controller.app = app
    try:
        controller.launch()
    except StartupError as error:
        print(f"pgtop: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"HINT:  {error.hint}", file=sys.stderr)
        return error.exit_code
    catcher = SignalCatcher(controller.deliver_signal)
    catcher.start()
    try:
        app.run()
    finally:
        controller.close()
        catcher.stop()
    return 0
