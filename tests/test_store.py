import asyncio
import json
import os

import pytest

from plugd.errors import StoreError, ValidationError
from plugd.service.store import StateDir, Writer, dump


def parse_list(obj):
    if not isinstance(obj, list):
        raise ValidationError("things", "expected a list")
    return obj


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    state = StateDir(tmp_path)
    state.write("things.json", dump([1]))
    state.write("things.json", dump([2]))
    assert json.loads((tmp_path / "things.json").read_text()) == [2]
    assert os.listdir(tmp_path) == ["things.json"]


def test_write_fsyncs_the_file_and_the_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd)))
    StateDir(tmp_path).write("a.json", b"[]")
    assert synced[0].endswith(f".a.json.{os.getpid()}.tmp") and synced[1] == str(tmp_path)


def test_a_missing_file_gives_the_default(tmp_path):
    assert StateDir(tmp_path).load("things.json", parse_list, lambda: ["default"]) == ["default"]


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'{"a": 1}', b""])
def test_a_corrupt_file_is_kept_aside_and_defaults_are_used(tmp_path, content, caplog):
    (tmp_path / "things.json").write_bytes(content)
    assert StateDir(tmp_path).load("things.json", parse_list, lambda: ["default"]) == ["default"]
    (aside,) = tmp_path.glob("things.json.corrupt-*")
    assert aside.read_bytes() == content
    assert not (tmp_path / "things.json").exists()
    assert "things.json is unreadable" in caplog.text and aside.name in caplog.text


def test_a_failed_write_raises_store_error_when_the_directory_is_gone(tmp_path):
    state = StateDir(tmp_path / "gone")
    with pytest.raises(StoreError, match="cannot write"):
        state.write("a.json", b"[]")


async def test_writer_coalesces_and_acknowledges_after_the_write(tmp_path, monkeypatch):
    state = StateDir(tmp_path)
    writes = []
    real = state.write
    monkeypatch.setattr(state, "write", lambda name, data: (writes.append(data), real(name, data)))
    writer = Writer(state)
    await asyncio.gather(*(writer.save("a.json", dump([i])) for i in range(10)))
    assert json.loads((tmp_path / "a.json").read_text()) == [9]
    assert 1 <= len(writes) < 10 and writes[-1] == dump([9])


async def test_writer_reports_a_failed_write_to_its_caller(tmp_path):
    writer = Writer(StateDir(tmp_path / "gone"))
    with pytest.raises(StoreError):
        await writer.save("a.json", b"[]")
