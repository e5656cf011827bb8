"""The fork server: starts postmaster children in one or two milliseconds, fully formed.

Theory of operation. A fresh interpreter costs tens of milliseconds; a fork of a small process
that has already imported the child programs costs one or two. So the postmaster starts one
server process at the very beginning and asks it for children over a Unix socket pair
(SOCK_SEQPACKET: one message per request, file descriptors by SCM_RIGHTS).

The server is a fresh interpreter (sys.executable, never a shell) rather than a fork of the
postmaster, so it inherits none of the postmaster's threads, locks or imported UI, and it
stays small, which keeps every later fork cheap.

Children must be the postmaster's own children, so that it reaps them and reads their true
exit status. The server forks them with clone3(CLONE_PARENT): the kernel makes the new process
a child of the server's parent, the postmaster, from its first instant. It is the fork
os.fork() does with one flag more, and without Python's at-fork work, which only a process
with several threads needs (see _clone_parent).
Where clone3 is refused (old kernels, some seccomp profiles) the server falls back to a double
fork: the postmaster is a child subreaper, the intermediate exits at once, and the kernel hands
the child to the postmaster. That costs a second fork (~2 ms more; see bench/spawn.py).

The next child is forked ahead of need: a spare (`ps` shows "pgtop: spare process") waits,
already past the fork, and the postmaster hands it the next spawn request itself, so a
respawn waits neither for the server nor for clone3 and the interpreter's after-fork work
(see fork_spare). While it waits, a spare rehearses the last request a spare took (it
unpickles it and throws it away), so that the copy-on-write faults of building the arguments
are taken before there is a hurry, not after.

Every page a child writes becomes its own, so what the server leaves where matters to each
child's memory. Before it freezes its heap the server warms the preloaded programs up (their
caches filled, their bytecode specialized), re-creates the functions a backend runs and their
code objects side by side (codelayout), empties the interpreter's type attribute cache (see
lay_out_heap), and last fills every hole its work left in the heap (codelayout.fill_holes).

What every child gets alike is sent to the server once, not in every request: `spawn(...,
shared=("config", ...))` names arguments whose values the server keeps (the postmaster's
configuration and pg_hba.conf, as a fork would inherit them). A request holds only the names,
and the child takes the server's copy, unpickled once and shared copy-on-write; a backend's
server settings are derived from it once too (see prepare_shared). A new value (a reload) is
sent to the server before the request that uses it, and a spare forked before it is dropped.

Nothing outlives the postmaster:
- the server has PR_SET_PDEATHSIG(SIGKILL) and also exits on EOF from its socket;
- every child holds the read end of the postmaster-death pipe, whose only write end the
  postmaster keeps (EOF means it is gone), and sets PR_SET_PDEATHSIG(SIGKILL) once its parent
  is the postmaster (after a double fork only once reparented: the intermediate's death would
  fire it), then checks getppid() again in case the postmaster died just before.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from types import ModuleType
from typing import Self

from pgtop.common.proctitle import set_title
from pgtop.runtime import codelayout
from pgtop.runtime.signals import drain_signalfd, signal_fd

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
SYS_CLONE3 = 435  # the same number on every architecture
CLONE_PARENT = 0x00008000

MAX_MESSAGE = 256 * 1024
MAX_FDS = 16
ANSWER_TIMEOUT = 10.0  # seconds the postmaster waits for the server before giving up
REPARENT_PATIENCE = 5.0  # double fork: seconds a child waits for its intermediate to exit
DEATH_FD_NAME = "death"
SPARE_TITLE = "pgtop: spare process"
SPARE_TAKEN = b"spare taken"  # postmaster -> server, unanswered: fork the next spare
# (followed by the request the spare took: the next spare rehearses it, see _rehearse)
SHARE = b"share"  # postmaster -> server, unanswered: new shared values, pickled (version, values)

_libc = ctypes.CDLL(None, use_errno=True)
# The GIL must stay held across clone3, as os.fork holds it across fork(): PyDLL does that.
_libc_holding_gil = ctypes.PyDLL(None, use_errno=True)


class SpawnFailed(Exception):
    """A child could not be started; the message is the %m text for "could not fork ..."."""


def _prctl(option: int, value: object) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def set_child_subreaper(enabled: bool) -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants are reparented to this process."""
    _prctl(PR_SET_CHILD_SUBREAPER, int(enabled))


def is_child_subreaper() -> bool:
    flag = ctypes.c_int(0)
    _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag))
    return bool(flag.value)


def set_parent_death_signal(signum: int) -> None:
    """PR_SET_PDEATHSIG: the kernel sends `signum` when the parent (thread) dies."""
    _prctl(PR_SET_PDEATHSIG, signum)


class DeathPipe:
    """The postmaster-death pipe: children hold the read end, only the postmaster the write
    end, so EOF on the read end means the postmaster is gone."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()  # close-on-exec: no stray process inherits it

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


class ForkServer:
    """The postmaster's handle on its fork server. `spawn` may be called from one thread
    other than the creator's (the supervisor thread); calls are serialized by a lock."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        channel: socket.socket,
        death_pipe: DeathPipe,
        owns_death_pipe: bool,
        was_subreaper: bool,
        preloaded: Sequence[str] = (),
    ) -> None:
        self._process = process
        self._channel = channel
        self._lock = threading.Lock()
        self._broken: str | None = None
        self.death_pipe = death_pipe
        self._owns_death_pipe = owns_death_pipe
        self._was_subreaper = was_subreaper
        self.spares: set[int] = set()  # PIDs of spare children not handed out yet (ours to reap)
        self._spare: tuple[int, socket.socket] | None = None  # the one the next spawn takes
        self._preloaded = frozenset(preloaded)  # kinds the server resolved: safe for a spare
        self._shared: dict[str, object] = {}  # what the server keeps for every child
        self._shared_version = 0  # bumped at each change; spares are forked with a version

    @classmethod
    def start(
        cls,
        preload: Sequence[str] = (),
        *,
        death_pipe: DeathPipe | None = None,
        clone_parent: bool = True,
        output: int | None = None,
    ) -> ForkServer:
        """Become a child subreaper and start the server, which imports `preload` (child
        kinds) once. Call it from the thread that lives as long as the postmaster (the
        server's PDEATHSIG is tied to it). Without `death_pipe` the server makes one,
        keeps only its write end here, and closes it at `stop()`. `clone_parent=False`
        forces the double fork (to measure or test the fallback). `output` (an fd, e.g. the
        children's log pipe) takes the server's stdout and stderr instead of ours, so that it
        never holds the dashboard's terminal."""
        was_subreaper = is_child_subreaper()
        set_child_subreaper(True)
        owns_death_pipe = death_pipe is None
        pipe = death_pipe or DeathPipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {
            "channel": theirs.fileno(),
            "death": pipe.read_fd,
            "postmaster": os.getpid(),
            "preload": list(preload),
            "clone_parent": clone_parent,
        }
        bootstrap = (
            "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
            "from pgtop.runtime.forkserver import serve; serve(json.loads(sys.argv[2]))"
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", bootstrap, json.dumps(sys.path), json.dumps(config)],
                pass_fds=(theirs.fileno(), pipe.read_fd),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # a terminal's Ctrl-C is for the postmaster only
            )
        except OSError as error:
            ours.close()
            if owns_death_pipe:
                pipe.close()
            set_child_subreaper(was_subreaper)
            raise SpawnFailed(f"could not start the fork server: {error.strerror}") from None
        finally:
            theirs.close()
        if owns_death_pipe:
            os.close(pipe.read_fd)  # the postmaster keeps only the write end
            pipe.read_fd = -1
        server = cls(process, ours, pipe, owns_death_pipe, was_subreaper, preload)
        try:
            kind, detail = server._answer()
        except SpawnFailed as failure:
            kind, detail = "error", str(failure)
        if kind != "ready":
            server.stop()
            raise SpawnFailed(f"could not start the fork server: {detail}")
        return server

    @property
    def pid(self) -> int:
        """The server's PID: a child of the postmaster, to keep out of orphan reaping."""
        return self._process.pid

    def alive(self) -> bool:
        return self._broken is None and self._process.poll() is None

    def spawn(
        self, kind: str, args: Mapping[str, object], fds: Mapping[str, int], *, shared: Sequence[str] = ()
    ) -> int:
        """Start child program `kind` (pgtop.children.<kind>, or "module:function") with
        `args` (picklable) and the named fds; return its PID, a child of this process.
        The `shared` arguments are sent to the server only when their value is new (by
        identity), and the child gets the server's copy."""
        if DEATH_FD_NAME in fds:
            raise ValueError(f'fd name "{DEATH_FD_NAME}" is reserved for the postmaster-death pipe')
        if len(fds) > MAX_FDS:
            raise ValueError(f"at most {MAX_FDS} fds can be passed to a child")
        names = list(fds)
        with self._lock:
            if self._broken:
                raise SpawnFailed(self._broken)
            inherit = tuple(name for name in shared if name in args)
            try:
                if any(self._shared.get(name) is not args[name] for name in inherit):
                    self._share({name: args[name] for name in inherit})
                own = {name: value for name, value in args.items() if name not in inherit}
                request = pickle.dumps((kind, own, names, self._shared_version, inherit))
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                raise SpawnFailed(f"arguments cannot be sent to a child: {error}") from None
            if len(request) > MAX_MESSAGE:
                raise SpawnFailed(f"spawn request too large ({len(request)} bytes)")
            if kind in self._preloaded and (pid := self._hand_to_spare(request, [fds[name] for name in names])):
                return pid
            try:
                socket.send_fds(self._channel, [request], [fds[name] for name in names])
            except OSError as error:
                self._broken = f"fork server is gone: {error.strerror}"
                raise SpawnFailed(self._broken) from None
            verdict, detail = self._answer()
        if verdict != "ok":
            raise SpawnFailed(str(detail))
        return int(detail)  # type: ignore[call-overload]

    def _share(self, values: dict[str, object]) -> None:
        """Send the server new shared values; the spare held now has the old ones: drop it
        (it leaves on EOF), the server forks one that has these."""
        message = SHARE + pickle.dumps((self._shared_version + 1, values))
        if len(message) > MAX_MESSAGE:
            raise SpawnFailed(f"shared arguments too large ({len(message)} bytes)")
        try:
            self._channel.send(message)
        except OSError as error:
            self._broken = f"fork server is gone: {error.strerror}"
            raise SpawnFailed(self._broken) from None
        self._shared.update(values)
        self._shared_version += 1
        if self._spare is not None:
            self._spare[1].close()
            self._spare = None

    def fileno(self) -> int:
        """The channel to the server, for a selector: readable when the server has news (a
        spare forked; EOF if it died). Call take_notes() then."""
        return self._channel.fileno()

    def take_notes(self) -> None:
        """Take the server's news now rather than at the next spawn, so that a spare is held
        (one fd, steadily) from moments after it is forked; a dead server is marked broken."""
        with self._lock:
            if self._broken is None:
                self._take_notes()

    def _hand_to_spare(self, request: bytes, fds: list[int]) -> int:
        """Send the request to the spare, which becomes the child: its PID, or 0 if there is
        no spare (or it was killed meanwhile: the orphan reaper or stop() reaps it)."""
        if self._spare is None:  # one may have been announced since the selector last looked
            self._take_notes()
        spare, self._spare = self._spare, None
        if spare is None:
            return 0
        pid, sock = spare
        with sock:
            try:
                socket.send_fds(sock, [request], fds)
            except OSError:
                pid = 0
        # The child runs now, not once this thread's bookkeeping is done: a woken process
        # waits for the CPU of the thread that woke it, here for most of a millisecond. The
        # GIL stays held (os.sched_yield would release it): in the dashboard the UI thread
        # would take it and hold the postmaster up for milliseconds.
        _libc_holding_gil.sched_yield()
        try:  # used or dead, it is gone: the server makes another, which rehearses this request
            self._channel.send(SPARE_TAKEN + request)
        except OSError:
            pass  # the server is gone: the postmaster sees EOF and replaces it
        if pid:
            self.spares.discard(pid)  # a child now, the postmaster's to watch and reap
        return pid

    def _take_notes(self) -> None:
        """Read the spare notes the server sent since the last look, without waiting."""
        while select.select([self._channel], [], [], 0)[0]:
            kind, _ = self._receive()
            if kind == "gone":
                self._broken = "fork server is gone"
                return
            if kind != "spare":
                return  # an answer nobody asked for: cannot happen

    def _receive(self) -> tuple[str, object]:
        """One message from the server; a spare note (its PID, its socket) is kept."""
        try:
            data, fds, _, _ = socket.recv_fds(self._channel, MAX_MESSAGE, 1)
        except OSError:
            return "gone", None
        if not data:
            return "gone", None
        kind, detail = pickle.loads(data)
        if kind == "spare" and fds:
            pid, version = detail  # type: ignore[misc]
            self.spares.add(pid)
            if self._spare is not None:
                self._spare[1].close()  # one is enough: this one leaves on EOF
                self._spare = None
            if version == self._shared_version:
                self._spare = (pid, socket.socket(fileno=fds[0]))
            else:
                os.close(fds[0])  # forked before the last share: it leaves on EOF
        else:
            for fd in fds:
                os.close(fd)
        return kind, detail

    def _answer(self) -> tuple[str, object]:
        while True:
            ready, _, _ = select.select([self._channel], [], [], ANSWER_TIMEOUT)
            kind, detail = self._receive() if ready else ("silent", None)
            if kind in ("gone", "silent"):
                self._broken = "fork server did not answer" if kind == "silent" else "fork server is gone"
                raise SpawnFailed(self._broken)
            if kind != "spare":
                return kind, detail

    def stop(self, timeout: float = 5.0) -> None:
        """End the server (EOF on its socket; SIGKILL if it lingers), reap it, and restore
        the subreaper setting found at start. Running children are left alone, but with a
        server-owned death pipe they now see the postmaster as gone."""
        with self._lock:  # not in the middle of someone's spawn
            self._broken = self._broken or "fork server stopped"
            self._take_spare_notes(timeout)
            self._channel.close()
            if self._spare is not None:
                self._spare[1].close()  # EOF: the spare leaves
                self._spare = None
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reap_spares(timeout)
        if self._owns_death_pipe:
            self.death_pipe.close()
        if not self._was_subreaper:
            set_child_subreaper(False)

    def _take_spare_notes(self, timeout: float) -> None:
        """EOF to the server, then read what it still says until it closes its end: the
        PID of a spare it forked since the last answer must not be missed."""
        try:
            self._channel.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._channel], [], [], left)
            if not ready or self._receive()[0] == "gone":
                return

    def _reap_spares(self, timeout: float) -> None:
        """Spares are the postmaster's children: they leave on the server's EOF; wait for
        them (SIGKILL if one lingers). One already reaped by the orphan reaper is skipped."""
        deadline = time.monotonic() + timeout
        for pid in sorted(self.spares):
            while True:
                try:
                    reaped, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if reaped:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.001)
        self.spares.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the server process ------------------------------------------------------------------


def serve(config: dict) -> None:
    """Main loop of the server process (started by ForkServer.start). Never returns."""
    channel = socket.socket(fileno=config["channel"])
    death_fd, postmaster = config["death"], config["postmaster"]
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != postmaster:
        os._exit(1)  # the postmaster died before PDEATHSIG was armed
    reset_signals()
    try:
        set_title("pgtop: fork server")
        import_module("pgtop.children.context")  # every child needs it: import it once here
        for name in config["preload"]:
            _PRELOADED[name] = resolve_program(name)
        warm_up(config["preload"])
        lay_out_heap(config["preload"])
        os.close(signal_fd(BLOCKED_UNTIL_HANDLED))  # a spare's wait, made ready for every spare
    except Exception as error:  # noqa: BLE001 - any import failure goes to the postmaster
        channel.send(pickle.dumps(("error", f"{type(error).__name__}: {error}")))
        os._exit(1)
    try:
        codelayout.fill_holes()  # a child's new objects go to fresh memory (see codelayout)
    except Exception:  # noqa: BLE001, S110 - an optimization only
        pass
    # Every object so far is shared with the children copy-on-write; a garbage collection
    # in a child would write to all of their headers and copy every page. Frozen objects are
    # never collected, so a child copies only the pages it really changes (gc.freeze docs).
    gc.freeze()
    channel.send(pickle.dumps(("ready", os.getpid())))
    _serve_forever(channel, death_fd, postmaster, config)


def _serve_forever(channel: socket.socket, death_fd: int, postmaster: int, config: dict) -> None:
    """The server's loop: a function of its own, called once its code is laid out (a running
    frame keeps the code object it started with)."""
    fork = _Forker(postmaster, config["clone_parent"])
    spares_possible = spare_wanted = config["clone_parent"]  # none with the double fork
    rehearsal = b""  # the request the last spare took, for the next one to rehearse
    while True:
        if spare_wanted:  # none yet, or the last one was taken: fork the next before waiting
            spare_wanted = False
            spares_possible = fork_spare(channel, death_fd, postmaster, rehearsal)  # False: clone3 refused
        readable, _, _ = select.select([channel, death_fd], [], [])
        if death_fd in readable:
            os._exit(0)
        message, fds, flags, _ = socket.recv_fds(channel, MAX_MESSAGE, MAX_FDS)
        if not message:
            os._exit(0)  # EOF: the postmaster closed its end or died
        if message.startswith(SPARE_TAKEN):
            spare_wanted = spares_possible
            rehearsal = message[len(SPARE_TAKEN) :]
            continue
        if message.startswith(SHARE):
            _take_shared(message[len(SHARE) :], config["preload"])
            spare_wanted = spares_possible  # the postmaster dropped the spare: it had the old values
            continue
        try:
            answer = _handle(message, fds, flags, death_fd, channel, fork)
        finally:
            for fd in fds:
                os.close(fd)
        try:
            channel.send(pickle.dumps(answer))
        except OSError:
            os._exit(0)  # the postmaster went away while we forked


# Blocked in the server, so every child is born with them blocked and unblocks each one
# once it has a handler for it (ChildContext.handle/ignore), as PostgreSQL's children start
# with BlockSig: a SIGHUP or SIGTERM in a child's first milliseconds waits instead of
# killing it (which the reaper would take for a crash).
BLOCKED_UNTIL_HANDLED = frozenset(
    {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}
)


def reset_signals() -> None:
    """Default dispositions, for the server and so for every child (the postmaster's
    ignored signals survive exec), and the mask above. SIGPIPE and SIGXFSZ stay ignored,
    as in any Python program (and in PostgreSQL's children)."""
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE, signal.SIGXFSZ):
            continue
        if signal.getsignal(signum) not in (signal.SIG_DFL, None):
            signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, BLOCKED_UNTIL_HANDLED)


def warm_up(preload: Sequence[str]) -> None:
    """Call `warm_up()` of each preloaded program's module that has one, before gc.freeze():
    whatever it fills once here (regular expression and other caches, lazily imported
    modules, the interpreter's specialized bytecode) every child then shares copy-on-write
    instead of building it again."""
    _call_program_hooks(preload, "warm_up")


# What the server itself runs for each child, in order (as sys.setprofile saw it): laid out
# with a backend's code. The server writes to these code and function objects again for the
# next child, and a page it writes after a fork is then that child's alone, unless the child
# writes to it too: as it does to the pages of its own code. A name that no longer exists is
# skipped (a test fails on it).
SERVER_LOOP: tuple[codelayout.Key, ...] = (
    (__name__, "_serve_forever"), (__name__, "fork_spare"), ("socket", "socketpair"),
    ("socket", "socket.__init__"), (__name__, "_clone_parent"), (__name__, "_one_thread"),
    ("socket", "socket.close"), ("socket", "socket._real_close"), ("socket", "socket.__enter__"),
    ("socket", "send_fds"), ("socket", "socket.__exit__"), ("socket", "recv_fds"), (__name__, "_handle"),
    (__name__, "_unpack_request"), (__name__, "resolve_program"), (__name__, "_Forker.__call__"),
)  # fmt: skip


def lay_out_heap(preload: Sequence[str]) -> None:
    """After the first warm-up: the functions this server's loop and a backend run, and their
    code, re-created side by side (see codelayout), unless the spares are to record what they
    run (bench hotcode); then the interpreter's type attribute cache emptied, and the warm-up
    run again. That cache keeps a reference to each attribute name it holds: a child's miss
    replaces an entry, and so writes to the pages of two strings, the new name and the one it
    evicts. Emptied, the cache holds only None and what the warm-up looks up, which is what a
    backend looks up; the warm-up also specializes the new code objects' bytecode again."""
    global _record_dir
    _record_dir = os.environ.get(codelayout.RECORD_ENV)
    if not _record_dir:
        try:
            codelayout.pack_hot_code([*SERVER_LOOP, *codelayout.load_profile()])
        except Exception:  # noqa: BLE001, S110 - an optimization only
            pass
    sys._clear_type_cache()
    warm_up(preload)


def _call_program_hooks(preload: Sequence[str], hook_name: str, *args: object) -> None:
    """Call `hook_name(*args)` of each preloaded program's module that has one. The hooks
    are optimizations only: one that fails is skipped, and the children do that work
    themselves, only slower."""
    for name in preload:
        module_name = name.partition(":")[0] if ":" in name else f"pgtop.children.{name}"
        hook = getattr(sys.modules.get(module_name), hook_name, None)
        if callable(hook):
            try:
                hook(*args)
            except Exception:  # noqa: BLE001, S110 - see the docstring
                pass


_record_dir: str | None = None  # bench hotcode: where spares record the code they run
_PRELOADED: dict[str, Callable[..., int]] = {}  # kind -> program, resolved at the server's start
_SHARED: dict[str, object] = {}  # the values the postmaster shared (ForkServer._share)
_shared_version = 0


def _take_shared(payload: bytes, preload: Sequence[str]) -> None:
    """New shared values (the server's side of ForkServer._share), then each preloaded
    program module's `prepare_shared(values)`: what its children derive from them is
    computed here once, and every child forked from now on finds it done."""
    global _shared_version
    version, values = pickle.loads(payload)
    _SHARED.update(values)
    _shared_version = version
    _call_program_hooks(preload, "prepare_shared", _SHARED)


def _unpack_request(message: bytes) -> tuple[str, dict[str, object], list[str]]:
    """A spawn request's kind, arguments (with the shared ones filled in) and fd names."""
    kind, args, names, version, inherit = pickle.loads(message)
    if inherit:
        if version != _shared_version:
            raise RuntimeError(f"request for shared values of version {version}, not {_shared_version}")
        args.update((name, _SHARED[name]) for name in inherit)
    return kind, args, names


def resolve_program(kind: str) -> Callable[..., int]:
    """`checkpointer` -> pgtop.children.checkpointer.main; `pkg.module:function` as named.
    A kind the server preloaded is looked up in a dict: a spare does it on a respawn's way."""
    if (program := _PRELOADED.get(kind)) is not None:
        return program
    module_name, _, function = kind.partition(":")
    if not function:
        if not kind.isidentifier():
            raise ValueError(f'invalid child kind "{kind}"')
        module_name, function = f"pgtop.children.{kind}", "main"
    program = getattr(import_module(module_name), function, None)
    if not callable(program):
        raise TypeError(f"{module_name} has no function {function}()")
    return program


def _handle(
    message: bytes,
    fds: list[int],
    flags: int,
    death_fd: int,
    channel: socket.socket,
    fork: _Forker,
) -> tuple[str, object]:
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        return ("error", "spawn request truncated")
    try:
        kind, args, names = _unpack_request(message)
        program = resolve_program(kind)
    except Exception as error:  # noqa: BLE001 - a bad request must not end the server
        return ("error", f"{type(error).__name__}: {error}")
    named = {**dict(zip(names, fds)), DEATH_FD_NAME: death_fd}
    try:
        pid, intermediate = fork()
    except OSError as error:
        return ("error", error.strerror or str(error))
    if pid != 0:
        return ("ok", pid)
    channel.detach()  # the child closes the number itself; never close it twice
    _become_child(program, kind, args, named, fork.postmaster, intermediate)


def fork_spare(channel: socket.socket, death_fd: int, postmaster: int, rehearsal: bytes = b"") -> bool:
    """Fork a child ahead of need, as Android's zygote keeps unspecialized app processes,
    and send the postmaster its PID and its socket (a ("spare", (pid, shared version))
    note): the next spawn of a preloaded kind hands the request to it directly, and it
    becomes that child without a fork, or even the server, on the way (clone3 and the first
    copy-on-write faults were most of a respawn). The server forks the next one as soon as
    it is told the last was taken (SPARE_TAKEN): under a stream of connections (pgbench -C)
    the next one then mostly finds a spare, and the postmaster waits for no fork. (Waiting
    for 5 ms of quiet first, so as not to compete with the child just started, left most of
    those connections to a fork on demand, and cost a respawn nothing measurable when
    dropped.) Like every child a spare is the postmaster's (CLONE_PARENT), holds the death
    pipe and PDEATHSIG, and leaves on EOF from the postmaster's end of its socket. False if
    clone3 is refused here."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = _clone_parent()
    except OSError:
        ours.close()
        theirs.close()
        return False
    if pid == 0:
        ours.close()
        channel.close()  # or the postmaster would never see EOF if the server died
        _wait_for_work(theirs, death_fd, postmaster, rehearsal)
    theirs.close()
    with ours:
        try:
            socket.send_fds(channel, [pickle.dumps(("spare", (pid, _shared_version)))], [ours.fileno()])
        except OSError:
            os._exit(0)  # the postmaster is gone
    return True


def _wait_for_work(sock: socket.socket, death_fd: int, postmaster: int, rehearsal: bytes) -> None:
    """A spare's life: wait for a spawn request, then become that child. Never returns."""
    try:
        if _record_dir:
            codelayout.record_calls(_record_dir)
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != postmaster:
            os._exit(1)  # it died before PDEATHSIG was armed
        os.setsid()  # what start_child would do first, done before there is a hurry
        _rehearse(rehearsal)
        set_title(SPARE_TITLE)  # last: `ps` shows a spare once it is about to wait
        _wait_for_request(sock)
        message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
        if not message:
            os._exit(0)  # the postmaster closed our socket, or is gone
        sock.close()
        kind, args, names = _unpack_request(message)
        program = resolve_program(kind)
    except BaseException:  # noqa: BLE001 - report, then exit: never into the server loop
        import traceback

        traceback.print_exc()
        os._exit(1)
    _become_child(program, kind, args, {**dict(zip(names, fds)), DEATH_FD_NAME: death_fd}, postmaster, 0, spare=True)


def _wait_for_request(sock: socket.socket) -> None:
    """Wait until the postmaster's end of `sock` has a request (or EOF: only the postmaster
    holds it, so it closed it or died, and then PDEATHSIG comes too; the death pipe need not
    be watched as well). A signal sent to the spare meanwhile is for the spare, which ignores
    it: it is taken off a signalfd as it comes, rather than left pending for the child. Once
    the request is there, signals stay blocked and pending, for the child (as in any child
    until it has a handler): a signal sent to the new child right after the postmaster named
    it must reach it, however late the spare wakes up."""
    for_the_spare = signal_fd(BLOCKED_UNTIL_HANDLED)
    try:
        while sock not in select.select([sock, for_the_spare], [], [])[0]:
            drain_signalfd(for_the_spare)
    finally:
        os.close(for_the_spare)


def _child_context() -> ModuleType:
    """pgtop.children.context, which serve() imported. Not an import statement: run in every
    child, its machinery would write to the module's spec and loader, and to their pages."""
    return sys.modules["pgtop.children.context"]


def _rehearse(request: bytes) -> None:
    """Unpickle a request like the one this spare will get, and throw it away. A fresh fork
    shares every page with the server, and the first write to one (a new object in a
    half-used pool, a reference count, the type cache) is a page fault that copies it.
    Unpickling a walwriter's arguments took 68 of them (perf trace), ~0.1 ms of a respawn.
    Taken here, while nothing waits, they are this process's own pages when the real request
    comes: 12 faults were left. An optimization only: a request that does not unpickle is
    ignored."""
    if request:
        try:
            kind, args, _ = _unpack_request(request)
            _child_context().child_title(kind, args)  # the first thing the child computes, from the arguments
        except Exception:  # noqa: BLE001, S110 - the real request is checked when it comes
            pass


class _Forker:
    """Fork a child of the postmaster: clone3(CLONE_PARENT), or a double fork if refused.
    Returns (pid, intermediate) in the server and (0, intermediate PID or 0) in the child."""

    def __init__(self, postmaster: int, clone_parent: bool) -> None:
        self.postmaster = postmaster
        self.clone_parent_works = clone_parent

    def __call__(self) -> tuple[int, int]:
        if self.clone_parent_works:
            try:
                return _clone_parent(), 0
            except OSError as error:
                if error.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                    raise
                self.clone_parent_works = False
        return _double_fork()


_CLONE_ARGS_FIELDS = ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
                      "stack_size", "tls")  # fmt: skip


class _CloneArgs(ctypes.Structure):
    """struct clone_args, version 0 (64 bytes)."""

    _fields_ = [(name, ctypes.c_uint64) for name in _CLONE_ARGS_FIELDS]


# syscall()'s arguments for clone3(CLONE_PARENT), made once: the kernel only reads them, and
# what the server makes in its loop it writes again for every child (see SERVER_LOOP). No
# exit_signal with CLONE_PARENT: the child inherits ours (SIGCHLD), as the kernel wants.
_CLONE3_CLONE_PARENT = (
    ctypes.c_long(SYS_CLONE3),
    ctypes.pointer(_CloneArgs(flags=CLONE_PARENT)),
    ctypes.c_size_t(ctypes.sizeof(_CloneArgs)),
)


def _clone_parent() -> int:
    """os.fork(), but the child's parent is our parent (the postmaster).

    What is skipped is glibc's fork() wrapper: C libraries' pthread_atfork handlers (none
    in this small, single-threaded server) and the refresh of glibc's cached thread id,
    which glibc 2.34+ no longer relies on to signal the calling thread.

    Python's own at-fork work (PyOS_BeforeFork / AfterFork) is skipped too while the server
    has one thread, which is always, since nothing in it starts one. That work makes a
    forked interpreter safe when other threads held its locks: it re-creates the GIL, the
    import lock and the runtime's mutexes, deletes the other threads' states, and runs the
    os.register_at_fork hooks (threading's, which rebuilds its locks and thread table;
    logging's; concurrent.futures'). With one thread no lock can be held by anyone else
    and there is no other thread state, so the child's copy of each is already right. Yet
    it is ~250 copy-on-write faults, a quarter of what a backend copies in all: the hooks'
    code, the objects it touches, threading's tables, all written and so copied in every
    child (an interpreter's fork in the server is ~310 faults with it, ~60 without). The
    one hook whose effect matters with one thread, random's reseed, is done where it is
    needed (see `_reseed_random`).
    """
    lean = _one_thread()
    api = ctypes.pythonapi
    if not lean:
        api.PyOS_BeforeFork()
    pid = _libc_holding_gil.syscall(*_CLONE3_CLONE_PARENT)
    if pid == 0:
        if not lean:
            api.PyOS_AfterFork_Child()
        return 0
    error = ctypes.get_errno()
    if not lean:
        api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(error, os.strerror(error))
    return pid


def _one_thread() -> bool:
    """Whether this process has a single thread, as the kernel counts them (threads started
    without the threading module included)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: assume the worst
        return False


def _reseed_random(program: Callable[..., int]) -> None:
    """Every child must draw random numbers of its own, not the sequence of the server's
    generator that all of them copied: reseed the random module's shared generator, as its
    at-fork hook does (skipped by a lean fork, see _clone_parent), for a program that is not
    pgtop's own (a background worker's, say). pgtop's own programs do not use that
    generator (SQL's random() has one per backend), and reseeding it costs ~50 copy-on-write
    faults, so they are spared it."""
    ours = getattr(program, "__module__", "").startswith("pgtop.")
    if not ours and (random := sys.modules.get("random")) is not None:
        random.seed()


def _double_fork() -> tuple[int, int]:
    """Fork an intermediate that forks the child and exits; in the server, return the
    child's PID once the intermediate is reaped, i.e. once the child is the postmaster's."""
    report_read, report_write = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        os.close(report_read)
        me = os.getpid()
        try:
            child = os.fork()
        except OSError as error:
            os.write(report_write, (error.strerror or "fork failed").encode())
            os._exit(1)
        if child == 0:
            os.close(report_write)
            return 0, me
        os.write(report_write, f"pid {child}".encode())
        os._exit(0)
    os.close(report_write)
    with os.fdopen(report_read, "rb") as report:
        outcome = report.read()
    os.waitpid(intermediate, 0)
    if not outcome.startswith(b"pid "):
        raise OSError(0, outcome.decode() or "fork failed")
    return int(outcome[4:]), intermediate


def _become_child(
    program: Callable[..., int],
    kind: str,
    args: dict,
    fds: dict[str, int],
    postmaster: int,
    intermediate: int,
    *,
    spare: bool = False,
) -> None:
    """Once the postmaster is our parent: arm PDEATHSIG, then run the program. Never returns.
    A `spare` armed it, and made itself a session leader, before it waited."""
    code = 1
    try:
        if not spare:
            deadline = time.monotonic() + REPARENT_PATIENCE
            while (parent := os.getppid()) != postmaster:
                if parent != intermediate or time.monotonic() > deadline:
                    os._exit(1)  # adopted by someone else: the postmaster is gone
                os.sched_yield()
            set_parent_death_signal(signal.SIGKILL)
            if os.getppid() != postmaster:
                os._exit(1)  # it died just before PDEATHSIG was armed
        _reseed_random(program)
        code = _child_context().start_child(program, kind, args, fds, postmaster, session_leader=spare)
    except BaseException:  # noqa: BLE001 - report, then exit below whatever happened
        import traceback

        traceback.print_exc()
    finally:  # a child must never return into the server loop
        os._exit(code)
