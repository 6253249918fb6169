"""Which files of a dataset folder a derivation read, and which of them changed since.

A cached derivation (a computed split, a feature-cache entry) is only valid while every file it was
made from is unchanged: not only the images, but the CSVs, list files (NIH ``test_list.txt``),
``dataset.json`` and label files it read. Naming those files by hand per dataset misses the next
one, so radbench records them: :func:`recording_reads` watches every ``open`` of a file under the
dataset root (Python's audit hook, so pandas, PIL, nibabel and ``Path.read_text`` are all seen)
while the index and its split are made. :func:`input_manifest` stores (size, mtime) of those files
with the derivation; :func:`changed_inputs` is the one helper that says which of them changed.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

_RECORDERS: contextvars.ContextVar[tuple[tuple[str, set[str]], ...]] = contextvars.ContextVar(
    "radbench_input_recorders", default=())
_HOOK_INSTALLED = False


def _on_audit(event: str, args: tuple) -> None:
    if event != "open" or not _RECORDERS.get():
        return
    path = args[0] if args else None
    mode, flags = (args[1], args[2]) if len(args) >= 3 else ("r", 0)
    writes = any(c in mode for c in "wax+") if isinstance(mode, str) else \
        (flags or 0) & os.O_ACCMODE != os.O_RDONLY
    if writes:
        return                                   # an output (a cache file), not an input
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        return                                   # a file descriptor: nothing to name
    full = os.path.abspath(os.fspath(path))
    for root, seen in _RECORDERS.get():
        if full.startswith(root + os.sep):
            seen.add(os.path.relpath(full, root).replace(os.sep, "/"))


@contextlib.contextmanager
def recording_reads(root: str | Path) -> Iterator[set[str]]:
    """Collect the paths (relative to ``root``) of the files opened under ``root`` in this block.

    Nested blocks each see the reads made inside them; other threads are not recorded.
    """
    global _HOOK_INSTALLED
    if not _HOOK_INSTALLED:          # audit hooks cannot be removed: one per process, idle outside
        sys.addaudithook(_on_audit)
        _HOOK_INSTALLED = True
    seen: set[str] = set()
    token = _RECORDERS.set(_RECORDERS.get() + ((os.path.abspath(root), seen),))
    try:
        yield seen
    finally:
        _RECORDERS.reset(token)


def reads_so_far(root: str | Path) -> set[str]:
    """The files under ``root`` read so far by the enclosing :func:`recording_reads` blocks."""
    root = os.path.abspath(root)
    return {rel for r, seen in _RECORDERS.get() if r == root for rel in seen}


VERIFY_CONTENT_ENV = "RADBENCH_VERIFY_CONTENT"


def verify_content() -> bool:
    """``RADBENCH_VERIFY_CONTENT=1``: also hash every input's bytes (a file restored from a backup
    or by ``rsync -a`` with the same size and mtime is otherwise taken as unchanged)."""
    return os.environ.get(VERIFY_CONTENT_ENV, "").strip() not in ("", "0")


def content_digest(path: str | Path) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def file_signature(path: str | Path) -> list | None:
    """(size, mtime_ns), plus the content digest under ``RADBENCH_VERIFY_CONTENT``; None if missing."""
    try:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns] + ([content_digest(path)] if verify_content() else [])
    except OSError:
        return None


def _stat(root: Path, rel: str) -> list | None:
    return file_signature(Path(root) / rel)


def input_manifest(root: str | Path, relpaths: Iterable[str]) -> dict[str, list[int] | None]:
    """``{relpath: [size, mtime_ns]}`` of the input files (None: missing), stored with a derivation."""
    return {rel: _stat(Path(root), rel) for rel in sorted(set(relpaths))}


def changed_inputs(root: str | Path, manifest: dict[str, list[int] | None]) -> list[str]:
    """The inputs of ``manifest`` that differ on disk now, each as e.g. ``test_list.txt (size 20 -> 11)``."""
    out = []
    for rel, was in manifest.items():
        now = _stat(Path(root), rel)
        if now == (list(was) if was is not None else None):
            continue
        if now is None:
            out.append(f"{rel} (removed)")
        elif was is None:
            out.append(f"{rel} (created)")
        elif now[0] != was[0]:
            out.append(f"{rel} (size {was[0]} -> {now[0]})")
        elif now[:2] == list(was)[:2]:
            out.append(f"{rel} (same size and mtime, other content)")
        else:
            out.append(f"{rel} (modified, same size)")
    return out
