"""Every key of the dashboard against a recording controller: what is sent, what is said."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandList
from textual.widgets import Label
from ui_pilot import drive, wait_for

from pgtop.core.vocabulary import ChildKind, Shutdown, Sig
from pgtop.runtime.snapshot import ShutdownMode
from pgtop.ui import fake
from pgtop.ui.screens.confirm_screen import ConfirmScreen
from pgtop.ui.screens.help_screen import HelpScreen
from pgtop.ui.widgets.caption import Caption

WALWRITER = fake.running_state().special(ChildKind.WALWRITER)


def caption(app) -> str:
    return str(app.query_one(Caption).render())


def question(app) -> str:
    assert isinstance(app.screen, ConfirmScreen), "no confirmation dialog is open"
    return str(app.screen.query_one("#question", Label).render())


def started(make_app, state=None, **options):
    app = make_app(**options)
    app.post_snapshot(fake.snapshot_of(state or fake.running_state()))
    return app


async def select_walwriter(pilot) -> None:
    # Rows: background writer, checkpointer, walwriter, ...
    await pilot.press("down", "down")


def test_reload_sends_sighup_without_asking(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("r")
        assert controller.calls == [("reload",)]
        assert caption(app) == "reload requested: SIGHUP sent to postmaster 4242"

    drive(app, scenario)


@pytest.mark.parametrize(
    ("key", "mode", "signal"),
    [("s", ShutdownMode.SMART, "SIGTERM"), ("f", ShutdownMode.FAST, "SIGINT"), ("i", ShutdownMode.IMMEDIATE, "SIGQUIT")],
)
def test_shutdown_keys_confirm_then_send(make_app, controller, key, mode, signal):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press(key)
        assert question(app) == f"Send {signal} ({mode.value} shutdown) to the postmaster (PID 4242)?"
        assert controller.calls == []
        await pilot.click("#confirm")
        await pilot.pause()
        assert controller.calls == [("shutdown", mode)]
        assert caption(app) == f"{mode.value} shutdown requested: {signal} sent to postmaster 4242"

    drive(app, scenario)


def test_cancel_is_focused_and_sends_nothing(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("i")
        assert app.screen.focused.id == "cancel"
        await pilot.press("enter")
        assert not isinstance(app.screen, ConfirmScreen)
        assert controller.calls == []
        assert caption(app) == "cancelled: nothing sent"

    drive(app, scenario)


@pytest.mark.parametrize(("key", "requested"), [("s", "smart"), ("f", "fast")])
def test_shutdown_not_stronger_than_the_current_level_is_refused(make_app, controller, key, requested):
    app = started(make_app, fake.shutdown_state(Shutdown.FAST))

    async def scenario(pilot):
        await pilot.press(key)
        assert not isinstance(app.screen, ConfirmScreen)
        assert controller.calls == []
        assert caption(app) == f"{requested} shutdown ignored: a fast shutdown is already under way"
        await pilot.press("i", "y")
        assert controller.calls == [("shutdown", ShutdownMode.IMMEDIATE)]

    drive(app, scenario)


def test_level_rising_while_the_dialog_is_open_refuses_at_confirm_time(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("s")
        app.post_snapshot(fake.snapshot_of(fake.shutdown_state(Shutdown.IMMEDIATE)))
        await pilot.pause()
        await pilot.press("y")
        assert controller.calls == []
        assert caption(app) == "smart shutdown ignored: an immediate shutdown is already under way"

    drive(app, scenario)


@pytest.mark.parametrize(("key", "signal"), [("k", Sig.KILL), ("t", Sig.TERM), ("q", Sig.QUIT), ("z", Sig.STOP)])
def test_child_signal_names_pid_kind_and_signal_and_pins_the_start_time(make_app, controller, key, signal):
    app = started(make_app)

    async def scenario(pilot):
        await select_walwriter(pilot)
        await pilot.press(key)
        assert question(app) == f"Send SIG{signal.name} to walwriter (PID 4245)?"
        await pilot.press("y")
        assert controller.calls == [("signal_child", 4245, WALWRITER.started_at, signal)]
        assert caption(app) == f"SIG{signal.name} sent to walwriter (PID 4245)"

    drive(app, scenario)


def test_sigcont_needs_no_confirmation(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await select_walwriter(pilot)
        await pilot.press("c")
        assert controller.calls == [("signal_child", 4245, WALWRITER.started_at, Sig.CONT)]

    drive(app, scenario)


def test_no_confirm_mode_sends_at_once_and_says_so_in_the_header(make_app, controller):
    app = started(make_app, confirm=False)

    async def scenario(pilot):
        assert "confirmations OFF" in str(app.query_one("StatusLine").render())
        await select_walwriter(pilot)
        await pilot.press("k")
        assert not isinstance(app.screen, ConfirmScreen)
        assert controller.calls == [("signal_child", 4245, WALWRITER.started_at, Sig.KILL)]

    drive(app, scenario)


def test_readonly_sends_nothing_for_any_command_key(make_app, controller):
    app = started(make_app, readonly=True, confirm=False)
    stopped = fake.snapshot_of(fake.stopped_state())

    async def scenario(pilot):
        assert "read-only" in str(app.query_one("StatusLine").render())
        await select_walwriter(pilot)
        for key in "rsfikt" + "qzcpwo":
            app.query_one(Caption).say("")
            await pilot.press(key)
            assert caption(app) == "read-only: nothing sent", key
        app.post_snapshot(stopped)
        await pilot.pause()
        await pilot.press("S")
        assert caption(app) == "read-only: nothing sent"
        assert controller.calls == []

    drive(app, scenario)


def test_signal_on_a_throttled_row_sends_nothing(make_app, controller):
    app = started(make_app, fake.throttled_state())

    async def scenario(pilot):
        await pilot.press("down", "down", "down", "down")  # the throttled archiver
        await pilot.press("k")
        assert controller.calls == []
        assert caption(app) == "no running child selected: nothing sent"

    drive(app, scenario)


def test_command_refused_becomes_a_message(make_app, controller):
    controller.refuse["signal_child"] = "PID 4245 is gone: nothing sent"
    controller.refuse["promote"] = "promote ignored: the server is not in standby"
    app = started(make_app, confirm=False)

    async def scenario(pilot):
        await select_walwriter(pilot)
        await pilot.press("k")
        assert caption(app) == "PID 4245 is gone: nothing sent"
        await pilot.press("p")
        assert caption(app) == "promote ignored: the server is not in standby"
        assert app.is_running

    drive(app, scenario)


def test_os_error_from_the_controller_becomes_a_message(make_app, controller):
    def gone(*args):
        raise ProcessLookupError(3, "No such process")

    controller.signal_child = gone
    app = started(make_app, confirm=False)

    async def scenario(pilot):
        await select_walwriter(pilot)
        await pilot.press("k")
        assert caption(app) == "SIGKILL sent to walwriter (PID 4245): failed: No such process"

    drive(app, scenario)


def test_promote_confirms(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("p")
        assert question(app) == "Promote the standby (postmaster PID 4242) to a primary?"
        await pilot.press("y")
        assert controller.calls == [("promote",)]

    drive(app, scenario)


def test_start_only_when_stopped(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("S")
        assert controller.calls == []
        assert caption(app) == "start ignored: the cluster is running"
        app.post_snapshot(fake.snapshot_of(fake.stopped_state()))
        await pilot.pause()
        await pilot.press("S")
        assert controller.calls == [("start",)]
        assert caption(app) == "starting the cluster"

    drive(app, scenario)


class BareController:
    """The Controller protocol and nothing more."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name in ("reload", "shutdown", "signal_child", "promote", "logrotate", "start"):
            return lambda *args: self.calls.append((name, *args))
        raise AttributeError(name)


def test_client_load_and_session_use_the_controller_extras(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("w", "o")
        assert controller.calls == [("load_toggle",), ("open_session",)]
        assert caption(app) == "client session opened"

    drive(app, scenario)


def test_client_load_and_session_unavailable_without_extras(make_app):
    bare = BareController()
    app = started(make_app, controller=bare)

    async def scenario(pilot):
        await pilot.press("w")
        assert caption(app) == "client load unavailable here"
        await pilot.press("o")
        assert caption(app) == "client sessions unavailable here"
        assert bare.calls == []

    drive(app, scenario)


def test_theme_key_cycles_pgtop_themes_then_builtins(make_app):
    app = started(make_app)

    async def scenario(pilot):
        assert app.theme == "pgtop-dark"
        seen = []
        for _ in range(4):
            await pilot.press("T")
            seen.append(app.theme)
        assert seen[:2] == ["pgtop-high-contrast", "pgtop-light"]
        assert seen[2] in app.available_themes and not seen[2].startswith("pgtop-")
        assert caption(app) == f"theme: {seen[-1]}"

    drive(app, scenario)


def test_screenshot_key_saves_an_svg_and_says_where(make_app, tmp_path):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("x")
        saved = list(tmp_path.glob("*.svg"))
        assert len(saved) == 1 and "<svg" in saved[0].read_text()
        assert caption(app) == f"screenshot saved to {Path(saved[0])}"

    drive(app, scenario)


def test_help_lists_every_binding_with_its_key(make_app):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("Static").render())
        for line in ("k  SIGKILL the selected child", "Q  Fast shutdown, then leave", "?  Show every key"):
            assert line in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

    drive(app, scenario)


def test_keys_can_be_remapped_by_binding_id(make_app, controller):
    app = started(make_app, confirm=False)

    async def scenario(pilot):
        app.set_keymap({"kill-child": "K"})
        await select_walwriter(pilot)
        await pilot.press("k")
        assert controller.calls == []
        await pilot.press("K")
        assert controller.calls == [("signal_child", 4245, WALWRITER.started_at, Sig.KILL)]
        assert ("K", "SIGKILL the selected child") in app.key_table()

    drive(app, scenario)


def test_command_palette_runs_the_same_actions(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("ctrl+p")
        await pilot.press(*"SIGHUP to the postmaster")
        await wait_for(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: controller.calls == [("reload",)])

    drive(app, scenario)


def test_quit_asks_shuts_down_fast_and_leaves_once_the_cluster_is_gone(make_app, controller):
    app = started(make_app)

    async def scenario(pilot):
        await pilot.press("Q")
        assert question(app) == "Stop the cluster with a fast shutdown (SIGINT to postmaster PID 4242) and quit?"
        await pilot.press("y")
        assert controller.calls == [("shutdown", ShutdownMode.FAST)]
        assert app.is_running
        app.post_snapshot(fake.snapshot_of(fake.stopped_state()))
        await wait_for(pilot, lambda: not app.is_running)
        assert controller.calls[-1] == ("close",)

    drive(app, scenario)


def test_quit_twice_leaves_without_waiting(make_app, controller):
    app = started(make_app, confirm=False)

    async def scenario(pilot):
        await pilot.press("Q")
        assert app.is_running
        await pilot.press("Q")
        await wait_for(pilot, lambda: not app.is_running)

    drive(app, scenario)


def test_quit_in_readonly_mode_leaves_the_cluster_alone(make_app, controller):
    app = started(make_app, readonly=True)

    async def scenario(pilot):
        await pilot.press("Q")
        await wait_for(pilot, lambda: not app.is_running)
        assert controller.calls == []

    drive(app, scenario)


def test_quit_refused_by_the_controller_says_why_and_q_again_leaves(make_app, controller):
    controller.refuse["shutdown"] = "fast shutdown ignored: the postmaster is busy"
    app = started(make_app, confirm=False)

    async def scenario(pilot):
        await pilot.press("Q")
        assert caption(app) == "fast shutdown ignored: the postmaster is busy"
        assert app.is_running
        await pilot.press("Q")
        await wait_for(pilot, lambda: not app.is_running)

    drive(app, scenario)
