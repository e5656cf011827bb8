"""pg_hba.conf: PostgreSQL 15's load messages (checked against a real server), matching, refusals."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pgtop.common.hba import DEFAULT_HBA, HbaError, load_hba, parse_hba_text
from pgtop.common.hba_rules import HbaIssue, Refusal, refusal_message

GOOD = "local all all trust\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pg_hba.conf"
    path.write_text(text)
    return path


def issues_of(tmp_path: Path, text: str) -> list[HbaIssue]:
    path = write(tmp_path, text)
    with pytest.raises(HbaError) as caught:
        load_hba(path)
    assert caught.value.path == str(path)
    return list(caught.value.issues)


# Each line below, put after one good line, was reloaded into a PostgreSQL 15 server; the
# message and hint are what its log said. The CONTEXT is always line 2 of the file.
POSTGRESQL_SAYS = [
    ("hots all all 127.0.0.1/32 trust", 'invalid connection type "hots"', None),
    ("local all all foo", 'invalid authentication method "foo"', None),
    ("host all all 127.0.0.1/33 trust", 'invalid CIDR mask in address "127.0.0.1/33"', None),
    ("host all all ::1/129 trust", 'invalid CIDR mask in address "::1/129"', None),
    ("host all all 127.0.0.1/ trust", 'invalid CIDR mask in address "127.0.0.1/"', None),
    ("host all all 127.0.0.1/1x trust", 'invalid CIDR mask in address "127.0.0.1/1x"', None),
    ("host all all 300.0.0.1/32 trust", 'specifying both host name and CIDR mask is invalid: "300.0.0.1/32"', None),
    ("host all all 127.0.0.1 trust", 'invalid IP mask "trust": Name or service not known', None),
    ("host all all 1.2.3.4 ::ffff:0 trust", "IP address and mask do not match", None),
    ("host all all 1.2.3.4 1.2.3.4,1.2.3.5 trust", "multiple values specified for netmask", None),
    ("host all all 1.2.3.4", "end-of-line before netmask specification",
     "Specify an address range in CIDR notation, or provide a separate netmask."),
    ("host all all 10.0.0.1/8 255.0.0.0 trust", 'invalid authentication method "255.0.0.0"', None),
    ("host all all", "end-of-line before IP address specification", None),
    ("local all", "end-of-line before role specification", None),
    ("local", "end-of-line before database specification", None),
    ("host all all 127.0.0.1/32", "end-of-line before authentication method", None),
    ("host all all 127.0.0.1/32 trust,reject", "multiple values specified for authentication type",
     "Specify exactly one authentication type per line."),
    ("local,host all all trust", "multiple values specified for connection type",
     "Specify exactly one connection type per line."),
    ("host all all,x 127.0.0.1/32,10.0.0.1/8 trust", "multiple values specified for host address",
     "Specify one address range per line."),
    ("host all all 127.0.0.1/32 trust foo=bar", 'unrecognized authentication option name: "foo"', None),
    ("host all all 127.0.0.1/32 trust garbage", "authentication option not in name=value format: garbage", None),
    ("local all all trust reject", "authentication option not in name=value format: reject", None),
    ("host all all 127.0.0.1/32 md5 clientcert=verify-full", 'clientcert can only be configured for "hostssl" rows', None),
    ("host all all 127.0.0.1/32 trust map=x",
     'authentication option "map" is only valid for authentication methods ident, peer, gssapi, sspi, and cert', None),
    ("local all all\tsspi", 'invalid authentication method "sspi": not supported by this build', None),
    ('local "all all trust', "end-of-line before role specification", None),
    ("host all \\\nall \\\n 127.0.0.1/32 trus", 'invalid authentication method "trus"', None),
    # pgtop's own refusals: methods and role membership it cannot carry out.
    ("local all all peer", 'invalid authentication method "peer": not supported by this build', None),
    ("host all all 127.0.0.1/32 ident", 'invalid authentication method "ident": not supported by this build', None),
    ("local all +admins trust", 'group "+admins" is not supported by pgtop: it has no role membership', None),
    ("local samerole all trust", '"samerole" is not supported by pgtop: it has no role membership', None),
]


@pytest.mark.parametrize(("line", "message", "hint"), POSTGRESQL_SAYS)
def test_a_bad_line_gets_postgresqls_message(tmp_path: Path, line: str, message: str, hint: str | None) -> None:
    path = tmp_path / "pg_hba.conf"
    assert issues_of(tmp_path, GOOD + line + "\n") == [
        HbaIssue(message, hint, f'line 2 of configuration file "{path}"')
    ]


def test_every_bad_line_is_reported_with_tokenising_errors_first(tmp_path: Path) -> None:
    path = tmp_path / "pg_hba.conf"
    issues = issues_of(tmp_path, "hots all all\nlocal all all trust\nlocal all @missing trust\nlocal all all foo\n")
    assert issues == [
        HbaIssue(f'could not open secondary authentication file "@missing" as "{tmp_path}/missing": No such file or directory'),
        HbaIssue('invalid connection type "hots"', None, f'line 1 of configuration file "{path}"'),
        HbaIssue('invalid authentication method "foo"', None, f'line 4 of configuration file "{path}"'),
    ]


def test_an_empty_or_missing_file_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "pg_hba.conf"
    assert issues_of(tmp_path, "# only comments\n\n") == [HbaIssue(f'configuration file "{path}" contains no entries')]
    path.unlink()
    with pytest.raises(HbaError) as caught:
        load_hba(path)
    assert caught.value.issues == (HbaIssue(f'could not open configuration file "{path}": No such file or directory'),)
    assert str(caught.value) == f'could not open configuration file "{path}": No such file or directory'


def test_hostssl_loads_with_a_warning_and_never_matches(tmp_path: Path) -> None:
    path = write(tmp_path, "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n")
    rules = load_hba(path)
    assert rules.warnings == (
        HbaIssue("hostssl record cannot match because SSL is not supported by this build", None,
                 f'line 1 of configuration file "{path}"'),
    )
    assert rules.match("host", "db", "u", "127.0.0.1").line_number == 2


def test_tokens_quotes_lists_comments_and_continuations() -> None:
    text = (
        '# comment\n'
        'local  "all",db2,"my ""db"""  alice,"bob smith"  trust  # trailing\n'
        'host all \\\n'
        '  carol 127.0.0.1/32 md5#no space\n'
        'local   all   "all"   reject\n'
    )
    rules = parse_hba_text(text, "/d/pg_hba.conf")
    assert [line.line_number for line in rules.lines] == [2, 3, 5]
    assert rules.lines[1].raw_line == "host all   carol 127.0.0.1/32 md5#no space"
    assert rules.match("local", "db2", "bob smith").method == "trust"
    assert rules.match("local", 'my "db"', "alice").method == "trust"
    assert rules.match("local", "all", "alice").line_number == 2  # a quoted "all" is a name
    assert rules.match("local", "other", "alice") is None  # ...so it matches no other database
    assert rules.match("local", "other", "all").method == "reject"
    assert rules.match("host", "x", "carol", "127.0.0.1").method == "md5"


def test_at_file_includes_names(tmp_path: Path) -> None:
    (tmp_path / "admins").write_text('alice, "bob smith"\n# comment\ncarol \\\n dave\n')
    rules = load_hba(write(tmp_path, "local all @admins trust\n"))
    for user in ("alice", "bob smith", "carol", "dave"):
        assert rules.match("local", "postgres", user) is not None
    assert rules.match("local", "postgres", "eve") is None


# -- matching -----------------------------------------------------------------------------


RULES = """\
local   all          rej                            reject
local   all          pw                             password
local   sameuser     all                            trust
host    all          all        10.1.0.0/16         reject
host    all          all        10.0.0.0 255.0.0.0  md5
host    db1,db2      all        192.168.1.7/32      trust
host    all          all        ::1/128             scram-sha-256
local   replication  repl                           trust
host    replication  repl       127.0.0.1/32        trust
"""


@pytest.mark.parametrize(
    ("conn", "database", "user", "address", "replication", "line"),
    [
        ("local", "postgres", "rej", None, False, 1),
        ("local", "postgres", "pw", None, False, 2),
        ("local", "alice", "alice", None, False, 3),  # sameuser
        ("local", "postgres", "alice", None, False, None),  # implicit reject
        ("host", "postgres", "alice", "10.1.2.3", False, 4),  # first match wins over line 5
        ("host", "postgres", "alice", "10.200.0.1", False, 5),  # address + separate mask
        ("host", "db2", "alice", "192.168.1.7", False, 6),
        ("host", "db3", "alice", "192.168.1.7", False, None),
        ("host", "db1", "alice", "192.168.1.8", False, None),
        ("host", "postgres", "alice", "::1", False, 7),
        ("host", "postgres", "alice", "127.0.0.1", False, None),  # IPv4 never matches an IPv6 line
        ("local", "alice", "alice", None, True, None),  # replication only matches "replication"
        ("local", "postgres", "repl", None, True, 8),
        ("host", "postgres", "repl", "127.0.0.1", True, 9),
        ("host", "replication", "repl", "127.0.0.1", False, None),  # the keyword is not a database
    ],
)
def test_first_match_semantics(conn: str, database: str, user: str, address: str | None, replication: bool, line: int | None) -> None:
    match = parse_hba_text(RULES, "/d/pg_hba.conf").match(conn, database, user, address, replication)
    assert (match.line_number if match else None) == line


def test_samehost_and_samenet_use_this_machines_addresses() -> None:
    rules = parse_hba_text("host all all samehost trust\nhost all all samenet md5\n", "/d/pg_hba.conf")
    assert rules.match("host", "db", "u", "127.0.0.1").method == "trust"
    assert rules.match("host", "db", "u", "127.0.0.2").method == "md5"  # lo is 127.0.0.0/8
    assert rules.match("host", "db", "u", "203.0.113.9") is None


def test_host_names_match_after_reverse_and_forward_lookup() -> None:
    try:
        name = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0]
    except OSError:
        pytest.skip("127.0.0.1 has no name here")
    rules = parse_hba_text(f"host all all {name.upper()} trust\nhost all all .invalid reject\n", "/d/pg_hba.conf")
    assert rules.match("host", "db", "u", "127.0.0.1").line_number == 1
    assert rules.match("host", "db", "u", "192.0.2.1") is None  # TEST-NET: no reverse name


def test_match_reports_what_the_backend_needs() -> None:
    match = parse_hba_text(RULES, "/d/pg_hba.conf").match("host", "postgres", "x", "::1")
    assert match.method == "scram-sha-256" and not match.implemented
    assert match.detail == 'Connection matched pg_hba.conf line 7: "host    all          all        ::1/128             scram-sha-256"'


# -- refusals (texts a PostgreSQL 15 client got) ------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "host", "replication", "text"),
    [
        (Refusal.NO_ENTRY, None, False, 'no pg_hba.conf entry for host "[local]", user "nobody", database "postgres", no encryption'),
        (Refusal.NO_ENTRY, "127.0.0.1", False, 'no pg_hba.conf entry for host "127.0.0.1", user "nobody", database "postgres", no encryption'),
        (Refusal.NO_ENTRY, None, True, 'no pg_hba.conf entry for replication connection from host "[local]", user "nobody", no encryption'),
        (Refusal.NO_ENTRY, "127.0.0.1", True, 'no pg_hba.conf entry for replication connection from host "127.0.0.1", user "nobody", no encryption'),
        (Refusal.REJECT, None, False, 'pg_hba.conf rejects connection for host "[local]", user "nobody", database "postgres", no encryption'),
        (Refusal.REJECT, "127.0.0.1", False, 'pg_hba.conf rejects connection for host "127.0.0.1", user "nobody", database "postgres", no encryption'),
        (Refusal.REJECT, None, True, 'pg_hba.conf rejects replication connection for host "[local]", user "nobody", no encryption'),
        (Refusal.REJECT, "127.0.0.1", True, 'pg_hba.conf rejects replication connection for host "127.0.0.1", user "nobody", no encryption'),
        (Refusal.PASSWORD_FAILED, "127.0.0.1", False, 'password authentication failed for user "nobody"'),
    ],
)
def test_refusal_texts(refusal: Refusal, host: str | None, replication: bool, text: str) -> None:
    assert refusal_message(refusal, host=host, user="nobody", database="postgres", replication=replication) == text


def test_refusal_sqlstates_and_verdicts() -> None:
    assert [r.sqlstate for r in Refusal] == ["28000", "28000", "28P01"]
    rules = parse_hba_text(RULES, "/d/pg_hba.conf")
    assert Refusal.for_match(rules.match("local", "postgres", "rej")) is Refusal.REJECT
    assert Refusal.for_match(rules.match("local", "postgres", "nobody")) is Refusal.NO_ENTRY
    assert Refusal.for_match(rules.match("local", "postgres", "pw")) is None


def test_the_default_file_trusts_local_and_loopback_only(tmp_path: Path) -> None:
    rules = load_hba(write(tmp_path, DEFAULT_HBA))
    assert rules.warnings == ()
    for conn, address in (("local", None), ("host", "127.0.0.1"), ("host", "::1")):
        for replication in (False, True):
            assert rules.match(conn, "postgres", "anyone", address, replication).method == "trust"
    assert rules.match("host", "postgres", "anyone", "10.0.0.1") is None
