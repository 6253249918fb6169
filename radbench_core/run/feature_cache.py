"""On-disk, content-addressed feature cache shared by xdist workers.

Key = hash of everything that determines the features (model + weights, dataset items + splits +
options, resolution, normalisation, code version) and of the source files' size and mtime
(:func:`sources_fingerprint`), so a dataset file replaced in place gives a new key. Entries are fp16
``.npy`` files plus a ``meta.json`` holding their SHA-256 and a ``meta.sha256`` checksumming the
metadata itself; written into a temporary folder renamed into place under a file lock, read
memory-mapped, verified on every read. A bad entry is reported in one line and recomputed; a cache
folder that cannot be written (full disk, a file where a folder should be) is one StorageError.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from filelock import FileLock

from radbench_core.core.atomic import _storage_error, atomic_write_bytes
from radbench_core.core.errors import StorageError
from radbench_core.data.datasets.inputs import file_signature, verify_content

FEATURE_CODE_VERSION = 2          # 2: checksummed metadata, source fingerprints in the key
Features = dict[str, dict[str, np.ndarray]]        # split -> kind -> array


def cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps({**parts, "code_version": FEATURE_CODE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def sources_fingerprint(root: str | Path, relpaths: Iterable[str]) -> str:
    """Hash of (path, size, mtime) of every source file: a file changed in place changes it.

    One ``stat`` per file (no read), cheap next to decoding; a missing file hashes as missing so the
    reader reports it, not the cache. A file replaced with the same size and mtime (a restore from
    backup, ``rsync -a``) is not seen: ``RADBENCH_VERIFY_CONTENT=1`` hashes the content too. Usage: ``sources_fingerprint(index.root, index_files(index))``.
    """
    root = Path(root)
    digest = hashlib.sha256()
    if not verify_content():
        for rel in relpaths:
            try:
                st = os.stat(root / rel)
                digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{rel}\0missing\n".encode())
        return digest.hexdigest()[:32]
    for rel in relpaths:              # RADBENCH_VERIFY_CONTENT=1: every byte (slow, but exact)
        digest.update(f"{rel}\0{file_signature(root / rel)}\n".encode())
    return digest.hexdigest()[:32]


def index_files(index: Any) -> list[str]:
    """Every file a DatasetIndex's features derive from, relative to its root: the items' images and
    masks, and the files indexing read (CSVs, list files, dataset.json; ``DatasetIndex.input_files``)."""
    return [rel for item in index.items for rel in (*item.images, *item.masks)] + \
        list(getattr(index, "input_files", ()))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class FeatureCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def entry(self, key: str) -> Path:
        return self.root / key

    def get_or_compute(self, parts: dict[str, Any], compute: Callable[[], Features]) -> Features:
        key = cache_key(parts)
        path = self.entry(key)
        found = self._load(path)
        if found is not None:
            self.hits += 1
            return found
        self._make_root()
        try:
            lock = FileLock(str(path) + ".lock")
            lock.acquire()
        except OSError as exc:
            raise self._error(exc) from exc
        try:
            found = self._load(path)                 # another worker may have written it meanwhile
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
            self._store(path, parts, compute())
        finally:
            lock.release()
        loaded = self._load(path)
        if loaded is None:
            raise StorageError(path, "the entry just written cannot be read back",
                               "check the disk under --radbench-cache-dir")
        return loaded

    def _error(self, exc: OSError) -> StorageError:
        error = _storage_error(self.root, exc)
        return StorageError(error.where, error.problem.replace("earlier results", "the cache"),
                            "free disk space or choose a writable folder with --radbench-cache-dir "
                            "(or RADBENCH_CACHE_DIR)")

    def _make_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(self.root, "the feature cache folder is a file",
                               "remove the file, or choose another --radbench-cache-dir")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc) from exc

    def _store(self, path: Path, parts: dict[str, Any], features: Features) -> None:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=self.root))
        except OSError as exc:
            raise self._error(exc) from exc
        try:
            files = {}
            for split, kinds in features.items():
                for kind, array in kinds.items():
                    name = f"{split}.{kind}.npy"
                    with open(tmp / name, "wb") as fh:
                        np.save(fh, np.ascontiguousarray(array, dtype=np.float16))
                        fh.flush()
                        os.fsync(fh.fileno())
                    files[name] = {"split": split, "kind": kind, "sha256": _sha256(tmp / name),
                                   "shape": list(array.shape)}
            meta = (json.dumps({"parts": parts, "files": files, "code_version": FEATURE_CODE_VERSION},
                               indent=2, sort_keys=True, default=str) + "\n").encode()
            atomic_write_bytes(tmp / "meta.json", meta)
            atomic_write_bytes(tmp / "meta.sha256", hashlib.sha256(meta).hexdigest().encode())
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()                        # a stray file where the entry folder goes
            os.replace(tmp, path)
        except OSError as exc:
            raise self._error(exc) from exc
        except StorageError as exc:
            raise StorageError(exc.where, exc.problem, "free disk space or choose a writable folder "
                               "with --radbench-cache-dir (or RADBENCH_CACHE_DIR)") from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _load(self, path: Path) -> Features | None:
        if not path.exists() and not path.is_symlink():
            return None
        try:
            if not path.is_dir():
                raise ValueError("a file stands where the entry folder should be")
            meta_path = path / "meta.json"
            if not meta_path.exists():
                raise ValueError("meta.json is missing (an interrupted or foreign entry)")
            blob = meta_path.read_bytes()
            if hashlib.sha256(blob).hexdigest() != (path / "meta.sha256").read_text().strip():
                raise ValueError(f"checksum mismatch in {meta_path}")
            meta = json.loads(blob)
            if meta.get("code_version") != FEATURE_CODE_VERSION:
                raise ValueError(f"code version {meta.get('code_version')} != {FEATURE_CODE_VERSION}")
            out: Features = {}
            for name, info in meta["files"].items():
                file = path / name
                if _sha256(file) != info["sha256"]:
                    raise ValueError(f"checksum mismatch in {file}")
                array = np.load(file, mmap_mode="r", allow_pickle=False)
                if list(array.shape) != info["shape"]:
                    raise ValueError(f"shape {array.shape} != {info['shape']} in {file}")
                out.setdefault(info["split"], {})[info["kind"]] = array
            return out
        except (OSError, ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            warnings.warn(f"feature cache entry {path} is corrupt ({exc}); recomputing it", stacklevel=2)
            try:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            except OSError:
                pass
            return None
