"""Client authentication against a real `pgtop run`: pg_hba.conf's refusals (28000), password
and md5 authentication (28P01), a broken pg_hba.conf on reload, and authentication_timeout."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest
from support.cluster import Cluster

from pgtop.wire.auth import md5_password_hash

from .helpers import (
    connect,
    raw_socket,
    read_until_closed,
    refusal,
    startup_packet,
    wait_until,
)

HBA = """\
local   all        rejected                  reject
local   all        all                       trust
host    all        secret     127.0.0.1/32   password
host    all        hashed     127.0.0.1/32   md5
host    postgres   postgres   127.0.0.1/32   trust
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("auth") / "data", authentication_timeout=1)
    (running.datadir / "pg_hba.conf").write_text(HBA)
    # global/pg_auth: pgtop's password file, a password in clear or as its md5 hash.
    (running.datadir / "global" / "pg_auth").write_text(
        f'"secret" "s3cret"\n"hashed" "{md5_password_hash("hashed", "pw")}"\n'
    )
    running.start()
    try:
        yield running
    finally:
        running.close()


def fatal_of(cluster: Cluster, *, tcp: bool, **params: str) -> dict[str, str]:
    """The ErrorResponse fields a raw client gets for this startup packet."""
    sock = raw_socket(cluster, tcp=tcp)
    sock.sendall(startup_packet(**params))
    try:
        return refusal(read_until_closed(sock))
    finally:
        sock.close()


def assert_next_line(cluster: Cluster, at: int, expected: str) -> None:
    """The log line after line `at` (without its prefix) is `expected`."""
    cluster.wait_for_log(".", after=at + 1)
    assert cluster.messages()[at + 1] == expected


def test_no_pg_hba_conf_entry(cluster: Cluster) -> None:
    mark = len(cluster.lines)
    error = fatal_of(cluster, tcp=True, user="postgres", database="other")
    message = 'no pg_hba.conf entry for host "127.0.0.1", user "postgres", database "other", no encryption'
    assert (error["S"], error["C"], error["M"]) == ("FATAL", "28000", message)
    cluster.wait_for_log(re.escape(f"FATAL:  {message}"), after=mark)
    shown = cluster.psql("-d", "other", "-c", "select 1", tcp=True)
    assert shown.returncode == 2 and f"FATAL:  {message}" in shown.stderr


def test_pg_hba_conf_rejects_connection(cluster: Cluster) -> None:
    mark = len(cluster.lines)
    error = fatal_of(cluster, tcp=False, user="rejected")
    message = 'pg_hba.conf rejects connection for host "[local]", user "rejected", database "postgres", no encryption'
    assert (error["S"], error["C"], error["M"]) == ("FATAL", "28000", message)
    assert "D" not in error  # PostgreSQL says no more, to the client or the log
    at = cluster.wait_for_log(re.escape(f"FATAL:  {message}"), after=mark)
    with connect(cluster) as conn:  # a probe: its lines come after any DETAIL of that one
        conn.execute("select 1")
    assert not [line for line in cluster.messages()[at:] if line.startswith("DETAIL")]


@pytest.mark.parametrize("user, right", [("secret", "s3cret"), ("hashed", "pw")])
def test_password_authentication(cluster: Cluster, user: str, right: str) -> None:
    with connect(cluster, tcp=True, user=user, password=right) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)

    mark = len(cluster.lines)
    shown = cluster.psql("-U", user, "-c", "select 1", tcp=True, env=cluster.client_env(tcp=True, PGUSER=user, PGPASSWORD="wrong"))
    message = f'password authentication failed for user "{user}"'
    assert shown.returncode == 2 and f"FATAL:  {message}" in shown.stderr
    assert "DETAIL" not in shown.stderr  # the reason is for the server log only
    at = cluster.wait_for_log(re.escape(f"FATAL:  {message}"), after=mark)
    assert_next_line(cluster, at, f'DETAIL:  Password does not match for user "{user}".')
    number = next(n for n, line in enumerate(HBA.splitlines(), 1) if f" {user} " in line)
    line = HBA.splitlines()[number - 1]
    assert_next_line(cluster, at + 1, f'\tConnection matched pg_hba.conf line {number}: "{line}"')

    missing = cluster.psql("-U", user, "-c", "select 1", tcp=True, env=cluster.client_env(tcp=True, PGUSER=user))
    assert missing.returncode == 2 and "no password supplied" in missing.stderr  # psql -w never prompts


def test_a_message_other_than_a_password_breaks_the_protocol(cluster: Cluster) -> None:
    mark = len(cluster.lines)
    sock = raw_socket(cluster, tcp=True)
    sock.sendall(startup_packet(user="secret"))
    sock.sendall(b"Q\0\0\0\rselect 1\0")  # a query instead of the password
    received = read_until_closed(sock)
    sock.close()
    assert received.startswith(b"R\0\0\0\x08\0\0\0\x03")  # AuthenticationCleartextPassword
    error = refusal(received[9:])
    assert (error["S"], error["C"], error["M"]) == ("FATAL", "08P01", "expected password response, got message type 81")
    cluster.wait_for_log("FATAL:  expected password response, got message type 81", after=mark)


def test_a_user_without_a_password_fails_password_authentication(cluster: Cluster) -> None:
    (cluster.datadir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 password\n" + HBA)
    mark = len(cluster.lines)
    cluster.signal(signal.SIGHUP)
    cluster.wait_for_log("received SIGHUP", after=mark)
    try:
        with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "nobody"'):
            connect(cluster, tcp=True, user="nobody", password="anything")
        at = cluster.wait_for_log('FATAL:  password authentication failed for user "nobody"', after=mark)
        assert_next_line(cluster, at, 'DETAIL:  User "nobody" has no password assigned.')
    finally:
        (cluster.datadir / "pg_hba.conf").write_text(HBA)
        mark = len(cluster.lines)
        cluster.signal(signal.SIGHUP)
        cluster.wait_for_log("received SIGHUP", after=mark)


def test_a_broken_pg_hba_conf_on_reload_keeps_the_old_rules(cluster: Cluster) -> None:
    (cluster.datadir / "pg_hba.conf").write_text("local all all bogus-method\n")
    mark = len(cluster.lines)
    try:
        cluster.signal(signal.SIGHUP)
        cluster.wait_for_log("pg_hba.conf was not reloaded", after=mark)
        with connect(cluster) as conn:  # the old rules: local trust
            assert conn.execute("select 1").fetchone() == (1,)
        assert fatal_of(cluster, tcp=False, user="rejected")["C"] == "28000"
    finally:
        (cluster.datadir / "pg_hba.conf").write_text(HBA)


def test_authentication_timeout_drops_a_silent_client_without_a_word(cluster: Cluster) -> None:
    mark = len(cluster.lines)  # PIDs are reused: an earlier test's child may have had one of theirs
    # An earlier test's child may still be on its way out (its client saw EOF before it
    # exited): ours are the two that were not there before.
    before = set(cluster.backend_pids())
    silent, partial = raw_socket(cluster), raw_socket(cluster, tcp=True)
    partial.sendall(startup_packet()[:6])  # half a startup packet, then nothing
    children = wait_until(
        lambda: len(new := set(cluster.backend_pids()) - before) == 2 and new, what="two connection children"
    )
    started = time.monotonic()
    assert read_until_closed(silent) == b""
    assert read_until_closed(partial) == b""
    assert time.monotonic() - started < 10  # authentication_timeout is 1 s
    silent.close()
    partial.close()
    wait_until(lambda: not cluster.backend_pids(), what="both children gone")
    with connect(cluster) as conn:  # a probe: its log lines come after any of theirs
        conn.execute("select 1")
    mentions = [line for line in cluster.lines[mark:] for pid in children if f"[{pid}]" in line or f"(PID {pid})" in line]
    assert not mentions


def test_authentication_timeout_while_waiting_for_a_password(cluster: Cluster) -> None:
    mark = len(cluster.lines)
    sock = raw_socket(cluster, tcp=True)
    sock.sendall(startup_packet(user="secret"))
    received = read_until_closed(sock)  # AuthenticationCleartextPassword, then nothing: closed
    sock.close()
    assert received == b"R\0\0\0\x08\0\0\0\x03"
    cluster.wait_for_log("FATAL:  canceling authentication due to timeout", after=mark)
