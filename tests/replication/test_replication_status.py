"""`pgtop ctl status --json` on both sides of streaming replication: the standby's received,
flushed and replayed positions, the primary's view of them, and the lag between."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from standby_support import connect

DEADLINE = 20.0


def status(datadir: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "pgtop", "ctl", "-D", str(datadir), "status", "--json"],
                            check=True, capture_output=True, text=True, timeout=DEADLINE)
    return json.loads(result.stdout)


def test_status_json_shows_the_standby_caught_up(make_cluster: Any, make_standby: Any) -> None:
    primary = make_cluster().start()
    assert status(primary.datadir)["replication"] is None  # nobody streams from it yet
    standby = make_standby(primary).start_standby()
    with connect(primary) as session:
        session.execute("create table t (a int)")
        session.execute("insert into t values (1)")
        end = session.execute("select pg_current_wal_lsn()").fetchone()[0]

    def caught_up(s: dict[str, Any]) -> bool:
        replication = s.get("replication") or {}
        return replication.get("replay_lsn") == str(end) and replication.get("replay_lag_bytes") == 0

    standby.wait_for(lambda s: caught_up(status(standby.datadir)), timeout=DEADLINE)
    seen = status(standby.datadir)["replication"]
    assert (seen["role"], seen["streaming"], seen["flush_lsn"]) == ("standby", True, str(end))
    primary.wait_for(lambda s: caught_up(status(primary.datadir)), timeout=DEADLINE)
    assert status(primary.datadir)["replication"]["role"] == "primary"
