"""On-disk, content-addressed feature cache shared by xdist workers.

Key = hash of everything that determines the features (model + weights, dataset items + splits +
options, resolution, normalisation, code version). Entries are fp16 ``.npy`` files plus a
``meta.json`` holding their SHA-256; written into a temporary folder renamed into place under a file
lock, read memory-mapped, verified on every read. A corrupt entry is reported and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from filelock import FileLock

from radbench_core.atomic import atomic_write_json

FEATURE_CODE_VERSION = 1
Features = dict[str, dict[str, np.ndarray]]        # split -> kind -> array


def cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps({**parts, "code_version": FEATURE_CODE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


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
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            found = self._load(path)                 # another worker may have written it meanwhile
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
            self._store(path, parts, compute())
        loaded = self._load(path)
        assert loaded is not None
        return loaded

    def _store(self, path: Path, parts: dict[str, Any], features: Features) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=self.root))
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
            atomic_write_json(tmp / "meta.json", {"parts": parts, "files": files,
                                                  "code_version": FEATURE_CODE_VERSION})
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _load(self, path: Path) -> Features | None:
        meta_path = path / "meta.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
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
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            warnings.warn(f"feature cache entry {path} is corrupt ({exc}); recomputing it", stacklevel=2)
            shutil.rmtree(path, ignore_errors=True)
            return None
