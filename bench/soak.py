"""The chaos soak: `python -m bench soak --minutes N`, also called from tests/soak.

For N minutes, against one `pgtop run` cluster under INSERT load: random signals to random
children (kill -9, -TERM, -STOP with a -CONT soon after, -CONT) and to the postmaster (mostly
SIGHUP; now and then a smart, fast or immediate shutdown, after which it is started again),
and random reloads of a good or a broken pgtop.yaml. Bounded in time and in count, localhost
only, reproducible from its seed.

Afterwards: the cluster is ready again; every committed row is there; then it is stopped and
nothing is left (no zombie, no orphan, no pgtop /dev/shm entry, no socket or lock file); and
the postmaster's fd count and RSS, sampled at quiet moments, did not grow.

Shutdowns of the postmaster, and signals to the startup process (an unexpected exit of the
startup process makes the postmaster exit, PostgreSQL's too), happen only in the first 40% of
the run, so the last postmaster lives long enough for its first and last quiet samples to be
compared.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import soak_checks as checks
from bench.proctable import PGTOP_HELPERS, children_of, poll_until, titled_children
from bench.servers import PgtopServer
from bench.soak_load import Load
from bench.soak_report import SoakResult

STOP_WINDOW = 0.4  # postmaster shutdowns only in this first fraction of the run
QUIET_EVERY = 10.0  # seconds between two quiet samples of the postmaster
READY_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 30.0
GOOD_CHOICES = {
    "bgwriter_delay": [50, 200, 500],
    "wal_writer_delay": [50, 200],
    "autovacuum_naptime": [5, 30, 60],
    "checkpoint_timeout": [30, 300],
    "log_checkpoints": [True, False],
}
BROKEN_LINES = [
    "bgwriter_delay: banana",  # a value of the wrong type
    "wal_writer_delay: [unclosed",  # not YAML
    "no_such_parameter: 1",  # unknown
    "bgwriter_delay: 1",  # out of range (10..10000)
]
CHILD_SIGNALS = [(signal.SIGKILL, 35), (signal.SIGTERM, 35), (signal.SIGSTOP, 15), (signal.SIGCONT, 15)]
THROTTLED = frozenset({"stats collector"})
CRASHING_KINDS = ("walwriter", "checkpointer", "background writer", "autovacuum launcher")  # a kill -9 of one is a crash
HOLD_SECS = 7.0  # a frozen child is held past the postmaster's 5 s SIGKILL escalation
ABORTED_STARTUP = "aborting startup due to startup process failure"
SHUTDOWNS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


@dataclass
class SoakOptions:
    """What `python -m bench soak` accepts."""

    minutes: float = 2.0
    seed: int | None = None
    clients: int = 4
    max_actions: int = 5000
    include_fork_server: bool = False  # its death cripples pgtop today: see bench/README.md
    verbose: bool = False
    echo: Callable[[str], None] = field(default=print)


class Soak:
    def __init__(self, options: SoakOptions) -> None:
        self.options = options
        self.seed = options.seed if options.seed is not None else random.randrange(2**31)
        self.rng = random.Random(self.seed)
        self.server = PgtopServer(max_connections=50)
        self.settings = {name: choices[1 % len(choices)] for name, choices in GOOD_CHOICES.items()}
        self.pristine_config = (self.server.datadir / "pgtop.yaml").read_text().rstrip("\n")
        self.result = SoakResult(seed=self.seed)
        self.seen: dict[int, float] = {}  # every process of every postmaster: pid -> start time
        self.instance: dict[int, float] = {}  # the current postmaster's processes
        self.stopped: dict[int, float] = {}  # SIGSTOPped pid -> when to SIGCONT it
        self.startup_killed = False  # this postmaster's startup process got SIGKILL/SIGTERM from us
        self.held_until = 0.0  # a child frozen across a crash stays frozen until then
        self.logs = []
        self.began = time.monotonic()
        self.shutdowns_left = max(1, round(3 * options.minutes))
        self.shm_used: set[str] = set()  # /dev/shm entries our processes were seen using
        self.quiet_every = min(QUIET_EVERY, options.minutes * 60 / 6)

    def _say(self, text: str) -> None:
        if self.options.verbose:
            self.options.echo(f"soak {time.monotonic() - self.began:6.1f} s: {text}")

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> SoakResult:
        load: Load | None = None
        try:
            self._start()
            load = Load(str(self.server.socket_dir), self.server.port, self.options.clients, self.seed)
            load.create_table()
            load.start()
            self._quiet_sample(load)
            self._chaos(load)
            self._recover()
            self._quiet_sample(load)
            stuck = load.stop()
            self.result.check("client threads all finished", not stuck, ", ".join(stuck) or "yes")
            problems = load.verify()
            self.result.check("every committed row present, nothing else", not problems, "; ".join(problems) or
                              f"{load.committed} committed rows present ({load.uncertain} uncertain)")
            zombies = checks.lingering_zombies(self.server.postmaster_pid)
            self.result.check("no zombie child while running", not zombies, str(zombies or "none"))
        except Exception as error:  # noqa: BLE001 - whatever broke, the soak stops the cluster and reports
            self.result.check("soak ran to the end", False, repr(error))
        finally:
            if load is not None:
                load.stop(5)
                self.result.committed, self.result.uncertain = load.committed, load.uncertain
                self.result.client_errors = load.errors
            try:
                self._final_stop()
            finally:
                self.server.stop()  # SIGKILLs whatever is left, removes the directory
        self.result.seconds = time.monotonic() - self.began
        return self.result

    def _chaos(self, load: Load) -> None:
        minutes = self.options.minutes
        deadline = self.began + minutes * 60
        stop_window_end = self.began + minutes * 60 * STOP_WINDOW
        next_quiet = time.monotonic() + self.quiet_every
        while time.monotonic() < deadline and sum(self.result.actions.values()) < self.options.max_actions:
            self._watch()
            self._act(time.monotonic() < stop_window_end)
            if time.monotonic() >= next_quiet:
                self._quiet_sample(load)
                next_quiet = time.monotonic() + self.quiet_every
            time.sleep(self.rng.uniform(0.05, 0.5))  # the chaos's own pace

    def _act(self, may_stop_postmaster: bool) -> None:
        roll = self.rng.random()
        if may_stop_postmaster and self.shutdowns_left and roll < 0.06:
            self.shutdowns_left -= 1
            self._shutdown_and_restart(self.rng.choice(list(SHUTDOWNS)))
        elif roll < 0.52:
            self._signal_child(spare_startup=not may_stop_postmaster)
        elif roll < 0.55:
            self._freeze_across_crash()
        elif roll < 0.80:
            self._note("postmaster SIGHUP")
            self._signal_postmaster(signal.SIGHUP)
        else:
            self._reload(broken=self.rng.random() < 0.4)

    def _write_config(self, broken_line: str | None = None) -> None:
        """pgtop.yaml as made by pgtop init, the soak's current settings, and maybe one
        broken line."""
        lines = [self.pristine_config, *(f"{name}: {_yaml(value)}" for name, value in self.settings.items())]
        (self.server.datadir / "pgtop.yaml").write_text("\n".join([*lines, broken_line or ""]) + "\n")

    def _note(self, action: str) -> None:
        self.result.actions[action] += 1
        self._say(action)

    def _signal_postmaster(self, sig: int) -> None:
        pid = self.server.postmaster_pid
        if pid <= 0:  # os.kill(0, ...) would signal our own process group
            raise RuntimeError("no postmaster to signal")
        os.kill(pid, sig)

    # -- actions ----------------------------------------------------------------------------

    def _signal_child(self, spare_startup: bool) -> None:
        """A random signal to a random child. Killing the startup process makes the
        postmaster exit (as PostgreSQL's), so it is spared once postmaster exits are over."""
        targets = {
            pid: title for pid, title in titled_children(self.server.postmaster_pid).items()
            if title.startswith("pgtop: ")
            and (self.options.include_fork_server or not title.endswith(PGTOP_HELPERS))
            and not (spare_startup and title.startswith("pgtop: startup"))
        }
        if not targets:
            return
        pid = self.rng.choice(sorted(targets))
        sig = self.rng.choices([s for s, _ in CHILD_SIGNALS], [w for _, w in CHILD_SIGNALS])[0]
        self._note(f"child {signal.Signals(sig).name}")
        if targets[pid].startswith("pgtop: startup") and sig in (signal.SIGKILL, signal.SIGTERM):
            self.startup_killed = True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return  # gone in the meantime: an ordinary event
        if sig == signal.SIGSTOP:
            self.stopped[pid] = time.monotonic() + self.rng.uniform(0.2, 2.0)
        elif sig in (signal.SIGCONT, signal.SIGKILL):
            self.stopped.pop(pid, None)

    def _freeze_across_crash(self) -> None:
        """SIGSTOP one auxiliary process and kill -9 another: the crash cycle cannot finish
        until the postmaster's SIGKILL escalation, 5 s later, ends the frozen one."""
        aux = self.server.aux()
        victims = sorted(kind for kind in CRASHING_KINDS if kind in aux)
        if not victims:
            return
        victim = self.rng.choice(victims)
        others = sorted(kind for kind in aux if kind not in (victim, "startup"))
        if not others:
            return
        frozen = aux[self.rng.choice(others)]
        self._note("child SIGSTOP held across a crash (SIGKILL escalation)")
        try:
            os.kill(frozen, signal.SIGSTOP)
            os.kill(aux[victim], signal.SIGKILL)
        except ProcessLookupError:
            return
        self.held_until = time.monotonic() + HOLD_SECS
        self.stopped[frozen] = self.held_until  # SIGCONT only after the escalation

    def _reload(self, broken: bool) -> None:
        name = self.rng.choice(list(GOOD_CHOICES))
        self.settings[name] = self.rng.choice(GOOD_CHOICES[name])
        self._write_config(self.rng.choice(BROKEN_LINES) if broken else None)
        self._note("reload, broken pgtop.yaml" if broken else "reload, good pgtop.yaml")
        self._signal_postmaster(signal.SIGHUP)

    def _shutdown_and_restart(self, mode: str) -> None:
        self._note(f"postmaster {mode} shutdown + restart")
        self._continue_all()
        process = self.server.process
        assert process is not None
        self._signal_postmaster(SHUTDOWNS[mode])
        try:
            process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.result.check(f"{mode} shutdown finished within {SHUTDOWN_TIMEOUT:.0f} s", False, "escalated to immediate")
            self._signal_postmaster(signal.SIGQUIT)
            process.wait(SHUTDOWN_TIMEOUT)
        self._after_postmaster_exit(f"after {mode} shutdown", process.returncode)
        self._start()

    # -- keeping watch ------------------------------------------------------------------------

    def _watch(self) -> None:
        """Remember new processes, SIGCONT the ones due, and notice an unexpected exit."""
        fresh = [pid for pid in children_of(self.server.postmaster_pid) if pid not in self.instance]
        known = checks.identify(fresh)
        self.instance.update(known)
        self.seen.update(known)
        now = time.monotonic()
        for pid in [pid for pid, due in self.stopped.items() if due <= now]:
            self._cont(pid)
        process = self.server.process
        if process is not None and process.poll() is not None:
            if self.startup_killed and self.server.log and self.server.log.find(ABORTED_STARTUP):
                # reaper: an unexpected exit of the startup process in PM_STARTUP is
                # catastrophic, for PostgreSQL's postmaster too; the soak caused it.
                self._note("postmaster exit: the soak killed its startup process (PostgreSQL's exits too)")
                self._after_postmaster_exit("after the startup process was killed", process.returncode)
                self._start()
                return
            tail = " | ".join(self.server.log.text().splitlines()[-12:]) if self.server.log else ""
            self.result.check("the postmaster never went down on its own", False,
                              f"it exited with code {process.returncode}; its last lines: {tail}", repeatable=True)
            self._after_postmaster_exit("after an unexpected exit", process.returncode)
            self._start()

    def _cont(self, pid: int) -> None:
        self.stopped.pop(pid, None)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def _continue_all(self) -> None:
        """SIGCONT every frozen child, once any freeze held for the escalation is over."""
        wait = self.held_until - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the escalation this freeze is for is due within that time
        for pid in list(self.stopped):
            self._cont(pid)

    def _start(self) -> None:
        self._write_config()  # never start on a broken file
        self.server.start()
        self.logs.append(self.server.log)
        self.startup_killed = False
        self.instance = checks.identify([self.server.postmaster_pid, *children_of(self.server.postmaster_pid)])
        self.seen.update(self.instance)

    def _ready(self) -> bool:
        """PM_RUN (from `pgtop ctl status --json`'s source) with every auxiliary process
        running, except a stats collector held back by its restart throttle (at most one
        start a minute, as PostgreSQL's pgstat_start)."""
        from pgtop.runtime.control import request

        try:
            status = request(self.server.datadir, {"op": "status"})["status"]
        except (OSError, KeyError, ValueError):
            return False
        return status["pm_state"] == "PM_RUN" and self.server.expected_aux - THROTTLED <= self.server.aux().keys()

    def _recover(self) -> None:
        """The chaos is over: thaw everything, load a good pgtop.yaml, wait until ready."""
        self._continue_all()
        self._write_config()
        self._signal_postmaster(signal.SIGHUP)
        try:
            poll_until(lambda: True if self._ready() else None, READY_TIMEOUT, 0.05)
            ok, detail = True, "PM_RUN with every auxiliary process running (the stats collector may wait for its throttle)"
        except TimeoutError:
            ok, detail = False, f"not ready within {READY_TIMEOUT:.0f} s"
        self.result.check("cluster ready again after the chaos", ok, detail)

    def _quiet_sample(self, load: Load) -> None:
        """Pause the clients, wait for a settled cluster, sample the postmaster, resume."""
        self._continue_all()
        try:
            if not load.pause():
                self.result.check("clients paused at every quiet point", False, "some client did not pause within 60 s")
                return
            try:
                poll_until(lambda: True if self._ready() and not self.server.backends() else None, READY_TIMEOUT, 0.05)
            except TimeoutError:
                self.result.check("settled at every quiet point", False, f"not settled within {READY_TIMEOUT:.0f} s at {time.monotonic() - self.began:.0f} s")
                return
            self.result.samples.append(checks.sample(self.server.postmaster_pid, self.began))
            self.shm_used |= checks.shm_references(self.server.all_pids())
            self._say(f"quiet sample {self.result.samples[-1]}")
        finally:
            load.resume()

    # -- the end ---------------------------------------------------------------------------

    def _after_postmaster_exit(self, when: str, code: int | None) -> None:
        """Everything of the postmaster that just exited must be gone with it."""
        self.result.exit_codes.append(code)
        alive, zombies = checks.survivors(self.instance)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)  # clean up after the finding
            except ProcessLookupError:
                pass
        self.result.check(f"no orphan {when}", not alive, str(alive or "none"), repeatable=True)
        self.result.check(f"no zombie {when}", not zombies, str(zombies or "none"), repeatable=True)
        stale = checks.stale_files(self.server.datadir, self.server.socket_dir)
        self.result.check(f"no stale socket, lock or pid file {when}", not stale, ", ".join(stale) or "none", repeatable=True)

    def _final_stop(self) -> None:
        self._continue_all()
        process = self.server.process
        if process is not None and process.poll() is None:
            self._signal_postmaster(signal.SIGINT)
            try:
                process.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.result.check("final fast shutdown finished", False, f"not within {SHUTDOWN_TIMEOUT:.0f} s")
            if process.poll() is not None:
                self._after_postmaster_exit("after the final fast shutdown", process.returncode)
                self.result.check("final fast shutdown exit code 0", process.returncode == 0, str(process.returncode))
        alive, zombies = checks.survivors(self.seen)
        self.result.check("no process of any postmaster left", not alive and not zombies, f"alive {alive}, zombies {zombies}")
        left = sorted(self.shm_used & checks.shm_entries())
        self.result.check("no pgtop /dev/shm entry", not left,
                          f"left: {', '.join(left)}" if left else f"none (pgtop's processes used {len(self.shm_used)} /dev/shm entries)")
        self.result.count_log_lines(self.logs)
        ok, detail = checks.flatness(self.result.samples)
        self.result.check("postmaster fd count and RSS flat", ok, detail)
        leaks = checks.segment_leaks(self.result.samples)
        self.result.check("one shared-memory segment at every quiet point", not leaks, "; ".join(leaks) or "yes")


def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def run_soak(options: SoakOptions) -> SoakResult:
    return Soak(options).run()
