"""The supervisor: one postmaster lifetime, from the lock file to ExitPostmaster.

Theory of operation. A background thread plays ServerLoop: it waits on one selector (the
listen sockets, a pidfd per child, the children's log pipe, and a wakeup pipe for signals
and commands), turns each happening into a core event, feeds it to `pgtop.core.step`,
executes the actions on the real OS in order, and publishes an immutable snapshot. The core
decides everything; this module only does what it is told and reports what happened.

Signals reach it from the process's signal thread (`post_signal`), never from a handler
running in this thread, so handlers never interleave, as in the postmaster.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from collections import deque
from pathlib import Path

from pgtop.common.configfile import (
    CONFIG_FILE_NAME,
    ConfigError,
    load_config_at_startup,
    read_config_file,
)
from pgtop.common.hba import HbaError, load_hba
from pgtop.common.hba_rules import HbaRules
from pgtop.common.shmem import Segment
from pgtop.core import accepting_connections, initial_state, next_deadline, step
from pgtop.core.actions import (
    Action,
    CancelBackup,
    CheckLockFile,
    Exit,
    Log,
    OpenListenSockets,
    ReadConfigFile,
    ReloadHba,
    RemoveDataFile,
    ReportAutovacWorkerFailed,
    ResetSharedMemory,
    SetQuitReason,
    SignalChild,
    Spawn,
    TouchSocketFiles,
    WritePidStatus,
)
from pgtop.core.config import Config
from pgtop.core.events import (
    ChildExit,
    ChildrenExited,
    ChildStarted,
    ConnectionAccepted,
    Event,
    ForkFailed,
    PMSignalRaised,
    PostmasterStarted,
    SignalReceived,
    Tick,
)
from pgtop.core.state import State
from pgtop.core.vocabulary import ChildKind, LogLevel, Sig
from pgtop.runtime import pidfile
from pgtop.runtime.childspec import PRELOAD, SHARED_ARGS, spawn_request
from pgtop.runtime.control import ControlServer
from pgtop.runtime.datadir import DataDirError
from pgtop.runtime.forkserver import DeathPipe, ForkServer, SpawnFailed
from pgtop.runtime.listen import ListenSockets, NoSocketsError, open_listen_sockets
from pgtop.runtime.procwatch import ChildWatcher
from pgtop.runtime.serverlog import ServerLog
from pgtop.runtime.signals import SignalInfo, drain_signalfd, sigchld_fd
from pgtop.runtime.snapshotter import Snapshotter

VERSION_STRING = "PostgreSQL 14.13 (pgtop {version}) on {machine}-pc-linux-gnu, 64-bit"
REAP_LEFTOVERS_SECS = 5.0
COLLECTOR_DRAIN_SECS = 2.0


class StartupError(Exception):
    """The postmaster could not start: one line for stderr and the exit code (spec §9)."""

    def __init__(
        self,
        message: str,
        exit_code: int = 1,
        hint: str | None = None,
        *,
        detail: str | None = None,
        logs: tuple[Log, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
        self.detail = detail
        self.logs = logs  # LOG lines that explain the FATAL, printed before it


class Supervisor:
    """Runs the postmaster model against the OS in a background thread."""

    def __init__(self, datadir: str | Path, *, stderr_fd: int | None = 2, argv: list[str] | None = None) -> None:
        self.datadir = Path(os.path.abspath(datadir))
        self.pid = os.getpid()
        self.argv = argv or ["pgtop", "run", "-D", str(self.datadir)]
        self.stderr_fd = stderr_fd
        self.config: Config = Config()
        self.state: State | None = None
        self.exit_code: int | None = None
        self.hangup_means_fast_shutdown = False
        self.snapshots = Snapshotter(self)
        self.log: ServerLog = ServerLog(self.config, self.pid, stderr_fd=stderr_fd)
        self._queue: deque[Event | SignalInfo] = deque()
        self._queue_lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sigchld = -1  # a signalfd for SIGCHLD: orphans to reap (see start())
        self._selector = selectors.DefaultSelector()
        self._thread: threading.Thread | None = None
        self._pidfile: pidfile.PidFile | None = None
        self._forkserver: ForkServer | None = None
        self._death_pipe: DeathPipe | None = None
        self._segment: Segment | None = None
        self._listen = ListenSockets()
        self._listening = False
        self._watcher = ChildWatcher()
        self._pidfds: dict[int, int] = {}  # pid -> pidfd registered in the selector
        self._child_pids: dict[int, int] = {}  # child id -> pid
        self._child_ids: dict[int, int] = {}  # pid -> child id
        self._slots: dict[int, int] = {}  # child id -> PMChildFlags slot
        self._connections: dict[int, socket.socket] = {}
        self._next_connection = 1
        self._log_read = self._log_write = -1
        self._collector_read = self._collector_write = -1  # the logger's pipe (logging_collector)
        self._collector_registered = False
        self.start_time = 0.0
        self.finished = threading.Event()
        self._control = ControlServer(self)
        # The parsed pg_hba.conf backends authenticate with: the last one that loaded, as
        # the postmaster's copy is in PostgreSQL (a broken file on reload keeps these).
        self.hba_rules: HbaRules | None = None

    # -- starting -------------------------------------------------------------------------

    def start(self) -> None:
        """PostmasterMain up to the ServerLoop thread. Raises StartupError (nothing is left
        behind when it does)."""
        try:
            self.config = load_config_at_startup(self.datadir)
        except (ConfigError, DataDirError) as error:
            raise StartupError(
                str(error),
                error.exit_code,
                getattr(error, "hint", None),
                detail=getattr(error, "detail", None),
                logs=tuple(getattr(error, "logs", ())),
            ) from None
        self.log.config = self.config
        try:
            self.hba_rules = load_hba(self.datadir / "pg_hba.conf")
        except HbaError as error:
            raise StartupError(f"could not load pg_hba.conf: {error}") from None
        self.start_time = time.time()
        try:
            self._pidfile = pidfile.PidFile.create(self.datadir, self.pid, self.config.port, int(self.start_time))
        except pidfile.LockFileError as error:
            raise StartupError(str(error), 1, error.hint) from None
        try:
            pidfile.write_opts(self.datadir, self.argv)
            self._log_read, self._log_write = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(self._log_read, False)
            if self.config.logging_collector:
                self._collector_read, self._collector_write = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(self._collector_write, False)
            # The death pipe is ours, not the fork server's: the children hold it, and it must
            # outlive a fork server that dies and is replaced.
            self._death_pipe = DeathPipe()
            self._forkserver = ForkServer.start(PRELOAD, death_pipe=self._death_pipe, output=self._log_write)
        except SpawnFailed as error:
            self._release_resources()
            raise StartupError(str(error)) from None  # "could not start the fork server: ..."
        except OSError as error:
            self._release_resources()
            raise StartupError(f"could not start the fork server: {error.strerror}") from None
        self.state = initial_state(self.config, self.start_time)
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._selector.register(self._log_read, selectors.EVENT_READ, "log")
        self._selector.register(self._forkserver, selectors.EVENT_READ, "forkserver")
        # SIGCHLD wakes this loop itself, through its selector: orphans (a dead archiver's
        # shell, say) are reaped without a second thread waking and contending for the GIL
        # at every child's death. Only where the caller blocked it (signals.py).
        self._sigchld = sigchld_fd()
        if self._sigchld >= 0:
            self._selector.register(self._sigchld, selectors.EVENT_READ, "sigchld")
        self._post(PostmasterStarted(VERSION_STRING.format(version=_version(), machine=os.uname().machine)))
        self._thread = threading.Thread(target=self._server_loop, name="pgtop-postmaster", daemon=True)
        self._thread.start()
        self._control.start()

    def wait(self, timeout: float | None = None) -> int | None:
        self.finished.wait(timeout)
        return self.exit_code

    # -- the outside world's doors ---------------------------------------------------------

    def post_signal(self, info: SignalInfo) -> None:
        """From the signal thread: a signal arrived for the postmaster."""
        self._post(info)

    def _post(self, item: Event | SignalInfo) -> None:
        with self._queue_lock:
            self._queue.append(item)
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # the loop is already awake
        except OSError:
            pass  # finished

    # -- ServerLoop -----------------------------------------------------------------------

    def _server_loop(self) -> None:
        try:
            while self.exit_code is None:
                assert self.state is not None
                now = time.time()
                timeout = max(0.0, next_deadline(self.state, now) - now)
                ready = self._selector.select(timeout)
                woke = False
                exits: list[ChildExit] = []
                readable_listeners: list[socket.socket] = []
                orphans = False
                for key, _ in ready:
                    tag = key.data
                    if tag == "wake":
                        _drain(self._wake_read)
                    elif tag == "sigchld":
                        drain_signalfd(self._sigchld)
                        orphans = woke = True  # after the exits: a respawn must not wait for /proc
                    elif tag == "log":
                        self._relay_log()
                    elif tag == "collector":
                        self.log.flush_backlog()
                    elif tag == "forkserver":
                        self._forkserver_news()
                    elif tag == "listen":
                        readable_listeners.append(key.fileobj)  # type: ignore[arg-type]
                    else:
                        exits.extend(self._reap(tag))
                queued = self._take_queue()
                if queued:
                    # A child writes its log line, then signals (a pmsignal): the line may
                    # have reached the pipe after select() returned. Relay it first, so that
                    # the log keeps the order of a shared stderr ("consistent recovery state
                    # reached" before "ready to accept read-only connections").
                    self._relay_log()
                for item in queued:
                    woke = True
                    self._handle_signal(item) if isinstance(item, SignalInfo) else self._feed(item)
                if exits:
                    woke = True
                    self._feed(ChildrenExited(tuple(exits)))
                if orphans:
                    self._reap_orphans()
                for listener in readable_listeners:
                    woke |= self._accept(listener)
                if not woke and self.exit_code is None:
                    self._feed(Tick())
                if self.exit_code is None:
                    self._sync_collector()
                    self.snapshots.publish()
        except Exception as error:  # a bug here must not leave children behind
            self.log.write(LogLevel.LOG, f"select() failed in postmaster: {error}")
            self._exit(1)
            raise
        finally:
            self.finished.set()

    def _take_queue(self) -> list[Event | SignalInfo]:
        with self._queue_lock:
            items = list(self._queue)
            self._queue.clear()
        return items

    def _handle_signal(self, info: SignalInfo) -> None:
        signo = info.signo
        if signo == Sig.USR1:
            self._feed(self._pmsignals())
        elif signo == Sig.HUP and info.from_kernel and self.hangup_means_fast_shutdown:
            self._feed(SignalReceived(Sig.INT))  # the terminal is gone: fast shutdown
        elif signo in (Sig.HUP, Sig.INT, Sig.TERM, Sig.QUIT):
            self._feed(SignalReceived(Sig(signo)))
        # SIGUSR2: a no-op handler in the postmaster.

    def _pmsignals(self) -> PMSignalRaised:
        segment = self._segment
        reasons = segment.take_pmsignals() if segment is not None else frozenset()
        walsender_slots = segment.walsender_slots() if segment is not None else frozenset()
        walsenders = frozenset(cid for cid, slot in self._slots.items() if slot in walsender_slots)
        return PMSignalRaised(
            reasons,
            promote_file=(self.datadir / "promote").exists(),
            logrotate_file=(self.datadir / "logrotate").exists(),
            walsenders=walsenders,
        )

    def _feed(self, event: Event) -> None:
        """step() the model, then execute its actions; answers to spawns and reads are
        fed back at once, before anything else."""
        pending: deque[Event] = deque([event])
        while pending and self.exit_code is None:
            assert self.state is not None
            self.state, actions = step(self.state, pending.popleft(), time.time())
            for action in actions:
                followup = self._execute(action)
                if followup is not None:
                    pending.append(followup)
                if self.exit_code is not None:
                    break
        self.log.config = self.state.config  # a reload's log settings hold for our own lines too
        self._sync_listening()

    # -- executing actions -----------------------------------------------------------------

    def _execute(self, action: Action) -> Event | None:  # one arm per action
        match action:
            case Spawn():
                return self._spawn(action)
            case SignalChild():
                self._signal(action)
            case Log():
                self.log.postmaster(action)
            case WritePidStatus():
                if self._pidfile is not None:
                    self._pidfile.set_status(action.status)
            case SetQuitReason():
                if self._segment is not None:
                    self._segment.set_quit_reason(action.reason)
            case OpenListenSockets():
                self._open_sockets()
            case ResetSharedMemory():
                self._reset_shared_memory()
            case ReadConfigFile():
                return read_config_file(self.datadir / CONFIG_FILE_NAME)
            case ReloadHba():
                self._reload_hba()
            case RemoveDataFile():
                (self.datadir / action.name).unlink(missing_ok=True)
            case ReportAutovacWorkerFailed():
                if self._segment is not None:
                    self._segment.set_avworker_failed()
            case CheckLockFile():
                self._check_lock_file()
            case TouchSocketFiles():
                self._listen.touch()
            case CancelBackup():
                label = self.datadir / "backup_label"
                if label.exists():
                    label.rename(self.datadir / "backup_label.old")
            case Exit():
                self._exit(action.code)
        return None

    def _spawn(self, action: Spawn) -> Event:
        assert self._forkserver is not None and self.state is not None
        fds = {"log": self._log_write}
        if action.kind is ChildKind.SYSLOGGER and self._collector_read >= 0:
            fds["logpipe"] = self._collector_read
        if self._segment is not None:
            fds["shmem"] = self._segment.fd
        client = self._connections.pop(action.connection_id, None) if action.connection_id else None
        slot = None
        try:
            if client is not None:
                fds["client"] = client.fileno()
            if self._segment is not None and _needs_slot(action):
                slot = self._segment.assign_slot()
            program, args = spawn_request(self, action, slot)
            pid = self._spawn_through_server(program, args, fds)
        except (SpawnFailed, OSError, RuntimeError) as error:
            if slot is not None and self._segment is not None:
                self._segment.release_slot(slot)
            if client is not None:
                _send_fork_failure(client, str(error))
            return ForkFailed(action.child_id, str(error))
        finally:
            if client is not None:
                client.close()  # the child has its own copy now
        self._child_pids[action.child_id] = pid
        self._child_ids[pid] = action.child_id
        if slot is not None:
            self._slots[action.child_id] = slot
        self._pidfds[pid] = self._watcher.watch(pid)
        self._selector.register(self._pidfds[pid], selectors.EVENT_READ, pid)
        if action.kind is ChildKind.SYSLOGGER and self._collector_write >= 0:
            self.log.redirect_to_collector(self._collector_write)
        return ChildStarted(action.child_id, pid)

    def _spawn_through_server(self, program: str, args: dict[str, object], fds: dict[str, int]) -> int:
        """Fork through the fork server; if it has died (kill -9 from outside), start a new
        one and try once more, so the postmaster never loses the ability to fork."""
        assert self._forkserver is not None
        try:
            return self._forkserver.spawn(program, args, fds, shared=SHARED_ARGS)
        except SpawnFailed:
            if self._forkserver.alive():
                raise
        self._replace_forkserver()
        return self._forkserver.spawn(program, args, fds, shared=SHARED_ARGS)

    def _forkserver_news(self) -> None:
        """A spare was forked (its socket is taken now), or the server died: replace it at
        once, while nothing waits for a child."""
        assert self._forkserver is not None
        self._forkserver.take_notes()
        if not self._forkserver.alive():
            try:
                self._replace_forkserver()
            except SpawnFailed as error:  # the next spawn tries again
                self.log.write(LogLevel.LOG, str(error))

    def _replace_forkserver(self) -> None:
        old = self._forkserver
        assert old is not None
        self.log.write(LogLevel.LOG, f"fork server (PID {old.pid}) is gone; starting a new one")
        self._unwatch_forkserver()
        old.stop()
        self._forkserver = ForkServer.start(PRELOAD, death_pipe=self._death_pipe, output=self._log_write)
        self._selector.register(self._forkserver, selectors.EVENT_READ, "forkserver")

    def _unwatch_forkserver(self) -> None:
        try:
            self._selector.unregister(self._forkserver)
        except (KeyError, ValueError):
            pass  # not registered (a failed start), or already unregistered

    def _signal(self, action: SignalChild) -> None:
        pid = self._child_pids.get(action.child_id)
        if pid is None:
            return  # its spawn failed: nothing to signal
        for target in (pid, -pid) if action.group else (pid,):
            try:
                os.kill(target, int(action.signal))
            except ProcessLookupError:
                pass  # already gone: an ordinary event, not an error
            except PermissionError:
                pass

    def _reap(self, pid: int) -> list[ChildExit]:
        pidfd = self._pidfds.pop(pid)
        self._selector.unregister(pidfd)  # before reap() closes it
        reaped = self._watcher.reap(pid)
        if reaped is None:  # cannot happen: a readable pidfd means it exited
            self._pidfds[pid] = self._watcher.watch(pid)
            self._selector.register(self._pidfds[pid], selectors.EVENT_READ, pid)
            return []
        child_id = self._child_ids.pop(pid, None)
        if child_id is not None:
            self._child_pids.pop(child_id, None)
        slot = self._slots.pop(child_id, None) if child_id is not None else None
        released, query = True, None
        if slot is not None and self._segment is not None:
            row = self._segment.read_activity(slot)
            if row is not None and row.state == "active" and row.query:
                query = row.query
            released = self._segment.release_slot(slot)
        return [ChildExit(child_id, pid, reaped[1], released, query)]

    def _reap_orphans(self) -> None:
        """Reap processes reparented to us (we are a subreaper), e.g. the shell of an
        archive_command whose archiver died. Only our own children are looked at, through
        /proc/self/task/*/children, so this stays cheap with hundreds of backends."""
        keep = set(self._watcher.watched)
        if self._forkserver is not None:
            keep.add(self._forkserver.pid)
        for pid in _own_children() - keep:
            if _is_zombie(pid):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def _accept(self, listener: socket.socket) -> bool:
        """Accept every waiting connection (ServerLoop step 2)."""
        accepted = False
        while self.exit_code is None and self.state is not None and accepting_connections(self.state):
            try:
                client, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                self.log.write(LogLevel.LOG, f"could not accept new connection: {error.strerror}")
                break
            client.setblocking(True)
            connection_id = self._next_connection
            self._next_connection += 1
            self._connections[connection_id] = client
            remote = "[local]" if listener.family == socket.AF_UNIX else f"{address[0]}:{address[1]}"
            key = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
            self._feed(ConnectionAccepted(connection_id, key, remote))
            accepted = True
        return accepted

    def _sync_listening(self) -> None:
        """No select() on the listen sockets in WAIT_DEAD_END (spec §6)."""
        want = self.state is not None and accepting_connections(self.state) and self.exit_code is None
        if want == self._listening:
            return
        for sock in self._listen.sockets:
            if want:
                self._selector.register(sock, selectors.EVENT_READ, "listen")
            else:
                self._selector.unregister(sock)
        self._listening = want

    def _sync_collector(self) -> None:
        """Wait for the logger's pipe to take more only while lines are waiting."""
        want = bool(self.log.backlog) and self.log.collector_fd is not None
        if want != self._collector_registered:
            if want:
                self._selector.register(self._collector_write, selectors.EVENT_WRITE, "collector")
            else:
                self._selector.unregister(self._collector_write)
            self._collector_registered = want

    def _relay_log(self) -> None:
        while True:
            try:
                data = os.read(self._log_read, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            self.log.feed_pipe(data)

    def _open_sockets(self) -> None:
        def log(level: LogLevel, message: str, detail: str | None, hint: str | None) -> None:
            self.log.write(level, message, detail, hint)

        try:
            self._listen = open_listen_sockets(self.config, str(self.datadir), self.pid, self.start_time, log)
        except NoSocketsError as error:
            self.log.write(LogLevel.FATAL, str(error))
            self._exit(1)
            return
        if self._pidfile is not None:
            self._pidfile.set_socket_dir(self._listen.first_socket_dir)
            self._pidfile.set_listen_address(self._listen.first_address)

    def _reset_shared_memory(self) -> None:
        generation = 1
        if self._segment is not None:
            generation = self._segment.generation + 1
            self._segment.destroy()
        self._segment = Segment.create(self.config.max_live_children, generation=generation)
        self._slots.clear()
        if self._pidfile is not None:
            self._pidfile.update_line(pidfile.LINE_SHMEM_KEY, self._segment.pid_file_line)

    def _reload_hba(self) -> None:
        try:
            self.hba_rules = load_hba(self.datadir / "pg_hba.conf")
        except HbaError as error:
            for issue in error.issues:
                self.log.write(LogLevel.LOG, issue.message, None, issue.hint, context=issue.context)
            self.log.write(LogLevel.LOG, "pg_hba.conf was not reloaded")

    def _check_lock_file(self) -> None:
        problem = pidfile.recheck(self.datadir, self.pid)
        if problem is None:
            return
        self.log.write(LogLevel.LOG, problem)
        self.log.write(LogLevel.LOG, "performing immediate shutdown because data directory lock file is invalid")
        os.kill(self.pid, int(Sig.QUIT))

    # -- the end ---------------------------------------------------------------------------

    def _exit(self, code: int) -> None:
        """ExitPostmaster(): sockets and lock files go, then the pid file ("database system
        is shut down"), shared memory, the fork server; leftover children (after S3) are
        told by the death pipe and reaped here."""
        if self.exit_code is not None:
            return
        self._control.stop()
        self._listen.close()
        if self._pidfile is not None:
            self._pidfile.remove()
            self._pidfile = None
            self.log.write(LogLevel.LOG, "database system is shut down")
        self._relay_log()
        self._close_collector()  # the logger writes the last lines, then sees EOF
        self._release_resources()
        self._reap_leftovers()
        self.exit_code = code
        self.snapshots.publish()

    def _release_resources(self) -> None:
        if self._sigchld >= 0:
            self._selector.unregister(self._sigchld)
            os.close(self._sigchld)
            self._sigchld = -1
        for client in self._connections.values():
            client.close()
        self._connections.clear()
        if self._forkserver is not None:
            self._unwatch_forkserver()
            self._forkserver.stop()
            self._forkserver = None
        if self._death_pipe is not None:
            self._death_pipe.close()  # children still alive see the postmaster gone, and exit
            self._death_pipe = None
        if self._segment is not None:
            self._segment.destroy()
            self._segment = None
        if self._pidfile is not None:
            self._pidfile.remove()
            self._pidfile = None

    def _reap_leftovers(self) -> None:
        deadline = time.monotonic() + REAP_LEFTOVERS_SECS
        for pidfd in self._pidfds.values():
            self._selector.unregister(pidfd)
        self._pidfds.clear()
        while self._watcher.watched and time.monotonic() < deadline:
            for pid in list(self._watcher.watched):
                self._watcher.reap(pid)
            if self._watcher.watched:
                time.sleep(0.01)  # bounded: the death pipe ends them within milliseconds
        for pid in list(self._watcher.watched):  # still there: the death pipe did not do it
            for target in (pid, -pid):
                try:
                    os.kill(target, int(Sig.KILL))
                except OSError:
                    pass
            os.waitpid(pid, 0)
            self._watcher.unwatch(pid)
        self._relay_log()
        if self._log_write >= 0:
            os.close(self._log_write)
            self._log_write = -1
        self._relay_log()
        self._watcher.close()

    def _close_collector(self) -> None:
        """Hand the logger what is left, then close our end: it exits on EOF, the last to
        go, as PostgreSQL's does. Lines no logger takes within the deadline go to stderr."""
        if self._collector_registered:
            self._selector.unregister(self._collector_write)
            self._collector_registered = False
        if self._collector_write >= 0:
            deadline = time.monotonic() + COLLECTOR_DRAIN_SECS
            while self.log.flush_backlog() and time.monotonic() < deadline:
                selectors.select.select([], [self._collector_write], [], 0.05)
            leftover = bytes(self.log.backlog)
            self.log.backlog.clear()
            self.log.collector_fd = None
            os.close(self._collector_write)
            self._collector_write = -1
            if leftover and self.stderr_fd is not None:
                os.write(self.stderr_fd, leftover)
        if self._collector_read >= 0:
            os.close(self._collector_read)
            self._collector_read = -1

    # -- what viewers read -----------------------------------------------------------------

    @property
    def segment(self) -> Segment | None:
        return self._segment

    def child_pid(self, child_id: int) -> int | None:
        return self._child_pids.get(child_id)


def _needs_slot(action: Spawn) -> bool:
    """Non-dead_end BackendList children get a PMChildFlags slot."""
    return not action.dead_end and action.kind in (
        ChildKind.BACKEND,
        ChildKind.WALSENDER,
        ChildKind.AUTOVAC_WORKER,
        ChildKind.BGWORKER,
    )


def _send_fork_failure(client: socket.socket, error: str) -> None:
    """An old-style error packet ('E' + text), sent once without blocking (spec §6)."""
    try:
        client.setblocking(False)
        client.send(b"E" + f"could not fork new process for connection: {error}\n".encode() + b"\0")
    except OSError:
        pass


def _own_children() -> set[int]:
    """Every thread's children (plain os calls: this runs at every SIGCHLD, so at the end of
    every connection)."""
    pids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            pids.update(map(int, _read_proc(f"/proc/self/task/{task}/children").split()))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids


def _is_zombie(pid: int) -> bool:
    try:
        stat = _read_proc(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(b")", 1)[1].split()[0] == b"Z"


def _read_proc(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _version() -> str:
    from pgtop import __version__

    return __version__


