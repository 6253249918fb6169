"""Crash-safe file writes: temporary file in the same folder, fsync, rename.

A crash (or SIGKILL) at any point leaves either the old file or the new one, never a torn one.
Errors name the path and say what to do (unwritable folder, full disk).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from radbench_core.core.errors import StorageError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError as exc:
        raise StorageError(path.parent, f"cannot write here ({exc.strerror})",
                           "choose a writable results directory with --radbench-results-dir "
                           "or RADBENCH_RESULTS_DIR") from exc
    except OSError as exc:
        raise _storage_error(path, exc) from exc
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)          # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _storage_error(path, exc) from exc
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def _storage_error(path: Path, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(path, "the disk is full; nothing was written and earlier results are intact",
                            "free disk space or point --radbench-results-dir at another disk, "
                            "then rerun with --radbench-resume")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(path, f"cannot write ({exc.strerror})",
                            "choose a writable results directory with --radbench-results-dir")
    return StorageError(path, f"write failed ({exc.strerror or exc})", "check the disk and the path")


def sweep_stale_temporaries(folder: str | Path, older_than_s: float = 86400.0) -> list[Path]:
    """Delete what a killed writer left in ``folder``: ``.<name>.*.tmp`` files and ``.<key>.*`` folders.

    Only entries older than ``older_than_s`` go, so a writer working right now is never disturbed.
    Returns what was removed.
    """
    import shutil
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for entry in folder.iterdir():
        if not entry.name.startswith(".") or entry.is_symlink():
            continue
        is_temp_file = entry.is_file() and entry.name.endswith(".tmp")
        if not (is_temp_file or entry.is_dir()):
            continue
        try:
            if entry.lstat().st_mtime >= cutoff:
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed.append(entry)
        except OSError:
            continue                       # gone already, or not ours to remove: leave it
    return removed
