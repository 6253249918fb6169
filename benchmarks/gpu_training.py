"""GPU training-step throughput of radbench's training paths (random init is fine for speed).

Run on a CUDA machine:  python benchmarks/gpu_training.py --out gpu_training.json
Measures one optimizer step (forward + backward + SGD) of (a) full fine-tuning of DINOv2 ViT-g/14 at
224 px, batch 32; (b) LoRA (r=48, qkv/fc1/fc2) on the same model; (c) the study's U-Net decoder on
frozen DINOv2 ViT-L/14 patch maps at 448 px, batch 16; (d) TransUNet from scratch at 448 px, batch
8: images/s, % of the GPU's peak dense bf16 (FLOPs of one step counted with
torch.utils.flop_counter) and peak memory. ``radbench plan --calibration FILE`` reads the output
(its ``paths`` keys are the planner's efficiency keys). ``--tiny`` runs the same code on the CPU
with demo-size models so the script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from radbench_core.run.extraction import autocast_for  # noqa: E402
from radbench_core.models.features import load_backbone  # noqa: E402
from radbench_core.plan.constants import GPUS  # noqa: E402


def peak_tflops(name: str) -> float | None:
    return next((v["peak_tflops"] for k, v in GPUS.items() if k in name), None)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(step, device: str, batch: int, iters: int, warmup: int = 2) -> dict:
    """Seconds per step, FLOPs of one step and peak memory; ``step()`` runs one full update."""
    from torch.utils.flop_counter import FlopCounterMode
    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / iters
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {"batch": batch, "step_s": seconds, "images_per_s": batch / seconds,
            "flops_per_step": counter.get_total_flops(), "peak_memory_gib": peak_mem}


def classification_step(model_id: str, mode: str, res: int, batch: int, device: str, tiny: bool):
    from radbench_core.protocols.finetune import configure_trainable
    backbone = load_backbone(model_id, demo=True, resolution=res, device=device,
                             arch_kwargs=None if tiny else {})
    configure_trainable(backbone, mode, {"r": 48, "alpha": 16, "dropout": 0.1,
                                         "target_modules": ("qkv", "fc1", "fc2"), "bias": "lora_only"})
    backbone.to(device).train()
    head = torch.nn.Linear(int(backbone.embed_dim), 15).to(device)
    params = [p for p in backbone.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    x = torch.randn(batch, 3, res, res, device=device)
    y = torch.randint(0, 2, (batch, 15), device=device).float()

    def step():
        with autocast_for(device):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                head(backbone.head_features(x)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def decoder_step(model_id: str, res: int, batch: int, device: str, tiny: bool):
    from radbench_core.protocols.decoders import build_decoder
    backbone = load_backbone(model_id, demo=True, resolution=res, device=device,
                             arch_kwargs=None if tiny else {}).frozen()
    backbone.eval().requires_grad_(False)
    decoder = build_decoder("unet", backbone.map_channels, backbone.map_strides, 2).to(device).train()
    opt = torch.optim.SGD(decoder.parameters(), lr=1e-2, momentum=0.9)
    x = torch.randn(batch, 3, res, res, device=device)
    target = torch.randint(0, 2, (batch, res, res), device=device)

    def step():
        with autocast_for(device):
            with torch.no_grad():
                maps = [m.float() for m in backbone.patch_maps(x)]
            logits = decoder(maps, (res, res)).float()
            loss = torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def scratch_step(model_id: str, res: int, batch: int, device: str, tiny: bool):
    from radbench_core.models.scratch_models import build_scratch_model
    net = build_scratch_model(model_id, 2, demo=tiny, resolution=res).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9)
    x = torch.randn(batch, 3, res, res, device=device)
    target = torch.randint(0, 2, (batch, res, res), device=device)

    def step():
        with autocast_for(device):
            loss = torch.nn.functional.cross_entropy(net(x).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=None, help="subset of finetune peft seg_decoder scratch")
    parser.add_argument("--tiny", action="store_true", help="demo models on CPU: a smoke test")
    args = parser.parse_args(argv)
    tiny = args.tiny
    device = "cpu" if tiny or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not tiny:
        print("no CUDA GPU: nothing measured (use --tiny for a CPU smoke test)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = peak_tflops(gpu)
    small = 56 if tiny else None
    cases = {
        "finetune": ("DINOv2 ViT-g/14 full fine-tune", lambda: classification_step(
            "dinov2_vitg14", "full", small or 224, 2 if tiny else 32, device, tiny), 2 if tiny else 32),
        "peft": ("DINOv2 ViT-g/14 LoRA r=48", lambda: classification_step(
            "dinov2_vitg14", "lora", small or 224, 2 if tiny else 32, device, tiny), 2 if tiny else 32),
        "seg_decoder": ("U-Net decoder on frozen DINOv2 ViT-L/14 @448", lambda: decoder_step(
            "dinov2_vitl14", small or 448, 2 if tiny else 16, device, tiny), 2 if tiny else 16),
        "scratch": ("TransUNet from scratch @448", lambda: scratch_step(
            "transunet", 64 if tiny else 448, 2 if tiny else 8, device, tiny), 2 if tiny else 8),
    }
    paths = {}
    for key, (label, build, batch) in cases.items():
        if args.only and key not in args.only:
            continue
        row = {"label": label, **measure(build(), device, batch, 2 if tiny else args.iters)}
        row["pct_peak"] = (100.0 * row["flops_per_step"] / row["step_s"] / (peak * 1e12)) if peak else None
        paths[key] = row
        mem = f"{row['peak_memory_gib']:.1f} GiB" if row["peak_memory_gib"] is not None else "n/a"
        pct = f"{row['pct_peak']:.1f} %" if row["pct_peak"] is not None else "n/a"
        print(f"{label:<48} {row['images_per_s']:>9.1f} img/s  {pct:>7} of peak bf16  peak {mem}")
        if device == "cuda":
            torch.cuda.empty_cache()
    result = {"gpu": gpu, "peak_tflops": peak, "torch": torch.__version__, "paths": paths}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
