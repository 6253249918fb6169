"""CPU extraction cost per image of the beyond-the-study models (issue 24), full size, random weights.

Why: ``radbench plan`` gives FLOPs and GPU hours; a user without a GPU wants seconds per image. The
numbers are the frozen-probe path (``Backbone.pooled``: the last 4 blocks' class tokens) at 224 px,
batch 1, one torch thread, best of ``--repeats`` after a warm-up. Weights are random (same cost).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/frontier_cpu_cost.py [--models a,b] [--pixels 224] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from radbench_core.models.architectures import create_architecture, strip_unused_parts
from radbench_core.models.features import Backbone
from radbench_core.models.specs import FRONTIER, get_model
from radbench_core.plan.flops import backbone_flops


def seconds_per_image(model_id: str, pixels: int, repeats: int) -> float:
    spec = get_model(model_id)
    with torch.device("cpu"):
        model = strip_unused_parts(spec, create_architecture(spec))
    backbone = Backbone(spec, model, resolution=pixels, weights="random").eval()
    x = torch.rand(1, 3, pixels, pixels)
    best = float("inf")
    with torch.inference_mode():
        backbone.pooled(backbone.normalize(x))                      # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            backbone.pooled(backbone.normalize(x))
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(FRONTIER))
    parser.add_argument("--pixels", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | px | GFLOP/image | s/image (CPU, 1 thread) | GFLOP/s |\n|---|---|---|---|---|")
    for model_id in args.models.split(","):
        seconds = seconds_per_image(model_id, args.pixels, args.repeats)
        gflop = backbone_flops(model_id, args.pixels) / 1e9
        print(f"| {get_model(model_id).label} | {args.pixels} | {gflop:.1f} | {seconds:.2f} | {gflop / seconds:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
