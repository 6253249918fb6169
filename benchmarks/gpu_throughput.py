"""GPU extraction throughput of full-size DINOv2 ViT-L/14 (random init is fine for speed).

Run on a CUDA machine:  python benchmarks/gpu_throughput.py --out gpu.json [--compile]
It reports images/s and the achieved fraction of the GPU's peak dense bf16 FLOP/s for
(a) a bare ``model.forward_features`` loop, (b) radbench's ``Backbone.pooled`` (what the feature
cache stores), both on tensors already on the GPU, and (c) radbench's whole extraction path
(PNG files -> DataLoader workers -> pinned memory -> bf16 forward) on an NIH phantom.
``--tiny`` runs the same code on the CPU with a demo model so the script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from radbench_core.run.extraction import autocast_for, extract_split  # noqa: E402
from radbench_core.models.features import load_backbone  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), from NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def count_flops(fn, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.inference_mode(), autocast_for(str(x.device)):
        fn(x)
    return counter.get_total_flops()


def time_loop(fn, x: torch.Tensor, iters: int, warmup: int = 3) -> float:
    """Seconds per call, measured with a device sync around the timed loop."""
    device = str(x.device)
    with torch.inference_mode(), autocast_for(device):
        for _ in range(warmup):
            fn(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            fn(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def pipeline_rate(backbone, resolution: int, batch: int, device: str, workers: int, size: str) -> dict:
    from radbench_core.data.datasets import get_dataset, open_dataset
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ModelTransform
    from radbench_core.data.source import prepare_phantom
    cache = Path(tempfile.mkdtemp(prefix="radbench-gpu-"))
    root = prepare_phantom("nih", size, cache)
    index = open_dataset(get_dataset("nih"), root)
    dataset = SliceDataset(index, "train", ModelTransform(resolution, backbone.mean, backbone.std))
    extract_split(backbone, dataset, device=device, batch_size=batch, num_workers=workers, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    extract_split(backbone, dataset, device=device, batch_size=batch, num_workers=workers, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"images": len(dataset), "seconds": seconds, "images_per_s": len(dataset) / seconds,
            "workers": workers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[224, 448])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd forward")
    parser.add_argument("--tiny", action="store_true", help="demo model on CPU: a smoke test")
    args = parser.parse_args(argv)
    tiny = args.tiny or not torch.cuda.is_available()
    device = "cpu" if tiny else "cuda:0"
    if not tiny:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    gpu = torch.cuda.get_device_name(0) if not tiny else "cpu (smoke test)"
    peak = None if tiny else peak_tflops(gpu)
    report = {"gpu": gpu, "peak_bf16_tflops": peak, "batch": args.batch, "torch": torch.__version__,
              "model": "dinov2_vitl14 (full size, random init)" if not tiny else "dinov2_vitl14 demo",
              "results": []}
    for res in args.resolutions:
        backbone = load_backbone("dinov2_vitl14", demo=True, resolution=res, device=device,
                                 arch_kwargs=None if tiny else {})
        x = torch.randn(args.batch, 3, res, res, device=device)
        flops_per_image = count_flops(backbone.pooled, x[:1])
        row = {"resolution": res, "params_m": sum(p.numel() for p in backbone.parameters()) / 1e6,
               "gflops_per_image": flops_per_image / 1e9}
        paths = {"bare_forward_features": backbone.model.forward_features, "radbench_pooled": backbone.pooled}
        if args.compile and not tiny:
            paths["radbench_pooled_compiled"] = torch.compile(backbone.pooled)
        for name, fn in paths.items():
            seconds = time_loop(fn, x, args.iters)
            rate = args.batch / seconds
            tflops = flops_per_image * rate / 1e12
            row[name] = {"images_per_s": rate, "tflops": tflops,
                         "fraction_of_peak": (tflops / peak) if peak else None}
        row["pooled_overhead_vs_bare"] = (row["bare_forward_features"]["images_per_s"]
                                          / row["radbench_pooled"]["images_per_s"])
        row["pipeline"] = pipeline_rate(backbone, res, args.batch, device,
                                        workers=0 if tiny else min(12, os.cpu_count() or 1),
                                        size="tiny" if tiny else "small")
        row["pipeline_time_ratio_vs_pooled"] = (row["radbench_pooled"]["images_per_s"]
                                                / row["pipeline"]["images_per_s"])
        if not tiny:
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        report["results"].append(row)
        print(json.dumps(row, indent=1), flush=True)
        del backbone, x
        if not tiny:
            torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
