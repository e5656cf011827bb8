"""`pgtop init`, the data directory's paths and the postmaster's start-up checks on it."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
from pathlib import Path

import pytest

from pgtop.common.configfile import load_config_at_startup
from pgtop.common.hba import DEFAULT_HBA, load_hba
from pgtop.core.config import Config
from pgtop.runtime import datadir as datadir_module
from pgtop.runtime.datadir import (
    DataDir,
    DataDirError,
    default_datadir,
    find_free_port,
    init_datadir,
)

HAVE_STORAGE = importlib.util.find_spec("pgtop.storage.initdb") is not None


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_init_creates_a_private_cluster_directory(tmp_path: Path) -> None:
    target = tmp_path / "parent" / "cluster"
    summary = init_datadir(target, port=5999)
    assert summary.datadir == target and summary.port == 5999 and not summary.standby
    assert summary.storage_created == HAVE_STORAGE
    assert mode(target) == 0o700
    assert (target / "PG_VERSION").read_text() == "14\n"
    assert (target / "pg_hba.conf").read_text() == DEFAULT_HBA
    assert (target / "log").is_dir()
    assert not (target / "standby.signal").exists()
    assert load_config_at_startup(target) == dataclasses.replace(Config(), port=5999)
    assert load_hba(target / "pg_hba.conf").match("local", "postgres", "me") is not None
    assert {mode(target / name) for name in ("PG_VERSION", "pgtop.yaml", "pg_hba.conf")} == {0o600}


def test_init_as_a_standby_without_its_primary_fails_and_leaves_nothing(tmp_path: Path) -> None:
    """A standby's storage is a base backup of its running primary (the success path is in
    tests/replication): none running, libpq's words and no directory."""
    with pytest.raises(DataDirError) as caught:
        init_datadir(tmp_path / "standby", port=5434, standby_of=f"host={tmp_path} port=5433")
    assert caught.value.message == (
        f'connection to server on socket "{tmp_path}/.s.PGSQL.5433" failed: No such file or directory'
        "\n\tIs the server running locally and accepting connections on that socket?"
    )
    assert not (tmp_path / "standby").exists()


def test_init_refuses_a_non_empty_directory_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    with pytest.raises(DataDirError) as caught:
        init_datadir(tmp_path)
    assert caught.value.message == f'directory "{tmp_path}" exists but is not empty'
    assert caught.value.hint == (
        f'If you want to create a new database system, either remove or empty the directory "{tmp_path}" '
        f'or run pgtop init with an argument other than "{tmp_path}".'
    )
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]


def test_init_takes_over_an_empty_directory_and_fixes_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    init_datadir(target)
    assert mode(target) == 0o700 and (target / "pgtop.yaml").exists()


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_init_refuses_a_bad_port(tmp_path: Path, port: int) -> None:
    with pytest.raises(DataDirError) as caught:
        init_datadir(tmp_path / "c", port=port)
    assert caught.value.message == f'invalid port number: "{port}" (must be 1..65535)'
    assert not (tmp_path / "c").exists()


def test_a_failed_init_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(port: int, **_: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datadir_module, "render_default_config", broken)
    with pytest.raises(OSError):
        init_datadir(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError):
        init_datadir(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_paths_of_everything(tmp_path: Path) -> None:
    d = DataDir(tmp_path / "x" / ".." / "pg")
    root = Path(os.path.abspath(tmp_path / "x" / ".." / "pg"))
    assert d.path == root
    assert (d.config_file, d.hba_file, d.pid_file, d.opts_file) == (
        root / "pgtop.yaml", root / "pg_hba.conf", root / "postmaster.pid", root / "postmaster.opts")
    assert (d.control_file, d.wal_dir, d.log_dir) == (root / "global" / "pg_control", root / "pg_wal", root / "log")
    assert (d.promote_file, d.logrotate_file, d.standby_signal) == (
        root / "promote", root / "logrotate", root / "standby.signal")


# -- start-up checks ----------------------------------------------------------------------


def test_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataDirError) as caught:
        DataDir(tmp_path / "nope").exists_and_valid()
    error = caught.value
    assert error.message == f'could not access directory "{tmp_path}/nope": No such file or directory'
    assert error.hint == 'Run "pgtop init" to initialize a pgtop data directory.'
    assert error.exit_code == 2


def test_a_missing_configuration_file(tmp_path: Path) -> None:
    with pytest.raises(DataDirError) as caught:
        DataDir(tmp_path).exists_and_valid()
    assert caught.value.message == (
        f'could not access the server configuration file "{tmp_path}/pgtop.yaml": No such file or directory'
    )
    assert caught.value.exit_code == 2


def test_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DataDirError) as caught:
        DataDir(tmp_path / "file").exists_and_valid()
    assert caught.value.message == (
        f'could not access the server configuration file "{tmp_path}/file/pgtop.yaml": Not a directory'
    )


@pytest.mark.parametrize(("bits", "ok"), [(0o700, True), (0o750, True), (0o755, False), (0o770, False), (0o701, False)])
def test_permissions(tmp_path: Path, bits: int, ok: bool) -> None:
    target = tmp_path / "c"
    init_datadir(target)
    (target / "global").mkdir(exist_ok=True)
    (target / "global" / "pg_control").touch()
    target.chmod(bits)
    if ok:
        DataDir(target).exists_and_valid()
        return
    with pytest.raises(DataDirError) as caught:
        DataDir(target).exists_and_valid()
    assert caught.value.message == f'data directory "{target}" has invalid permissions'
    assert caught.value.detail == "Permissions should be u=rwx (0700) or u=rwx,g=rx (0750)."
    assert caught.value.exit_code == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_wrong_ownership(tmp_path: Path) -> None:
    target = tmp_path / "c"
    init_datadir(target)
    os.chown(target, 65534, -1)
    with pytest.raises(DataDirError) as caught:
        DataDir(target).exists_and_valid()
    assert caught.value.message == f'data directory "{target}" has wrong ownership'
    assert caught.value.hint == "The server must be started by the user that owns the data directory."


def test_a_missing_control_file(tmp_path: Path) -> None:
    target = tmp_path / "c"
    init_datadir(target)
    (target / "global" / "pg_control").unlink(missing_ok=True)
    with pytest.raises(DataDirError) as caught:
        DataDir(target).exists_and_valid()
    assert caught.value.message == "could not find the database system"
    assert caught.value.detail == (
        f'Expected to find it in the directory "{target}", but could not open file '
        f'"{target}/global/pg_control": No such file or directory.'
    )
    assert caught.value.exit_code == 2


@pytest.mark.skipif(not HAVE_STORAGE, reason="pgtop.storage.initdb not there yet")
def test_an_initialised_cluster_passes_every_check(tmp_path: Path) -> None:
    init_datadir(tmp_path / "c")
    DataDir(tmp_path / "c").exists_and_valid()


# -- defaults -----------------------------------------------------------------------------


def test_default_datadir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_datadir() == tmp_path / "xdg" / "pgtop" / "default"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_datadir() == tmp_path / "home" / ".local" / "share" / "pgtop" / "default"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_datadir() == tmp_path / "home" / ".local" / "share" / "pgtop" / "default"


def test_find_free_port_skips_a_listening_port_and_a_socket_file(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert find_free_port(taken, socket_dir=tmp_path) > taken
        (tmp_path / f".s.PGSQL.{taken + 1}.lock").write_text("")
        (tmp_path / f".s.PGSQL.{taken + 2}").write_text("")
        port = find_free_port(taken, socket_dir=tmp_path)
        assert port > taken + 2
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # it really is free
