"""Speed cells: does the suite spend its time in the backbone? Every claim is a ratio taken in one run.

Run apart from the metric grid (``make bench`` skips them):

    RADBENCH_PERF_SCALE=full OMP_NUM_THREADS=1 pytest benchmarks/test_throughput.py -m throughput -s \\
        -p no:cacheprovider --benchmark-json reports/throughput.json

Each test times radbench's path with pytest-benchmark, times its comparison partner in the same
test, and puts the ratio (and the target it is judged against) into ``benchmark.extra_info`` plus a
one-line ``[throughput]`` summary. Targets are read from that output, never asserted here.
Scales: ``tiny`` (smoke test), ``small`` (default) and ``full`` (the numbers in docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import throughput_tools as perf  # benchmarks/throughput_tools.py (benchmark-only helpers)
from radbench_core.run.runner import BackbonePool

pytestmark = pytest.mark.throughput
REALISTIC_VIT = dict(embed_dim=384, depth=12, num_heads=6)   # ViT-S/14 geometry, same timm class


def _selected(config: pytest.Config) -> bool:
    return "throughput" in (config.getoption("markexpr", "") or "") or perf.PERF_SCALE_ENV in os.environ


@pytest.fixture(autouse=True)
def _run_apart(request: pytest.FixtureRequest) -> None:
    if not _selected(request.config):
        pytest.skip("speed cells run apart: pytest benchmarks -m throughput (or set RADBENCH_PERF_SCALE)")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("speed cells need the machine to themselves: run them without -n")


@pytest.fixture(scope="module")
def scale() -> perf.PerfScale:
    return perf.perf_scale()


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("throughput")


def report(benchmark, name: str, **values) -> None:
    """Record the numbers in the benchmark JSON and print the one-line summary."""
    benchmark.extra_info.update(values)
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    print(f"\n[throughput] {name}: {text}")


def timed(benchmark, fn, rounds: int = 1, setup=None) -> tuple[float, object]:
    """Run ``fn`` under pytest-benchmark; our own clock gives the best round even when disabled."""
    times, results = [], []

    def run():
        start = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - start)

    benchmark.pedantic(run, rounds=rounds, iterations=1, setup=setup, warmup_rounds=0)
    return min(times), results[-1]


def _open(dataset_id: str, size: str, cache_dir: Path):
    from radbench_core.data.datasets import get_dataset, open_dataset
    from radbench_core.data.source import prepare_phantom
    spec = get_dataset(dataset_id)
    return open_dataset(spec, prepare_phantom(dataset_id, size, cache_dir))


def _backbone(variant: str, resolution: int):
    from radbench_core.models.features import load_backbone
    kwargs = REALISTIC_VIT if variant == "vits14_full" else None
    return load_backbone("dinov2_vits14", demo=True, resolution=resolution, device="cpu", arch_kwargs=kwargs)


@pytest.mark.parametrize("variant", ["demo", "vits14_full"])
@pytest.mark.parametrize("dataset_id", ["nih", "msd_spleen"])
def test_extraction_overhead(benchmark, scale, work_dir, dataset_id, variant):
    """radbench's extraction (files -> preprocessing -> DataLoader -> forward -> fp16 cache) vs bare forward."""
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ModelTransform
    from radbench_core.data.datasets.volumes import VOLUME_CACHE
    from radbench_core.run.extraction import extract_split
    from radbench_core.run.feature_cache import FeatureCache

    if variant == "vits14_full" and not scale.realistic_vit:
        pytest.skip(f"scale {scale.name}: the full-width ViT-S/14 runs at small/full scale")
    index = _open(dataset_id, scale.phantom_size, work_dir)
    backbone = _backbone(variant, scale.resolution)
    transform = ModelTransform(scale.resolution, backbone.mean, backbone.std)
    splits = ("train", "val", "test")
    n_slices = sum(len(SliceDataset(index, s, transform)) for s in splits)
    batches = [b for s in splits for b in perf.preload_batches(SliceDataset(index, s, transform), scale.batch_size)]
    bare_s, _ = perf.time_call(lambda: perf.bare_forward_seconds(backbone, batches, "cpu"), scale.repeats)
    runs = iter(range(10**6))

    def radbench_path(workers: int):
        cache = FeatureCache(work_dir / f"features-{dataset_id}-{variant}-w{workers}-{next(runs)}")
        parts = {"bench": dataset_id, "variant": variant, "workers": workers}
        return cache.get_or_compute(parts, lambda: {
            s: extract_split(backbone, SliceDataset(index, s, transform), device="cpu",
                             batch_size=scale.batch_size, num_workers=workers, progress=False)
            for s in splits})

    def cold(workers: int):                        # fresh cache entry, no volume decoded beforehand
        VOLUME_CACHE.clear()
        return radbench_path(workers)

    path_s = {0: perf.time_call(lambda: cold(0), scale.repeats)[0]}
    path_s[2], features = timed(benchmark, lambda: cold(2), scale.repeats)
    assert features["train"]["cls"].shape[0] == len(index.splits["train"])
    report(benchmark, f"extraction {dataset_id}/{variant}@{scale.resolution}",
           slices=n_slices, bare_features_per_s=perf.rate(n_slices, bare_s),
           path_features_per_s_w0=perf.rate(n_slices, path_s[0]),
           path_features_per_s_w2=perf.rate(n_slices, path_s[2]),
           time_ratio_w0=path_s[0] / bare_s, time_ratio_w2=path_s[2] / bare_s, target_ratio=1.15)


def test_png_decode_rate(benchmark, scale, work_dir):
    """PNG decode + [0,1] scaling + antialiased resize to the model input, per image."""
    from radbench_core.data.datasets.csvtools import read_gray
    from radbench_core.data.datasets.transforms import ModelTransform
    from radbench_core.models.specs import IMAGENET_MEAN, IMAGENET_STD

    transform = ModelTransform(scale.resolution, IMAGENET_MEAN, IMAGENET_STD)
    index = _open("nih", scale.phantom_size, work_dir)
    phantom = [index.root / it.images[0] for it in index.items]
    films = perf.write_films(work_dir / f"films{scale.png_px}", scale.png_count, scale.png_px)

    def decode(paths):
        return [transform(read_gray(p)) for p in paths]

    phantom_s, _ = perf.time_call(lambda: decode(phantom), scale.repeats)
    films_s, out = timed(benchmark, lambda: decode(films), scale.repeats)
    assert out[0].shape == (3, scale.resolution, scale.resolution)
    report(benchmark, "png decode+resize", phantom_px=int(read_gray(phantom[0]).shape[0]),
           phantom_images_per_s=perf.rate(len(phantom), phantom_s), film_px=scale.png_px,
           film_images_per_s=perf.rate(len(films), films_s))


def test_nifti_slice_cache(benchmark, scale, work_dir):
    """Slices/s served from the per-volume slice cache vs decoding the volume again for every slice."""
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ModelTransform
    from radbench_core.data.datasets.volumes import VOLUME_CACHE
    from radbench_core.models.specs import IMAGENET_MEAN, IMAGENET_STD

    index = _open("msd_spleen", scale.phantom_size, work_dir)
    transform = ModelTransform(scale.resolution, IMAGENET_MEAN, IMAGENET_STD)

    def cached():
        VOLUME_CACHE.clear()
        ds = SliceDataset(index, "train", transform)
        out = [ds[i] for i in range(len(ds))]
        return out, VOLUME_CACHE.stats()["decodes"]

    def redecoded():
        n = len(SliceDataset(index, "train", transform))
        for i in range(n):
            VOLUME_CACHE.clear()                       # no volume survives from the previous slice
            SliceDataset(index, "train", transform)[i]
        return n

    cached_s, (samples, decodes) = timed(benchmark, cached, scale.repeats)
    redecode_s, n = perf.time_call(redecoded, 1)
    assert decodes == len(index.splits["train"]) and len(samples) == n
    report(benchmark, "nifti slices", slices=n, volumes=decodes,
           cached_slices_per_s=perf.rate(n, cached_s), redecode_slices_per_s=perf.rate(n, redecode_s),
           speedup=redecode_s / cached_s)


class _FixedPool(BackbonePool):
    """A BackbonePool holding one prepared backbone (lets the cache cell use a wider ViT)."""

    def __init__(self, backbone):
        super().__init__()
        self._backbone = backbone

    def get(self, *args, **kwargs):
        return self._backbone

    def release(self) -> None:
        pass


def test_cache_second_protocol(benchmark, scale, work_dir):
    """run_cell: first frozen protocol (extract + kNN) vs the same cell again on a cache hit."""
    from radbench_core.core.cells import Cell
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.config.profiles import get_profile
    from radbench_core.run.runner import RunContext, load_index, run_cell

    variant = "vits14_full" if scale.realistic_vit else "demo"
    profile = dataclasses.replace(get_profile("demo"), phantom_size=scale.phantom_size,
                                  cls_resolution=scale.resolution, batch_size=scale.batch_size)
    ctx = RunContext(profile=profile, cache_dir=work_dir / "runner", num_workers=0, progress=False)
    load_index("nih", ctx)                                    # the phantom is written before the clock
    pool = _FixedPool(_backbone(variant, scale.resolution))
    cache = FeatureCache(work_dir / "runner" / "features")
    knn, linear = Cell("dinov2_vits14", "nih", "knn"), Cell("dinov2_vits14", "nih", "linear")
    first_s, first = perf.time_call(lambda: run_cell(knn, ctx, pool, cache), 1)
    second_s, second = timed(benchmark, lambda: run_cell(knn, ctx, pool, cache), scale.repeats)
    linear_s, _ = perf.time_call(lambda: run_cell(linear, ctx, pool, cache), 1)
    assert cache.misses == 1 and first.metrics["auroc"].value == second.metrics["auroc"].value
    report(benchmark, f"feature cache ({variant})", first_s=first_s, second_s=second_s,
           second_over_first=second_s / first_s, linear_on_hit_s=linear_s,
           linear_on_hit_over_first=linear_s / first_s, target_ratio=0.10)


def test_linear_sweep(benchmark, scale):
    """32 heads (8 lr x n_blocks {1,4} x avgpool) trained together vs one head, one epoch."""
    from radbench_core.config.hparams import LINEAR_LRS
    from radbench_core.protocols.linear import HeadConfig, head_configs, train_heads

    rng = np.random.default_rng(0)
    n, dim = scale.linear_rows, 384
    feats = {"cls": rng.standard_normal((n, 4, dim), dtype=np.float32),
             "patch_mean": rng.standard_normal((n, dim), dtype=np.float32)}
    labels = (rng.random((n, 14)) < 0.1).astype(np.float32)
    sweep = head_configs(LINEAR_LRS, (1, 4), (False, True), feats)

    def train(configs):
        return train_heads(feats, labels, configs, label_kind="multilabel", num_classes=14, epochs=1,
                           batch_size=512, seed=0)

    all_s, result = timed(benchmark, lambda: train(sweep), scale.repeats)
    rich_s, _ = perf.time_call(lambda: train([HeadConfig(1e-3, 4, True)]), scale.repeats)
    lean_s, _ = perf.time_call(lambda: train([HeadConfig(1e-3, 1, False)]), scale.repeats)
    assert len(result.final) == len(sweep) == 32
    report(benchmark, "linear sweep", rows=n, heads=len(sweep), sweep_epoch_s=all_s,
           one_head_4blocks_avgpool_s=rich_s, one_head_1block_s=lean_s,
           ratio_vs_4blocks_avgpool=all_s / rich_s, ratio_vs_1block=all_s / lean_s, target_ratio=2.0)


def test_knn_vs_sklearn(benchmark, scale):
    """Chunked cosine kNN vs sklearn brute force, each in a fresh process (speed and peak RSS)."""
    q, dim, k = scale.knn_queries, scale.knn_dim, scale.knn_k
    runs = {}
    for n in scale.knn_train:
        for method in ("radbench", "sklearn"):
            if method == "sklearn" and n != scale.knn_train[-1]:
                continue
            if method == "radbench" and n == scale.knn_train[-1]:
                _, runs[(method, n)] = timed(benchmark, lambda: perf.run_in_fresh_process(
                    perf.knn_probe, method, n, q, dim, k))
            else:
                runs[(method, n)] = perf.run_in_fresh_process(perf.knn_probe, method, n, q, dim, k)
    n = scale.knn_train[-1]
    ours, theirs = runs[("radbench", n)].result, runs[("sklearn", n)].result
    same = np.mean([set(a) == set(b) for a, b in zip(ours["idx"], theirs["idx"])])
    assert same >= 0.95, f"neighbour sets differ from sklearn's on {1 - same:.1%} of queries"
    values = {"queries": q, "dim": dim, "k": k, "train_rows": n, "radbench_s": ours["seconds"],
              "sklearn_s": theirs["seconds"], "speedup": theirs["seconds"] / ours["seconds"],
              "target_speedup": 3.0, "same_neighbours": float(same),
              "sklearn_extra_mb": theirs["workload_extra_mb"]}
    for (method, rows), run in runs.items():
        if method == "radbench":
            values[f"radbench_extra_mb_{rows}"] = run.result["workload_extra_mb"]
            values[f"radbench_peak_rss_mb_{rows}"] = run.peak_rss_mb
            values[f"input_mb_{rows}"] = run.result["input_mb"]
    report(benchmark, "knn", **values)


def test_nih_scale_index(benchmark, scale, work_dir):
    """Index NIH-scale metadata (native CSV + official lists, lazy images) and build its splits."""
    from radbench_core.data.datasets import get_dataset, open_dataset
    from radbench_core.data.datasets.splits import SPLITS_FILENAME

    root = perf.write_nih_metadata(work_dir / "nih_scale", scale.nih_rows)

    def index():
        (root / SPLITS_FILENAME).unlink(missing_ok=True)     # every round builds the splits anew
        return open_dataset(get_dataset("nih"), root)

    seconds, idx = timed(benchmark, index, 1)
    assert len(idx.items) == scale.nih_rows
    report(benchmark, "nih-scale index", rows=len(idx.items), seconds=seconds, target_s=5.0,
           train=len(idx.splits["train"]), val=len(idx.splits["val"]), test=len(idx.splits["test"]))


def test_feature_cache_size(benchmark, scale, work_dir):
    """Cache entries grow as N x values x 2 bytes (fp16); RSS of reading one back, fresh process."""
    from radbench_core.run.feature_cache import FeatureCache, cache_key

    dim, blocks = 384, 4
    cache = FeatureCache(work_dir / "size_cache")
    sizes = {}
    for n in scale.cache_rows:
        rng = np.random.default_rng(n)
        feats = {"train": {"cls": rng.standard_normal((n, blocks, dim), dtype=np.float32),
                           "patch_mean": rng.standard_normal((n, dim), dtype=np.float32)}}
        parts = {"bench": "size", "n": n}
        if n == scale.cache_rows[-1]:
            timed(benchmark, lambda: cache.get_or_compute(parts, lambda: feats))
        else:
            cache.get_or_compute(parts, lambda: feats)
        entry = cache.entry(cache_key(parts))
        sizes[n] = sum(p.stat().st_size for p in entry.glob("*.npy"))
    probe = perf.run_in_fresh_process(perf.feature_cache_probe, cache.root, parts).result
    (n1, n2), per_item = scale.cache_rows, (blocks + 1) * dim
    report(benchmark, "feature cache size", values_per_item=per_item,
           bytes_per_value_n1=sizes[n1] / (n1 * per_item), bytes_per_value_n2=sizes[n2] / (n2 * per_item),
           growth_bytes_per_value=(sizes[n2] - sizes[n1]) / ((n2 - n1) * per_item),
           load_extra_mb_n2=probe["load_extra_mb"], float32_extra_mb_n2=probe["float32_extra_mb"],
           fp16_mb_n2=sizes[n2] / 2**20)


@pytest.mark.skipif(not getattr(perf.SCALES.get(os.environ.get(perf.PERF_SCALE_ENV, "")), "parallel", False),
                    reason="slow: runs only with RADBENCH_PERF_SCALE=full")
def test_parallel_grid(benchmark, work_dir):
    """A slice of the demo grid serially vs `-n 2 --dist loadgroup`, fresh cache dir each."""
    root = Path(__file__).resolve().parents[1]
    selection = "nih and (knn or linear)"

    def grid(tag: str, extra: list[str]) -> float:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RADBENCH_CACHE_DIR": str(work_dir / f"grid-{tag}"),
               "RADBENCH_RESULTS_DIR": str(work_dir / f"runs-{tag}"), "RADBENCH_SEED": "0"}
        env.pop(perf.PERF_SCALE_ENV, None)
        cmd = [sys.executable, "-m", "pytest", "benchmarks/test_classification.py", "-k", selection,
               "-q", "-p", "no:cacheprovider", "--radbench-no-report", *extra]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return time.perf_counter() - start

    serial_s = grid("serial", [])
    parallel_s, _ = timed(benchmark, lambda: grid("n2", ["-n", "2", "--dist", "loadgroup"]))
    report(benchmark, "parallel grid", selection=selection, serial_s=serial_s, n2_s=parallel_s,
           speedup=serial_s / parallel_s, target_speedup=1.6)
