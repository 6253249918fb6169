import errno
import json
import os

import pytest

from radbench_core.core.atomic import atomic_write_bytes, atomic_write_json
from radbench_core.core.errors import StorageError


def test_write_then_replace_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_full_disk_keeps_the_old_file_and_names_it(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    atomic_write_json(target, {"old": True})

    def no_space(fd):       # a full disk surfaces when the data is flushed to it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StorageError) as info:
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert str(target) in str(info.value) and "disk is full" in str(info.value)
    assert "--radbench-resume" in str(info.value)
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_unwritable_path_as_root_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError) as info:
        atomic_write_bytes(blocker / "x.json", b"1")
    assert str(blocker) in str(info.value)


def test_stale_temporaries_are_swept_and_fresh_ones_and_records_kept(tmp_path):
    import time

    from radbench_core.core.atomic import sweep_stale_temporaries
    record = tmp_path / "cell.json"
    atomic_write_json(record, {"ok": True})
    old_file, fresh_file = tmp_path / ".cell.json.abc.tmp", tmp_path / ".other.json.def.tmp"
    old_dir, dotfile = tmp_path / ".0123abcd.xyz", tmp_path / ".keep-me"
    for p in (old_file, fresh_file, dotfile):
        p.write_text("partial")
    old_dir.mkdir()
    (old_dir / "train.cls.npy").write_bytes(b"half")
    day_ago = time.time() - 2 * 86400
    for p in (old_file, old_dir, dotfile):
        os.utime(p, (day_ago, day_ago))
    removed = sweep_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([old_file, old_dir])
    assert record.exists() and fresh_file.exists() and dotfile.exists()
    assert sweep_stale_temporaries(tmp_path / "missing") == []
