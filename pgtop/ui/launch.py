"""`pgtop [-D DIR]`: the dashboard with the supervisor in a background thread of the same process.

Losing the terminal (a closed window, `tmux kill-session`, a dropped ssh) is told apart from a
reload: a SIGHUP means a fast shutdown and the end of the dashboard when it comes from the
kernel (SI_KERNEL) or when the terminal is gone by the time it arrives (an interactive shell
relays the hangup to its jobs with kill(), so it looks like `kill -HUP`); any other SIGHUP
still means reload. Quitting, or losing the terminal, leaves nothing running.
"""

from __future__ import annotations

import argparse
import os
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pgtop.core.vocabulary import Shutdown, Sig
from pgtop.runtime.control import LocalController
from pgtop.runtime.signals import (
    SI_KERNEL,
    SignalCatcher,
    SignalInfo,
    block_postmaster_signals,
)
from pgtop.runtime.snapshot import CommandRefused, ShutdownMode
from pgtop.runtime.supervisor import StartupError, Supervisor

if TYPE_CHECKING:
    from pgtop.ui.app import PgtopApp

SHUTDOWN_WAIT_SECS = 60.0
HANGUP_EXIT_GRACE_SECS = 5.0  # for the dashboard to end by itself once the terminal is gone
DEFAULT_PORT = 5432


def terminal_fds() -> tuple[int, ...]:
    """The standard streams that are the dashboard's terminal (Textual reads stdin and
    draws on stderr); looked at before a hangup, after which isatty() says False."""
    fds = []
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                fds.append(fd)
        except OSError:
            continue
    return tuple(fds)


def terminal_hung_up(fds: tuple[int, ...]) -> bool:
    """After a hangup the kernel fails every terminal ioctl on the old files with EIO."""
    if not fds:
        return False
    try:
        termios.tcgetattr(fds[0])
    except (termios.error, OSError):  # termios.error is not an OSError
        return True
    return False


def detach_terminal(fds: tuple[int, ...]) -> None:
    """Point the dead terminal's streams at /dev/null: a write to a hung-up terminal fails
    with EIO, which kills Textual's writer thread and then blocks its event loop for good."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        os.dup2(devnull, fd)
    os.close(devnull)


class DashboardController:
    """The dashboard's Controller: commands go to the current postmaster as real signals;
    `start` runs a new postmaster on the same data directory after the last one exited."""

    def __init__(self, datadir: Path, terminal: tuple[int, ...] = ()) -> None:
        self.datadir = datadir
        self.terminal = terminal
        self.supervisor: Supervisor | None = None
        self.app: PgtopApp | None = None
        self._lock = threading.Lock()
        self._terminal_gone = threading.Event()
        self._cleanups: list[Callable[[], None]] = []
        self._finishing = threading.Lock()

    def launch(self) -> None:
        """Start a postmaster and wire it to the app. Raises StartupError."""
        supervisor = Supervisor(self.datadir, stderr_fd=None)
        supervisor.hangup_means_fast_shutdown = True
        if self.app is not None:
            supervisor.log.sinks.append(self.app.post_log)
            supervisor.snapshots.subscribe(self.app.post_snapshot)
        supervisor.start()
        supervisor.snapshots.start_sampling()
        with self._lock:
            self.supervisor = supervisor

    def deliver_signal(self, info: SignalInfo) -> None:
        """From the process's signal thread: the postmaster's signals go to the postmaster,
        except the hangup of our terminal."""
        if info.signo == Sig.HUP and (info.from_kernel or terminal_hung_up(self.terminal)):
            self.terminal_lost()
            return
        supervisor = self._running()
        if supervisor is not None:
            supervisor.post_signal(info)

    def terminal_lost(self) -> None:
        """Nobody is watching any more: a fast shutdown, and the dashboard ends."""
        if self._terminal_gone.is_set():
            return  # a second hangup (the shell's, then the kernel's)
        self._terminal_gone.set()
        detach_terminal(self.terminal)
        supervisor = self._running()
        if supervisor is not None:
            supervisor.post_signal(SignalInfo(int(Sig.HUP), SI_KERNEL, 0))  # the supervisor's "hangup"
        if self.app is not None:
            self.app.exit()  # thread-safe: it only posts a message; run() then closes us
        threading.Thread(target=self._leave_anyway, name="pgtop-hangup", daemon=True).start()

    def _leave_anyway(self) -> None:
        """The backstop: once the cluster is down, the process ends even if the dashboard
        is stuck on the terminal that went away (the main thread's exit ends this thread).
        What the main thread would have cleaned up is cleaned up first."""
        self.close()
        threading.Event().wait(HANGUP_EXIT_GRACE_SECS)
        self.finish()
        os._exit(0)

    def _running(self) -> Supervisor | None:
        with self._lock:
            supervisor = self.supervisor
        return supervisor if supervisor is not None and supervisor.exit_code is None else None

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
        if self._running() is not None:
            raise CommandRefused("the cluster is already running")
        try:
            self.launch()
        except StartupError as error:
            raise CommandRefused(f"could not start: {error.message}") from None
        return "postmaster started"

    def close(self) -> None:
        """Leave nothing running: a fast shutdown if needed, then wait for the exit."""
        supervisor = self._running()
        if supervisor is None:
            return
        if supervisor.state is not None and supervisor.state.shutdown < Shutdown.FAST:
            supervisor.post_signal(SignalInfo(int(Sig.INT), 0, 0))
        if supervisor.wait(SHUTDOWN_WAIT_SECS) is None:
            supervisor.post_signal(SignalInfo(int(Sig.QUIT), 0, 0))  # escalate; SIGKILL follows in 5 s
            supervisor.wait(SHUTDOWN_WAIT_SECS)

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """Something to undo at the end, after the postmaster stopped (a demo's throwaway
        directory, the standby's postmaster), newest first."""
        self._cleanups.append(cleanup)

    def finish(self) -> None:
        """close(), then every cleanup once, whoever comes first: the main thread, or the
        hangup's backstop when the dashboard stays stuck on its lost terminal. The second
        waits for the first to be done."""
        self.close()
        with self._finishing:
            while self._cleanups:
                self._cleanups.pop()()


@contextmanager
def supervised(controller: DashboardController) -> Iterator[None]:
    """The postmaster running, with the process's signals taken, for as long as the dashboard
    runs; a fast shutdown at the end. Signals must be blocked before any thread started.
    Raises StartupError."""
    controller.launch()
    catcher = SignalCatcher(controller.deliver_signal)
    catcher.start()
    try:
        yield
    finally:
        controller.finish()
        catcher.stop()


def build_dashboard(args: argparse.Namespace) -> tuple[PgtopApp, DashboardController]:
    """The app and its controller for these command-line arguments, the default cluster
    created first if it does not exist yet. Raises ValueError (an unknown theme, before
    anything is created) and DataDirError."""
    from pgtop.runtime.datadir import default_datadir, find_free_port, init_datadir
    from pgtop.ui.app import PgtopApp

    datadir = Path(args.pgdata) if args.pgdata else default_datadir()
    controller = DashboardController(datadir, terminal_fds())
    options = {"confirm": not args.no_confirm, "readonly": args.readonly, "theme": args.theme}
    if getattr(args, "with_standby", False):
        from pgtop.ui.pair import pair_app

        app = pair_app(controller, args, **options)
    else:
        app = PgtopApp(controller, **options)
    if not datadir.exists() or (args.pgdata is None and not any(datadir.iterdir())):
        port = find_free_port(DEFAULT_PORT)
        init_datadir(datadir, port=port)
        # The status line shows the directory already: the note says what is new, in few
        # words, so that a long home directory does not push the port off the line.
        app.title_note = f"created a new cluster on port {port}"
        if port != DEFAULT_PORT:
            app.title_note = f"port {DEFAULT_PORT} is taken: {app.title_note}"
    controller.app = app
    return app, controller


def run_dashboard(args: argparse.Namespace) -> int:
    block_postmaster_signals()  # before Textual or the supervisor start any thread
    from pgtop.runtime.datadir import DataDirError

    try:
        app, controller = build_dashboard(args)
    except ValueError as error:  # a bad --theme: a usage error, and nothing was created
        from pgtop.cli import build_parser

        build_parser().error(str(error))  # exits 2 with the usage
    except DataDirError as error:
        return _fail(str(error), getattr(error, "hint", None), getattr(error, "exit_code", 1))
    try:
        with supervised(controller):
            app.run()
    except StartupError as error:
        return _fail(error.message, error.hint, error.exit_code, error.detail)
    finally:
        controller.finish()  # the cleanups, when the postmaster could not even start
    return 0


def _fail(message: str, hint: str | None, code: int, detail: str | None = None) -> int:
    print(f"pgtop: {message}", file=sys.stderr)
    if detail:
        print(f"DETAIL:  {detail}", file=sys.stderr)
    if hint:
        print(f"HINT:  {hint}", file=sys.stderr)
    return code
