"""Where a cell's data comes from: the user's dataset folder, or a phantom written on first use.

Phantoms live in the cache directory, written once under a file lock (xdist workers share them)
into a temporary folder that is renamed into place, so a crash never leaves half a dataset.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from filelock import FileLock

from radbench_core.data.datasets import DatasetSpec, get_dataset
from radbench_core.core.errors import DatasetMissing

PHANTOM_VERSION = 2
_MARKER = ".radbench_phantom_complete"


def phantom_fingerprint(spec: DatasetSpec) -> str:
    """Hash of the phantom writer's source: editing a writer invalidates its cached phantoms."""
    import hashlib
    import inspect
    digest = hashlib.sha256(str(PHANTOM_VERSION).encode())
    writer = getattr(spec.write_phantom, "func", spec.write_phantom)        # functools.partial
    module = importlib.import_module(getattr(writer, "phantom_module", None) or writer.__module__)
    for mod in (module, importlib.import_module("radbench_core.data.phantoms.draw")):
        digest.update(Path(inspect.getfile(mod)).read_bytes())
    return digest.hexdigest()[:10]


def default_cache_dir() -> Path:
    env = os.environ.get("RADBENCH_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radbench"


def _manifest(folder: Path) -> dict[str, list[int]]:
    """relative path -> [size, mtime_ns] of every file of a written phantom."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[path.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def _intact(root: Path) -> bool:
    """True when the phantom's files are exactly those written (none edited, added or removed)."""
    marker = root.parent / _MARKER
    try:
        recorded = json.loads(marker.read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return False
    return recorded == _manifest(root)


def prepare_phantom(dataset_id: str, size: str = "small", cache_dir: Path | None = None,
                    seed: int = 0) -> Path:
    """Write (once) the phantom of a dataset in its native layout; return its root folder.

    The completion marker lists every file's size and mtime: a phantom edited in place (or a file
    removed) is reported in one line and written anew, never silently used.
    """
    spec = get_dataset(dataset_id)
    base = Path(cache_dir or default_cache_dir()) / "phantoms"
    root = base / f"{spec.id}-{size}-seed{seed}-{phantom_fingerprint(spec)}" / spec.folder
    if (root.parent / _MARKER).exists() and _intact(root):
        return root
    base.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent) + ".lock"):
        if (root.parent / _MARKER).exists():
            if _intact(root):
                return root
            warnings.warn(f"{root.parent}: the cached phantom was changed on disk; writing it anew",
                          stacklevel=2)
        if root.parent.exists():                 # a crash mid-write, or an edited phantom: start over
            shutil.rmtree(root.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.id}-", dir=base))
        try:
            (tmp / spec.folder).mkdir(parents=True)
            spec.write_phantom(tmp / spec.folder, size=size, seed=seed)
            marker = {"dataset": spec.id, "size": size, "seed": seed,
                      "fingerprint": phantom_fingerprint(spec), "files": _manifest(tmp / spec.folder)}
            (tmp / _MARKER).write_text(json.dumps(marker, sort_keys=True))
            os.replace(tmp, root.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


def dataset_root(spec: DatasetSpec, *, demo: bool, data_dir: Path | None, cache_dir: Path,
                 phantom_size: str = "small") -> tuple[Path, str]:
    """The folder to index and a provenance string for the record."""
    if demo:
        root = prepare_phantom(spec.id, phantom_size, cache_dir)
        return root, (f"phantom (demo, synthetic {phantom_size}, {phantom_fingerprint(spec)}) "
                      f"of {spec.title}")
    if data_dir is None:
        raise DatasetMissing("--radbench-data-dir", f"no data directory is configured for {spec.title}",
                             f"pass --radbench-data-dir DIR (or set RADBENCH_DATA_DIR) with {spec.title} "
                             f"in DIR/{spec.folder}; {spec.download_hint}")
    root = Path(data_dir) / spec.folder
    if not root.is_dir():
        raise DatasetMissing(root, f"{spec.title} was not found", spec.download_hint)
    return root, f"{spec.title} at {root}"
