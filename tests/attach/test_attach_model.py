"""The inference, fed by hand: what pgtop concludes from a postmaster.pid status, a process
table and a log, pushed through in the order a real PostgreSQL 15 produces them."""

from __future__ import annotations

from pgtop.attach.model import AttachModel, SeenProcess
from pgtop.attach.titles import parse_title
from pgtop.core.vocabulary import ExitStatus, LogLevel, PidStatus, PMState, Shutdown
from pgtop.runtime.snapshot import LogRecord

PM = 5992
T0 = 1_000.0
AUX = {5995: "checkpointer", 5996: "background writer", 5999: "walwriter", 6000: "autovacuum launcher", 6001: "logical replication launcher"}


def seen(titles: dict[int, str], started_at: float) -> dict[int, SeenProcess]:
    return {pid: SeenProcess(pid, started_at, parse_title(f"postgres: {title}")) for pid, title in titles.items()}


def log(model: AttachModel, at: float, message: str, pid: int = PM, level: LogLevel = LogLevel.LOG) -> None:
    model.see_log(LogRecord(at=at, pid=pid, backend_type="", level=level, message=message, text=message))


def running(log_followed: bool = True) -> AttachModel:
    model = AttachModel(postmaster_pid=PM, started_at=T0, port=5432, log_followed=log_followed)
    model.see_children(seen(AUX, T0 + 0.1), T0 + 1)
    model.see_pid_status(PidStatus.READY, T0 + 1)
    model.settle_initial(T0 + 1)
    return model


def path(model: AttachModel) -> list[PMState]:
    return [model.transitions[0].before] + [t.after for t in model.transitions]


def test_attaching_to_a_ready_server_with_its_children_infers_pm_run():
    model = running()
    assert model.pm_state == PMState.RUN
    assert sorted(c.kind.value for c in model.state().children.values()) == [
        "autovacuum launcher", "background worker", "background writer", "checkpointer", "walwriter",
    ]


def test_a_killed_checkpointer_is_a_crash_cycle_read_from_the_log():
    model = running()
    model.see_children(seen({p: t for p, t in AUX.items() if p != 5995}, T0 + 0.1), T0 + 10.000, {5995: T0 + 10.000})
    log(model, T0 + 10.001, "checkpointer process (PID 5995) was terminated by signal 9: Killed")
    log(model, T0 + 10.001, "terminating any other active server processes")
    assert (model.pm_state, model.fatal_error) == (PMState.WAIT_BACKENDS, True)
    model.see_children({}, T0 + 10.004)
    log(model, T0 + 10.005, "all server processes terminated; reinitializing")
    model.see_children(seen({6438: "startup", 6440: "checkpointer", 6441: "background writer"}, T0 + 10.02), T0 + 10.05)
    log(model, T0 + 10.1, "redo is not required", pid=6438)
    log(model, T0 + 10.12, "database system is ready to accept connections")
    model.see_children(
        seen({6440: "checkpointer", 6441: "background writer", 6446: "walwriter", 6447: "autovacuum launcher"}, T0 + 10.02), T0 + 10.2
    )
    model.settle(T0 + 11)
    state = model.state()
    assert path(model)[-6:] == [PMState.RUN, PMState.WAIT_BACKENDS, PMState.WAIT_DEAD_END, PMState.NO_CHILDREN, PMState.STARTUP, PMState.RUN]
    assert state.fatal_error is False
    crash = state.last_exit("checkpointer")
    assert (crash.pid, crash.status, crash.verdict) == (5995, ExitStatus.killed(9), "crash, everyone restarts")
    victim = state.last_exit("background writer")
    assert (victim.pid, victim.status, victim.verdict) == (5996, ExitStatus.exited(2), "quit in the crash cycle (inferred)")
    assert state.last_exit("startup").verdict == "recovery finished (inferred)"
    assert state.restarts["checkpointer"] == 1 and state.restarts["walwriter"] == 1


def test_without_a_log_the_crash_cycle_is_inferred_from_the_process_table():
    model = running(log_followed=False)
    model.see_children(seen({p: t for p, t in AUX.items() if p != 5995}, T0 + 0.1), T0 + 10.0, {5995: T0 + 10.0})
    assert (model.pm_state, model.fatal_error) == (PMState.WAIT_BACKENDS, True)
    model.see_children({}, T0 + 10.01)
    model.see_children(seen({6438: "startup", 6440: "checkpointer"}, T0 + 10.02), T0 + 10.05)
    assert model.pm_state == PMState.STARTUP
    model.see_children(seen({6440: "checkpointer", 6446: "walwriter"}, T0 + 10.02), T0 + 10.3)
    assert path(model)[-6:] == [PMState.RUN, PMState.WAIT_BACKENDS, PMState.WAIT_DEAD_END, PMState.NO_CHILDREN, PMState.STARTUP, PMState.RUN]
    state = model.state()
    assert state.fatal_error is False
    crash = state.last_exit("checkpointer")  # how it died is not visible without the log
    assert (crash.pid, crash.status, crash.verdict) == (5995, None, "crash, everyone restarts (inferred)")
    victim = state.last_exit("walwriter")  # nor how the others ended: the crash itself is inferred
    assert (victim.status, victim.verdict) == (None, "quit in the crash cycle (inferred)")


def test_without_a_log_a_crash_seen_late_still_ends_in_pm_run():
    """A busy watcher sees the checkpointer's death 80 ms late, and by its next look the
    whole crash cycle is over: the new children started before the death was seen. They
    are new all the same (their PIDs were unknown before the crash), so the postmaster has
    reinitialised."""
    model = running(log_followed=False)
    model.see_children(seen({p: t for p, t in AUX.items() if p != 5995}, T0 + 0.1), T0 + 10.08, {5995: T0 + 10.08})
    assert (model.pm_state, model.fatal_error) == (PMState.WAIT_BACKENDS, True)
    model.see_children(seen({6440: "checkpointer", 6441: "background writer", 6446: "walwriter"}, T0 + 10.03), T0 + 10.3)
    model.settle(T0 + 11)
    assert model.pm_state == PMState.RUN and model.fatal_error is False


def test_a_fast_shutdown_walks_every_state_to_the_exit():
    model = running()
    log(model, T0 + 20.0, "received fast shutdown request")
    assert (model.pm_state, model.shutdown, model.pid_status) == (PMState.WAIT_BACKENDS, Shutdown.FAST, PidStatus.STOPPING)
    log(model, T0 + 20.01, "aborting any active transactions")
    model.see_children(seen({5995: "checkpointer"}, T0 + 0.1), T0 + 20.02)
    log(model, T0 + 20.03, 'background worker "logical replication launcher" (PID 6001) exited with exit code 1')
    log(model, T0 + 20.04, "shutting down", pid=5995)
    model.see_children({}, T0 + 20.06, {5995: T0 + 20.06})
    log(model, T0 + 20.07, "database system is shut down")
    model.see_postmaster_exit(T0 + 20.08)
    assert path(model)[-6:] == [PMState.RUN, PMState.WAIT_BACKENDS, PMState.SHUTDOWN, PMState.SHUTDOWN_2, PMState.WAIT_DEAD_END, PMState.NO_CHILDREN]
    state = model.state()
    assert state.exit_code == 0
    assert state.last_exit("background worker logical replication launcher").verdict == "ended by the shutdown"
    assert state.last_exit("checkpointer").verdict == "shutdown checkpoint done (inferred)"
    assert state.last_exit("walwriter").verdict == "ended by the shutdown (inferred)"


def test_a_smart_shutdown_waits_in_pm_run_until_the_last_client_leaves():
    model = running()
    clients = {**AUX, 7000: "alice shop [local] idle"}
    model.see_children(seen(clients, T0 + 2), T0 + 3)
    log(model, T0 + 30, "received smart shutdown request")
    assert model.pm_state == PMState.RUN and model.conns_allowed.name == "NONE"
    model.see_children(seen(AUX, T0 + 0.1), T0 + 31, {7000: T0 + 31})
    assert model.transitions[-1].after == PMState.WAIT_BACKENDS
    assert model.transitions[-1].rule == "T2: smart shutdown and no client left"


def test_attaching_in_the_middle_of_things_reads_the_pid_file_and_the_children():
    stopping = AttachModel(postmaster_pid=PM, started_at=T0, port=5432, log_followed=False)
    stopping.see_children(seen({5995: "checkpointer"}, T0), T0 + 1)
    stopping.see_pid_status(PidStatus.STOPPING, T0 + 1)
    stopping.settle_initial(T0 + 1)
    assert (stopping.pm_state, stopping.shutdown) == (PMState.SHUTDOWN, Shutdown.SMART)
    standby = AttachModel(postmaster_pid=PM, started_at=T0, port=5432, log_followed=False)
    standby.see_children(seen({6438: "startup recovering 000000010000000000000003"}, T0), T0 + 1)
    standby.see_pid_status(PidStatus.READY, T0 + 1)
    standby.settle_initial(T0 + 1)
    assert standby.pm_state == PMState.HOT_STANDBY


def test_a_new_childs_untitled_moment_is_not_shown_as_a_client():
    model = running()
    untitled = {7001: SeenProcess(7001, T0 + 5.0, parse_title("/usr/lib/postgresql/15/bin/postgres -D /data"))}
    model.see_children({**seen(AUX, T0 + 0.1), **untitled}, T0 + 5.01)
    assert 7001 not in model.children
    model.see_children({**seen(AUX, T0 + 0.1), 7001: SeenProcess(7001, T0 + 5.0, parse_title("postgres: walwriter"))}, T0 + 5.05)
    assert model.children[7001].kind.value == "walwriter"


def test_the_inference_touches_nothing_in_the_world():
    """The model and its rules are pure: observations in, State out (like pgtop.core)."""
    import ast
    from pathlib import Path

    import pgtop.attach

    forbidden = {"os", "psutil", "socket", "subprocess", "select", "selectors", "signal", "threading", "time", "textual", "psycopg"}
    package = Path(pgtop.attach.__file__).parent
    for name in ("model", "log_inference", "process_inference", "verdicts", "logrules", "titles"):
        tree = ast.parse((package / f"{name}.py").read_text())
        roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not roots & forbidden, f"{name}.py imports {sorted(roots & forbidden)}"
