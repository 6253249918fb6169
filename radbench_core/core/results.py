"""The typed, versioned record of one cell, the run manifest, and the per-cell JSON store.

Each cell's record is written atomically to ``<run>/cells/<cell-id>.json`` by whichever process ran
it, so a crash loses at most the cell in flight. Records are plain JSON (never pickle).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radbench_core import __version__
from radbench_core.core.atomic import atomic_write_json
from radbench_core.core.errors import StorageError

SCHEMA_VERSION = 1
DEMO_WEIGHTS = "random-init (demo)"


@dataclass
class Metric:
    value: float
    higher_is_better: bool = True
    ci_low: float | None = None
    ci_high: float | None = None
    # what the CI resampled: "patient" (the unit of independence) or "item" (no patient ids known),
    # and how many test items and distinct patients it saw
    ci_unit: str | None = None
    n_items: int | None = None
    n_patients: int | None = None


@dataclass
class CellResult:
    cell_id: str
    model: str
    dataset: str
    protocol: str
    variant: str
    task: str                      # "classification" | "segmentation"
    modality: str                  # "xray" | "ct" | "mri"
    profile: str
    metrics: dict[str, Metric]
    hparams: dict[str, Any] = field(default_factory=dict)      # the chosen configuration
    params_trainable: int | None = None
    params_total: int | None = None
    wall_time_s: float = 0.0
    peak_memory_mb: float | None = None
    seed: int = 0
    deterministic: bool = True
    device: str = "cpu"
    weights: str = DEMO_WEIGHTS
    dataset_provenance: str = ""
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    deviations: list[str] = field(default_factory=list)        # radbench_core.config.fidelity ids in effect
    switches: dict[str, Any] = field(default_factory=dict)     # config/switches.py id -> value of this cell
    status: str = "ok"             # "ok" | "resumed"
    radbench_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    @property
    def is_demo(self) -> bool:
        return self.weights == DEMO_WEIGHTS

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        data = dict(data)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"record schema_version {version!r}, this radbench reads {SCHEMA_VERSION}")
        data["metrics"] = {k: Metric(**v) for k, v in data["metrics"].items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _jsonable(obj: Any) -> Any:
    """NaN/inf become None so records stay strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):      # numpy / torch scalars
        return _jsonable(obj.item())
    return obj


_SAFE = re.compile(r"[^A-Za-z0-9_.@=-]+")


def cell_filename(cell_id: str) -> str:
    return _SAFE.sub("_", cell_id) + ".json"


class RunStore:
    """One run directory: ``manifest.json``, ``cells/*.json`` and whatever the report writes."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.cells_dir = self.run_dir / "cells"

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def write_cell(self, result: CellResult) -> Path:
        return atomic_write_json(self.cells_dir / cell_filename(result.cell_id), result.to_dict())

    def cell_path(self, cell_id: str) -> Path:
        return self.cells_dir / cell_filename(cell_id)

    def read_cell(self, cell_id: str) -> CellResult | None:
        path = self.cell_path(cell_id)
        if not path.exists():
            return None
        return _load_record(path)

    def load_cells(self) -> list[CellResult]:
        if not self.cells_dir.is_dir():
            return []
        return [_load_record(p) for p in sorted(self.cells_dir.glob("*.json"))]

    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        return atomic_write_json(self.run_dir / "manifest.json", manifest)

    def read_manifest(self) -> dict[str, Any]:
        path = self.run_dir / "manifest.json"
        if not path.exists():
            return {}
        return json.loads(path.read_text())


def _load_record(path: Path) -> CellResult:
    try:
        return CellResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(path, f"not a radbench cell record ({exc})",
                           "delete the file and rerun that cell with --radbench-resume") from exc


def new_run_id(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now()
    return now.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    sha = run("rev-parse", "HEAD")
    dirty = run("status", "--porcelain")
    return {"git_sha": sha, "git_dirty": bool(dirty) if dirty is not None else None}


def package_versions() -> dict[str, str]:
    from importlib import metadata
    out = {"python": sys.version.split()[0], "radbench": __version__}
    for name in ("torch", "torchvision", "timm", "peft", "numpy", "scikit-learn", "pandas",
                 "nibabel", "h5py"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_info() -> dict[str, Any]:
    """The machine a run ran on (the report's "Machine" section): CPU model and cores, RAM, GPUs, OS."""
    info: dict[str, Any] = {"node": platform.node(), "platform": platform.platform(),
                            "processor": platform.processor() or platform.machine(),
                            "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
                            "ram_gib": _ram_gib()}
    try:
        import torch
        if torch.cuda.is_available():
            props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
            info["gpus"] = [p.name for p in props]
            info["gpu_memory_gib"] = [round(p.total_memory / 2**30, 1) for p in props]
    except Exception:  # noqa: BLE001 - the manifest must never fail the run
        pass
    return info


def _cpu_model() -> str:
    """``model name`` of /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, OSError, ValueError):
        return None
