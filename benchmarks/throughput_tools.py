"""Measurement helpers for the throughput benchmarks: scales, timers, peak memory, bare forwards.

The speed claims of the suite are ratios taken in one run (radbench's path vs the bare forward pass
over the same tensors, sklearn vs the chunked kNN, ...), so this module only offers the pieces:
timing, the peak RSS of a workload run in a *fresh* spawned process (so earlier allocations of the
test session do not hide it), and the input generators the scale measurements need. No pytest.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from radbench_core.core.errors import ConfigError

PERF_SCALE_ENV = "RADBENCH_PERF_SCALE"


@dataclass(frozen=True)
class PerfScale:
    """How big each throughput measurement is; ``tiny`` only proves the code runs."""
    name: str
    phantom_size: str                 # NIH / MSD phantom size for the extraction cells
    realistic_vit: bool               # also measure a full-width ViT-S/14 (same timm class)
    resolution: int                   # input size of the extraction measurements
    batch_size: int
    repeats: int                      # best-of for the short timings
    png_count: int                    # NIH-size (1024 px) films for the decode rate
    png_px: int
    knn_train: tuple[int, ...]        # training rows; the last one is the speed comparison
    knn_queries: int
    knn_dim: int
    knn_k: int
    linear_rows: int
    nih_rows: int
    cache_rows: tuple[int, int]       # two N for the fp16 feature-cache size check
    parallel: bool                    # the slow `-n 2` vs serial grid comparison


SCALES: dict[str, PerfScale] = {s.name: s for s in (
    PerfScale("tiny", "tiny", False, 56, 16, 1, 2, 256, (300, 600), 100, 32, 5, 300, 2_000,
              (50, 100), False),
    PerfScale("small", "small", True, 112, 32, 3, 16, 1024, (10_000,), 2_000, 768, 20, 5_000,
              112_120, (1_000, 4_000), False),
    PerfScale("full", "small", True, 224, 32, 2, 16, 1024, (10_000, 50_000), 10_000, 768, 20, 5_000,
              112_120, (1_000, 4_000), True),
)}


def perf_scale(value: str | None = None, env: Mapping[str, str] | None = None) -> PerfScale:
    """The scale named by ``value`` or ``$RADBENCH_PERF_SCALE`` (default ``small``)."""
    name = value if value is not None else (os.environ if env is None else env).get(PERF_SCALE_ENV, "small")
    if name not in SCALES:
        raise ConfigError(PERF_SCALE_ENV, f"got {name!r}, expected one of {', '.join(SCALES)}",
                          f"set {PERF_SCALE_ENV}=tiny (smoke test), small (default) or full "
                          "(the documented measurements, minutes)")
    return SCALES[name]


# -- timing ------------------------------------------------------------------------------------
def time_call(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls (the least disturbed by other load) and the last result."""
    if repeat < 1:
        raise ConfigError("time_call(repeat)", f"got {repeat}, expected >= 1", "pass repeat=1 or more")
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def rate(count: int | float, seconds: float) -> float:
    """Items per second; a non-positive duration is a measurement bug, not a speed."""
    if not seconds > 0:
        raise ConfigError("rate(seconds)", f"got {seconds!r}, expected a positive duration",
                          "time a workload that actually ran")
    return float(count) / float(seconds)


# -- memory ------------------------------------------------------------------------------------
def status_kb(field: str, status_path: str | Path = "/proc/self/status") -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current RSS); None off Linux."""
    try:
        for line in Path(status_path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss where /proc is unavailable)."""
    kb = status_kb("VmHWM")
    return (kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


def current_rss_mb() -> float:
    kb = status_kb("VmRSS")
    return (kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5) so a peak measures one workload."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class MeasuredRun:
    result: Any
    seconds: float
    start_rss_mb: float      # after imports and argument unpickling, before the workload
    peak_rss_mb: float       # peak during the workload (or of the whole child if reset failed)
    peak_was_reset: bool

    @property
    def extra_mb(self) -> float:
        """Memory the workload added on top of what the process held when it started."""
        return self.peak_rss_mb - self.start_rss_mb


def _child(conn, fn: Callable, args: tuple, kwargs: dict) -> None:
    try:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
        start_rss = current_rss_mb()
        was_reset = reset_peak_rss()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
        conn.send(("ok", MeasuredRun(result, seconds, start_rss, peak_rss_mb(), was_reset)))
    except BaseException:                      # report any failure to the parent, then exit
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def run_in_fresh_process(fn: Callable, *args: Any, timeout_s: float = 900.0, **kwargs: Any) -> MeasuredRun:
    """Run ``fn(*args, **kwargs)`` in a new 'spawn' process; return its result, time and peak RSS.

    ``fn`` must be importable by name (a module-level function), as spawn requires. A fresh process
    is the only clean way to attribute a peak to one workload inside a long test session.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise TimeoutError(f"{getattr(fn, '__name__', fn)} did not finish within {timeout_s:.0f} s")
        status, payload = parent.recv()
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if status != "ok":
        raise RuntimeError(f"{getattr(fn, '__name__', fn)} failed in its subprocess:\n{payload}")
    return payload


# -- workloads ---------------------------------------------------------------------------------
def preload_batches(dataset: Any, batch_size: int) -> list[torch.Tensor]:
    """The exact input batches extraction feeds the backbone, decoded once and kept in memory."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    return [batch["image"].contiguous() for batch in loader]


@torch.inference_mode()
def bare_forward_seconds(backbone: torch.nn.Module, batches: list[torch.Tensor], device: str) -> float:
    """Wall time of the bare ``backbone.pooled(x)`` loop: the floor any extraction path can reach."""
    from radbench_core.run.extraction import autocast_for
    backbone.eval()
    on_gpu = device.startswith("cuda")
    start = time.perf_counter()
    for x in batches:
        with autocast_for(device):
            out = backbone.pooled(x.to(device, non_blocking=True))
        for value in out.values():            # the same device->host copy extraction pays
            value.float().cpu()
    if on_gpu:
        torch.cuda.synchronize(torch.device(device))
    return time.perf_counter() - start


def random_features(n: int, dim: int, seed: int) -> np.ndarray:
    """``(n, dim)`` float32 Gaussian rows, generated without a float64 temporary (memory probes)."""
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def knn_probe(method: str, n_train: int, n_queries: int, dim: int, k: int, seed: int = 0,
              chunk_size: int = 1024) -> dict[str, Any]:
    """Neighbour search only (inputs are made before the clock starts): radbench vs sklearn brute."""
    if method not in ("radbench", "sklearn"):
        raise ConfigError("knn_probe(method)", f"got {method!r}", "use 'radbench' or 'sklearn'")
    from sklearn.neighbors import KNeighborsClassifier

    from radbench_core.protocols.knn import knn_neighbors

    def search(x: np.ndarray, q: np.ndarray) -> np.ndarray:
        if method == "radbench":
            return knn_neighbors(x, q, k, chunk_size=chunk_size, device="cpu")[1]
        model = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="cosine")
        return model.fit(x, np.arange(len(x)) % 2).kneighbors(q, return_distance=False)

    search(random_features(2 * k, dim, seed), random_features(4, dim, seed))   # warm-up: lazy inits
    train, queries = random_features(n_train, dim, seed), random_features(n_queries, dim, seed + 1)
    input_mb = (train.nbytes + queries.nbytes) / 2**20
    reset_peak_rss()
    base_rss = current_rss_mb()
    start = time.perf_counter()
    idx = search(train, queries)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "idx": np.asarray(idx, dtype=np.int64)[:256], "input_mb": input_mb,
            "workload_extra_mb": peak_rss_mb() - base_rss}


def _entry_must_exist() -> Any:
    raise RuntimeError("feature_cache_probe: the entry is not in the cache (parts differ from the writer's)")


def feature_cache_probe(cache_root: str | Path, parts: dict[str, Any]) -> dict[str, float]:
    """RSS added by reading one cache entry (memory-mapped fp16) and by the float32 copy protocols use."""
    from radbench_core.run.feature_cache import FeatureCache
    reset_peak_rss()
    base = current_rss_mb()
    features = FeatureCache(cache_root).get_or_compute(parts, _entry_must_exist)
    touched = sum(float(np.asarray(v[-1]).sum()) for kinds in features.values() for v in kinds.values())
    after_load = peak_rss_mb() - base
    as_f32 = [np.asarray(v, dtype=np.float32) for kinds in features.values() for v in kinds.values()]
    n_values = sum(a.size for a in as_f32)
    return {"n_values": float(n_values), "load_extra_mb": after_load,
            "float32_extra_mb": peak_rss_mb() - base, "checksum": touched + float(sum(a[0].sum() for a in as_f32))}


def write_nih_metadata(root: str | Path, n_rows: int = 112_120, seed: int = 0,
                       images_per_patient: int = 4) -> Path:
    """The NIH release's metadata at any size, no images: Data_Entry_2017.csv + the two lists.

    Same header, trailing comma, ``058Y`` ages and ``A|B`` labels as the original; about one patient
    in five is in the test list, as in the release.
    """
    from radbench_core.data.datasets.nih import CLASSES, TEST_LIST, TRAIN_VAL_LIST
    from radbench_core.data.phantoms.nih import HEADER_2017
    if n_rows < 10 * images_per_patient:
        raise ConfigError("write_nih_metadata(n_rows)", f"got {n_rows}, expected >= {10 * images_per_patient}",
                          "ask for enough rows that train, val and test all get patients")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    positives = rng.random((n_rows, len(CLASSES))) < 0.06
    ages = rng.integers(1, 95, n_rows)
    rows, train_val, test = [HEADER_2017], [], []
    for n in range(n_rows):
        pid, fu = n // images_per_patient + 1, n % images_per_patient
        name = f"{pid:08d}_{fu:03d}.png"
        labels = "|".join(CLASSES[c] for c in np.flatnonzero(positives[n])) or "No Finding"
        rows.append(f"{name},{labels},{fu},{pid},{ages[n]:03d}Y,{'MF'[n % 2]},PA,2500,2048,0.143,0.143,")
        (test if pid % 5 == 2 else train_val).append(name)
    (root / "Data_Entry_2017.csv").write_text("\n".join(rows) + "\n")
    (root / TRAIN_VAL_LIST).write_text("\n".join(train_val) + "\n")
    (root / TEST_LIST).write_text("\n".join(test) + "\n")
    return root


def write_films(folder: str | Path, count: int, px: int, seed: int = 0) -> list[Path]:
    """``count`` 8-bit grayscale chest-film PNGs of ``px`` x ``px`` (NIH films are 1024 px)."""
    from radbench_core.data.phantoms.draw import patient_anatomy, save_png, to_uint8
    from radbench_core.data.phantoms.nih import draw_film
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        path = folder / f"film_{n:04d}.png"
        save_png(path, to_uint8(draw_film(rng, px, patient_anatomy(rng), [n % 14])))
        paths.append(path)
    return paths


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge the numbers: cores, CPU model, RAM, threads, load."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = status_kb("MemTotal", "/proc/meminfo")
    return {"nproc": os.cpu_count(), "cpu": cpu,
            "ram_gb": round(mem_kb / 2**20, 1) if mem_kb else None,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_avg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}
