"""Observed or inferred, on screen, over a real PostgreSQL 15: the pmState banner says what
pmState was inferred from, each line of the facts panel is tagged, and a death no log line
explains shows "unknown" where a guessed exit code used to be."""

from __future__ import annotations

import os
import re
import signal

from test_attach_dashboard import (
    banner,
    options,
    row_pid,
    rows,
    run_dashboard,
    running,
    until,
)

from pgtop.attach.control import AttachController
from pgtop.attach.locate import locate
from pgtop.attach.source import AttachSource, attach_source
from pgtop.attach.watcher import AttachWatcher
from pgtop.ui.widgets.cluster_facts import ClusterFacts

FACT_LINE = re.compile(r"^(exit code|\S+)\s+(.*?)\s+(observed|inferred)$")


def facts(app) -> dict[str, tuple[str, str]]:
    """The facts panel as shown: name -> (value, tag)."""
    lines = app.query_one(ClusterFacts).lines()
    matched = [FACT_LINE.match(line) for line in lines]
    assert all(matched), f"a line without its tag: {lines}"
    return {m.group(1): (m.group(2), m.group(3)) for m in matched if m}


def without_the_log(server) -> AttachSource:
    watcher = AttachWatcher(locate(data_dir=server.data_dir), follow_log=False, activity=False)
    return AttachSource(AttachController(watcher), watcher, "PostgreSQL 15, owner postgres", owns_cluster=False)


def test_the_banner_and_every_fact_say_whether_they_were_observed_or_inferred(server):
    postmaster = server.postmaster_pid()
    source = attach_source(options(pgdata=str(server.data_dir)))

    async def scenario(pilot, app) -> None:
        await running(pilot, app)
        await until(pilot, "pmState from all three", lambda: banner(app) == "PM_RUN inferred\nnormal operation\nfrom the log, ps and postmaster.pid")
        shown = facts(app)
        assert shown["PID"] == (str(postmaster), "observed")
        assert shown["uptime"][1] == "observed"
        assert shown["children"] == (str(len(app.snapshot.state.children)), "observed")
        for name in ("FatalError", "connsAllowed", "startup"):
            assert shown[name][1] == "inferred", name
        assert shown["FatalError"][0] == "false" and shown["connsAllowed"][0] == "ALLOW_ALL_CONNS"

    run_dashboard(source, options(), scenario)


def test_without_the_log_a_crash_cycle_leaves_unknown_statuses_not_guessed_codes(server):
    source = without_the_log(server)

    async def scenario(pilot, app) -> None:
        await running(pilot, app)
        assert banner(app) == "PM_RUN inferred\nnormal operation\nfrom ps and postmaster.pid"
        old = {kind: row_pid(app, kind) for kind in ("checkpointer", "walwriter")}
        os.kill(old["checkpointer"], signal.SIGKILL)
        await until(pilot, "a new checkpointer and walwriter in PM_RUN", lambda: banner(app).startswith("PM_RUN")
                    and row_pid(app, "checkpointer") not in (None, old["checkpointer"])
                    and row_pid(app, "walwriter") not in (None, old["walwriter"]))
        new = {kind: row_pid(app, kind) for kind in old}
        shown = rows(app)
        assert shown["checkpointer"]["last_exit"] == "unknown"
        assert shown["checkpointer"]["lineage"].startswith(f"{old['checkpointer']} → {new['checkpointer']}, crash, everyone restarts (inferred), back in ")
        assert shown["walwriter"]["last_exit"] == "unknown"
        assert shown["walwriter"]["lineage"].startswith(f"{old['walwriter']} → {new['walwriter']}, quit in the crash cycle (inferred), back in ")

    run_dashboard(source, options(), scenario)
