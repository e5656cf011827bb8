"""pg_control and LSN texts: formats, round trips, and PostgreSQL's errors for a bad file."""

from __future__ import annotations

import os

import pytest

from pgtop.core.vocabulary import LogLevel
from pgtop.storage.controlfile import (
    DBState,
    control_path,
    read_control_file,
    update_control_file,
    write_control_file,
)
from pgtop.storage.errors import ControlFileError, ControlFileMissing
from pgtop.storage.lsn import (
    format_lsn,
    parse_lsn,
    parse_segment_file_name,
    segment_file_name,
    str_time,
    timestamptz_text,
)


def test_lsn_text_is_high_and_low_32_bits_in_hex():
    assert format_lsn(0x1A2B3C8) == "0/1A2B3C8"
    assert format_lsn((3 << 32) | 0xFF) == "3/FF"
    assert parse_lsn("0/1A2B3C8") == 0x1A2B3C8
    with pytest.raises(ValueError, match='invalid input syntax for type pg_lsn: "zz"'):
        parse_lsn("zz")


def test_segment_names_are_timeline_log_seg_in_24_hex_digits():
    assert segment_file_name(1, 1) == "000000010000000000000001"
    assert segment_file_name(2, 4096) == "000000020000000100000000"  # 4096 one-MiB segments per "log"
    assert parse_segment_file_name("000000020000000100000000") == (2, 4096)
    assert parse_segment_file_name("00000002.history") is None


def test_time_texts_match_postgresql():
    assert str_time(1795362212.0) == "2026-11-22 15:43:32 UTC"
    assert timestamptz_text(1795362223.068376) == "2026-11-22 15:43:43.068376+00"
    assert timestamptz_text(1795362223.5) == "2026-11-22 15:43:43.5+00"


def test_initdb_leaves_a_shut_down_cluster(datadir):
    control = read_control_file(datadir)
    assert control.state is DBState.DB_SHUTDOWNED
    assert control.checkpoint == control.redo == 0x100028  # first record of segment 1
    described = dict(control.describe())
    assert described["Database cluster state"] == "shut down"
    assert described["Latest checkpoint location"] == "0/100028"
    assert described["Latest checkpoint's REDO WAL file"] == "000000010000000000000001"


def test_update_keeps_other_fields_and_stamps_the_time(datadir):
    before = read_control_file(datadir)
    after = update_control_file(datadir, now=before.time + 60, state=DBState.DB_IN_PRODUCTION)
    assert read_control_file(datadir) == after
    assert after.state.display_name == "in production"
    assert after.time == before.time + 60 and after.redo == before.redo


def test_write_is_atomic_no_temp_file_left(datadir):
    control = read_control_file(datadir)
    write_control_file(datadir, control.replace(next_xid=99))
    assert sorted(os.listdir(os.path.join(datadir, "global"))) == ["pg_control"]
    assert read_control_file(datadir).next_xid == 99


def test_missing_control_file_is_could_not_find_the_database_system(tmp_path):
    with pytest.raises(ControlFileMissing) as raised:
        read_control_file(str(tmp_path))
    error = raised.value
    assert error.exit_code == 2
    assert error.stderr_text("postgres") == (
        "postgres: could not find the database system\n"
        f'Expected to find it in the directory "{tmp_path}",\n'
        f'but could not open file "{tmp_path}/global/pg_control": No such file or directory\n'
    )


def test_flipped_byte_is_incorrect_checksum(datadir):
    path = control_path(datadir)
    with open(path, "r+b") as file:
        data = bytearray(file.read())
        data[40] ^= 0xFF
        file.seek(0)
        file.write(bytes(data))
    with pytest.raises(ControlFileError) as raised:
        read_control_file(datadir)
    assert raised.value.message == "incorrect checksum in control file"
    assert raised.value.level is LogLevel.FATAL and raised.value.exit_code == 1


def test_short_file_is_a_panic_with_the_sizes(datadir):
    os.truncate(control_path(datadir), 20)
    with pytest.raises(ControlFileError) as raised:
        read_control_file(datadir)
    assert raised.value.message.startswith('could not read file "global/pg_control": read 20 of ')
    assert raised.value.level is LogLevel.PANIC
