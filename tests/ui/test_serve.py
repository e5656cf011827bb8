"""`pgtop serve` in a real browser: headless Chromium (Debian's package) loads the page and the
served dashboard shows the pmState and the postmaster's PID. Every tab watches the one
cluster; serve starts a cluster when none runs and stops it when it exits.

Chromium is driven over the DevTools protocol (aiohttp, which textual-serve already needs).
The terminal is drawn on a canvas, so the test reads what the page's terminal was sent: an
init script records every websocket message the page receives.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from pgtop.runtime import pidfile
from pgtop.runtime.datadir import init_datadir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package (apt-get install -y chromium): not installed"
)
pytest.importorskip("textual_serve", reason="needs textual-serve (pip install textual-serve)")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Its anonymous shared memory in TMPDIR (the scratch directory close() removes), not in
    # /dev/shm: a Chromium ended at the wrong moment left .org.chromium.Chromium.* files there.
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--window-size=1600,1000",  # room for the whole dashboard (160 columns)
]
RECORD_TERMINAL = """
(() => {
  window.__terminalText = "";
  const decoder = new TextDecoder();
  const Native = window.WebSocket;
  function Recording(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("message", (event) => {
      const data = event.data;
      if (typeof data === "string") { window.__terminalText += data; }
      else if (data instanceof ArrayBuffer) { window.__terminalText += decoder.decode(data, {stream: true}); }
      else if (data instanceof Blob) { data.text().then((text) => { window.__terminalText += text; }); }
    });
    return ws;
  }
  Recording.prototype = Native.prototype;
  Object.assign(Recording, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Recording;
})();
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[PX^_][^\x1b]*\x1b\\|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b.")
DEADLINE = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """One headless Chromium with a fresh profile, driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        # Its scratch directory (org.chromium.Chromium.*, with the singleton socket) stays
        # behind when it is ended: give it one of its own, removed at close(). Short, as a
        # Unix socket's path must be.
        self.scratch = Path(tempfile.mkdtemp(prefix="pgtop-chromium-"))
        self.process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "TMPDIR": str(self.scratch)},
        )
        try:
            self.port = self._devtools_port()
        except BaseException:
            self.close()
            raise

    def _devtools_port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().splitlines()[0])
            assert self.process.poll() is None, f"chromium exited with code {self.process.returncode}"
            time.sleep(0.05)  # polling for the file chromium writes, with a deadline
        raise AssertionError("chromium did not open its DevTools port")

    async def terminal_text(self, url: str, wanted: list[str], *, timeout: float = DEADLINE, close: bool = True) -> str:
        """Open `url` in a new tab; the text its terminal got once every `wanted` string is
        there. The tab is closed after, unless `close` is false."""
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as reply:
                target = await reply.json(content_type=None)
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = _Page(ws)
                await page.call("Page.enable")
                await page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_TERMINAL)
                await page.call("Page.navigate", url=url)
                deadline = time.monotonic() + timeout
                text, shown = "", False
                while time.monotonic() < deadline:
                    state = await page.evaluate("[document.body && document.body.classList.contains('-first-byte'), window.__terminalText || '']")
                    shown, text = bool(state[0]), ANSI.sub("", state[1])
                    if shown and all(word in text for word in wanted):
                        break
                    await asyncio.sleep(0.2)  # polling the page, with a deadline
                else:
                    raise AssertionError(f"terminal shown: {shown}; {wanted} not all in the page's terminal text:\n{text[-2000:]}")
            if close:
                async with http.get(f"http://127.0.0.1:{self.port}/json/close/{target['id']}"):
                    pass  # the tab goes, and with it the viewer it was served
        return text

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        shutil.rmtree(self.scratch, ignore_errors=True)


class _Page:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("id") == self.next_id:
                assert "error" not in message, message["error"]
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


class Serve:
    """`pgtop serve` in a subprocess of its own (no -D when `datadir` is None)."""

    def __init__(self, datadir: Path | None, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://localhost:{self.port}/"
        target = ["-D", str(datadir)] if datadir is not None else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pgtop.ui.serve", "serve", *target, "--port", str(self.port), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited: {self.process.stdout.read()}"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)  # polling for the HTTP port, with a deadline
        raise AssertionError("serve did not listen in time")

    def stop(self) -> str:
        """SIGTERM, as a service manager would; serve's output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            output, _ = self.process.communicate(timeout=10)
        print(f"pgtop serve's output:\n{output}")  # pytest shows it if the test fails
        return output


@pytest.fixture
def browser(tmp_path):
    started = Browser(tmp_path / "profile")
    yield started
    started.close()


def viewers(serve: Serve, marker: str = "view") -> list[psutil.Process]:
    """The living viewer processes of serve's tabs (`marker`: a word of their command line)."""
    found = []
    for process in psutil.Process(serve.process.pid).children(recursive=True):
        try:
            if marker in process.cmdline() and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def open_tab_viewer(serve: Serve, browser: Browser, wanted: list[str], marker: str = "view") -> psutil.Process:
    """Open one more tab, left open, once it shows `wanted`; the viewer serving it."""
    before = {p.pid for p in viewers(serve, marker)}
    asyncio.run(browser.terminal_text(serve.url, wanted, close=False))
    new = [p for p in viewers(serve, marker) if p.pid not in before]
    assert len(new) == 1, f"one new viewer per tab, got {new}"
    return new[0]


def _running(process: psutil.Process) -> bool:
    """Still running: a zombie has ended (whoever its parent is now reaps it)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_ends(processes: list[psutil.Process], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while any(_running(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the process table, with a deadline
    alive = [p.pid for p in processes if _running(p)]
    assert not alive, f"{what}: {alive} still running"


def test_every_tab_watches_the_one_running_cluster(make_cluster, browser):
    cluster = make_cluster().start()
    serve = Serve(cluster.datadir)
    try:
        first = asyncio.run(browser.terminal_text(serve.url, ["PM_RUN", str(cluster.pid)]))
        second = asyncio.run(browser.terminal_text(serve.url, ["PM_RUN", str(cluster.pid)], close=False))
        assert "normal operation" in first and "normal operation" in second
        tab_viewers = viewers(serve)
        assert tab_viewers, "the open tab is served by a `pgtop view` process of its own"
        # No supervisor of their own: the one postmaster is still the only one, unchanged.
        status = cluster.status()
        assert status["postmaster_pid"] == cluster.pid and status["pm_state"] == "PM_RUN"
        assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and "run" in p.info["cmdline"]
                    and str(cluster.datadir) in p.info["cmdline"] and p.pid != cluster.pid]
    finally:
        output = serve.stop()
    assert cluster.process.poll() is None, "serve must not stop a cluster it did not start"
    assert "stopped" not in output
    assert_ends(tab_viewers, "the viewer of a tab still open must end with serve")


def test_serve_starts_a_cluster_when_none_runs_and_stops_it_on_exit(tmp_path, browser):
    datadir = tmp_path / "data"
    socket_dir = tmp_path / "sock"
    socket_dir.mkdir()
    init_datadir(datadir, port=_free_port())
    with open(datadir / "pgtop.yaml", "a") as config:
        config.write(f"unix_socket_directories: {json.dumps(str(socket_dir))}\n")
    serve = Serve(datadir)
    try:
        contents = pidfile.read(datadir)
        assert contents is not None, "serve should have started a postmaster before serving"
        text = asyncio.run(browser.terminal_text(serve.url, ["PM_RUN", str(contents.pid)]))
        assert "viewer of the cluster" in text
        postmaster = psutil.Process(contents.pid)
        family = [postmaster, *postmaster.children(recursive=True)]
    finally:
        output = serve.stop()
    assert "started the cluster" in output and "stopped (exit code 0)" in output
    assert pidfile.read(datadir) is None
    psutil.wait_procs(family, timeout=10)
    assert not [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not list(socket_dir.glob(".s.PGSQL.*"))


def test_a_tabs_viewer_ends_on_sigterm_and_when_serve_is_killed(make_cluster, browser):
    """A tab's viewer is serve's own child (not a shell's): SIGTERM ends it, and so does the
    parent-death signal when serve is killed outright, with no chance to close anything."""
    cluster = make_cluster().start()
    serve = Serve(cluster.datadir)
    try:
        first = open_tab_viewer(serve, browser, ["PM_RUN", str(cluster.pid)])
        assert first.ppid() == serve.process.pid
        first.send_signal(signal.SIGTERM)
        assert_ends([first], "a viewer sent SIGTERM")
        second = open_tab_viewer(serve, browser, ["PM_RUN", str(cluster.pid)])
        serve.process.kill()  # SIGKILL to serve alone: its viewers are not signalled by us
        assert_ends([second], "the viewer of a killed serve")
    finally:
        serve.stop()
    assert cluster.process.poll() is None and cluster.status()["pm_state"] == "PM_RUN"
