"""pgtop.yaml fuzzed against a running postmaster: a broken file keeps the running one.

One real cluster for the whole test. For each Hypothesis-made broken or odd pgtop.yaml (bad
YAML, bad bytes, wrong types, unknown names, values out of range, postmaster-context
changes, time zones and date styles nobody knows), the test writes the file and sends SIGHUP,
then checks what a user would: the log says what PostgreSQL would say, ending with
'configuration file "..." contains errors; ...'; the postmaster is in PM_RUN with the same
PID and every child with its PID; a client still sees the old values; and a reload of the
good file changes nothing but the one parameter it was meant to change, so no other value
moved. The log lines are predicted by the model (configfile + guc, checked against
PostgreSQL's wording in their own tests) and each must also read as one of PostgreSQL's
messages.

Bounded: 30 files, one cluster, a few seconds.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from pgtop.common.configfile import load_config_at_startup, read_config_file
from pgtop.core.actions import Log
from pgtop.core.config import Config
from pgtop.core.guc import apply_config_file, field_name

RELOADING = "LOG:  received SIGHUP, reloading configuration files"
WAIT = 5.0  # seconds for a reload's log lines (they take milliseconds)
# What the running cluster starts with: reloadable values away from their defaults, so that
# "old value" and "default" differ; log_connections so that every client's backend writes
# log lines with the configuration it was given.
BASE = {"bgwriter_delay": 250, "statement_timeout": "1min", "log_connections": True, "application_name": "fuzz-0"}
SHOWN = {"bgwriter_delay": "250ms", "statement_timeout": "1min", "log_connections": "on"}

# Every line a reload of a broken file may log, in PostgreSQL's words.
POSTGRESQL_FORMS = [re.compile(form, re.DOTALL) for form in (
    r'syntax error in file "[^"]+" line \d+, near (token ".*"|end of line)',
    r'invalid byte sequence for encoding "UTF8": 0x[0-9a-f]{2} in file "[^"]+" line \d+',
    r'configuration file "[^"]+" must be a mapping of parameter names to values, not (a list|a single value)',
    r'configuration file "[^"]+" is nested too deeply',
    r'parameter ".*" is set twice in file "[^"]+": lines \d+ and \d+',
    r'parameter ".*" in file "[^"]+" line \d+ has (a nested mapping|a list); expected a single value.*',
    r'invalid parameter name in file "[^"]+" line \d+: a name must be a plain word',
    r'invalid value for parameter ".*"( in file "[^"]+" line \d+)?: .*',
    r'unrecognized configuration parameter ".*" in file "[^"]+" line \d+',
    r'parameter "[a-z_.]+" cannot be changed without restarting the server',
    r'parameter "[a-z_.]+" requires a Boolean value',
    r'-?\d+( [a-zA-Z]+)? is outside the valid range for parameter "[a-z_.]+" \(-?\d+ \.\. -?\d+\)',
    r'(DETAIL|HINT):  .*',
    r'configuration file "[^"]+" contains errors; (no changes|unaffected changes) were applied',
)]  # fmt: skip


# -- broken files -----------------------------------------------------------------------------

_BAD_VALUES: dict[str, list[Any]] = {
    "checkpoint_timeout": ["lots", "5 parsecs", "1e400", "9" * 400, "9" * 400 + "min", "\u0661\u0662", "0x10", "",
                           True, 29, 86401, 10**20, -(10**20), "99999999999min", "-5min"],
    "bgwriter_delay": ["fast", "1 fortnight", 9, 10001, "2.5 kB", False, "nan", 1e400],
    "autovacuum": ["maybe", "o", 2, "", "onn"],
    "log_min_messages": ["loud", "", 5, "warnings"],
    "log_destination": ["syslog", "csvlog", ""],
    "log_timezone": ["Nowhere/Nope", "Europe", "", "zone.tab", "../../etc/passwd", "UTC+3"],
    "timezone": ["Mars/Olympus", "europe", "/etc/localtime"],
    "datestyle": ["nope", "sql, iso", "ISO MDY", "iso,,mdy", "ymd, dmy"],
}
_RESTART_ONLY = ["max_connections: 50", "max_worker_processes: 9", "wal_level: logical", "listen_addresses: '*'",
                 "archive_mode: 'on'", "hot_standby: off", "logging_collector: on", "autovacuum_max_workers: 5",
                 "superuser_reserved_connections: 2", "max_wal_senders: 5"]  # fmt: skip
_SYNTAX = ["foo: [", "bar baz: : 1", "\t- x", "key: 'unterminated", "  indented: 1", "---", "- item", "x: {",
           "x: `y", "a: b: c", "x: *undefined", "checkpoint_timeout: !!int five", "port: !custom 1",
           "checkpoint_timeout: {a: 1}", "listen_addresses: [a, b]", "? [a, b]\n: 1", "bgwriter_delay: 250",
           "BGWRITER_DELAY: 300", "x: " + "[" * 3000, "ok: \x00", "weird: \x1b[31m", "..."]  # fmt: skip
_WHOLE_FILES = ["- a\n- b\n", "just a scalar\n", "[port, 5432]\n", "{port: [\n"]


def _unknown_name() -> st.SearchStrategy[str]:
    typos = st.sampled_from(["max_conections", "work_mem", "shared_buffers", "autovacum", "bgwriter", "Port2"])
    words = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(lambda name: field_name(name) is None)
    return st.one_of(typos, words)


@st.composite
def broken_file(draw: st.DrawFn, base_lines: list[str]) -> bytes:
    """The running cluster's file with one to three things wrong with it (each of them is
    wrong alone: the file is broken, and nothing in it may change)."""
    lines = list(base_lines)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "restart", "syntax", "unknown", "whole"]))
        if kind == "value":
            name = draw(st.sampled_from(sorted(_BAD_VALUES)))
            lines.append(f"{name}: {json.dumps(draw(st.sampled_from(_BAD_VALUES[name])))}")
        elif kind == "restart":
            lines.append(draw(st.sampled_from(_RESTART_ONLY)))
        elif kind == "syntax":  # never first nor last: "---" first or "..." last is fine YAML
            lines.insert(draw(st.integers(1, max(1, len(lines) - 1))), draw(st.sampled_from(_SYNTAX)))
        elif kind == "unknown":
            lines.append(f"{draw(_unknown_name())}: {draw(st.sampled_from(['1', 'on', 'x', '']))}")
        elif kind == "whole":
            lines = [draw(st.sampled_from(_WHOLE_FILES))]
    data = ("\n".join(lines) + "\n").encode()
    if draw(st.integers(0, 5)) == 0:  # bytes that are not UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\x80"])) + data[at:]
    return data


def _with(base_lines: list[str], *lines: str) -> bytes:
    return ("\n".join([*base_lines, *lines]) + "\n").encode()


# -- what a user sees ------------------------------------------------------------------------


def _expected(logs: list[Log]) -> list[str]:
    """The log lines (prefix stripped) the postmaster writes for these Log actions."""
    out = [RELOADING]
    for log in logs:
        for label, text in ((log.level.name, log.message), ("DETAIL", log.detail), ("HINT", log.hint)):
            if text is not None:
                out.append(f"{label}:  {text}".replace("\n", "\n\t"))
    return out


def _reload_lines(cluster: Any, start: int, end: int) -> list[str]:
    """Lines [start, end], without the backends' connection lines, which may come in
    between (the previous client's)."""
    text = "\n".join(cluster.messages()[start : end + 1])
    lines = re.split(r"\n(?!\t)", text)  # a message's own later lines start with a tab
    return [line for line in lines if not re.match(r"LOG:  (connection|disconnection) ", line)]


def _show(cluster: Any) -> dict[str, str]:
    names = sorted(SHOWN)
    result = cluster.psql("-A", "-t", *(arg for name in names for arg in ("-c", f"SHOW {name}")))
    assert result.returncode == 0, result.stderr
    return dict(zip(names, result.stdout.split(), strict=True))


def _check_nothing_else_moved(cluster: Any, config_path: Path, base: dict[str, Any], sentinel: str) -> None:
    """The good file again with one value changed on purpose: if that is the only change the
    postmaster logs, every other value is the one it ran with. Then the good file itself."""
    _write(config_path, {**base, "application_name": sentinel})
    start = len(cluster.lines)
    cluster.signal(signal.SIGHUP)
    end = cluster.wait_for_log(f'parameter "application_name" changed to "{sentinel}"', after=start, timeout=WAIT)
    assert _reload_lines(cluster, start, end) == [RELOADING, f'LOG:  parameter "application_name" changed to "{sentinel}"']
    _write(config_path, base)
    start = len(cluster.lines)
    cluster.signal(signal.SIGHUP)
    cluster.wait_for_log(f'parameter "application_name" changed to "{base["application_name"]}"', after=start, timeout=WAIT)


def _write(path: Path, settings: dict[str, Any]) -> None:
    lines = [f"{name}: {json.dumps(value) if not isinstance(value, bool) else ('on' if value else 'off')}"
             for name, value in settings.items()]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.timeout(90)
def test_a_broken_config_file_keeps_the_running_one(make_cluster) -> None:
    cluster = make_cluster()
    config_path = cluster.datadir / "pgtop.yaml"
    base = {"port": cluster.port, "unix_socket_directories": str(cluster.socket_dir), **BASE}
    _write(config_path, base)
    running = load_config_at_startup(cluster.datadir)
    cluster.start()
    status = cluster.status()
    children = cluster.children(status)
    assert status["postmaster_pid"] == cluster.pid
    base_lines = config_path.read_text().splitlines()
    reloads = iter(range(1, 10**6))

    # No shrinking: after a failure the cluster is not the one the next try expects (it may
    # be down), so the first failing file is the one to report.
    @settings(max_examples=30, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              report_multiple_bugs=False, suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(broken_file(base_lines))
    @example(_with(base_lines, 'log_timezone: "Nowhere/Nope"'))  # took the cluster down (a child's log line)
    @example(_with(base_lines, f'checkpoint_timeout: "{"9" * 400}"'))  # took the postmaster down (OverflowError)
    @example(_with(base_lines, "datestyle: nope", "timezone: Mars/Olympus"))
    def one_broken_file(data: bytes) -> None:
        config_path.write_bytes(data)
        start = len(cluster.lines)
        cluster.signal(signal.SIGHUP)
        end = cluster.wait_for_log(r"contains errors; (no changes|unaffected changes) were applied", after=start, timeout=WAIT)
        status = cluster.status()
        assert (status["pm_state"], status["postmaster_pid"], status["fatal_error"]) == ("PM_RUN", cluster.pid, False)
        assert cluster.children(status) == children, "a child was restarted"
        assert _show(cluster) == SHOWN  # a new backend gets the old values
        seen = _reload_lines(cluster, start, end)
        for line in seen[1:]:
            message = line.split(":  ", 1)[1] if line.startswith("LOG:  ") else line
            assert any(form.fullmatch(message) for form in POSTGRESQL_FORMS), line
        config, logs = apply_config_file(running, read_config_file(config_path), at_startup=False)
        assert config == running
        assert seen == _expected(logs)
        _check_nothing_else_moved(cluster, config_path, base, f"fuzz-{next(reloads)}")

    one_broken_file()
    assert cluster.children() == children
    crashes = [line for line in cluster.messages() if re.search(r"exited with exit code|terminated by signal|Traceback", line)]
    assert crashes == []
    assert running == load_config_at_startup(cluster.datadir) != Config()
