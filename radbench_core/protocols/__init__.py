"""The protocol registry: id -> what it needs as input and the function that runs it.

A protocol is a plain function ``(inputs, hparams, seed) -> ProtocolResult``; adding one is one
function and one entry here, or one ``registry.add_protocol(ProtocolSpec(...))`` from user code.
Functions are resolved lazily so listing protocols imports no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Literal

from radbench_core.core.registry import Registry

InputKind = Literal["frozen", "live", "seg", "scratch"]


@dataclass(frozen=True)
class ProtocolSpec:
    id: str
    task: str                  # "classification" | "segmentation"
    inputs: InputKind          # frozen features | live backbone | frozen backbone + decoder | scratch
    function: str | Callable   # "module:function" (imported when the cell runs), or the function
    variant: str = ""          # what "@<variant>" means: "shots" | "resolution" | ""
    fixed: tuple[tuple[str, object], ...] = ()   # hparams this entry pins (e.g. mode="lora")
    description: str = ""
    hparam_keys: tuple[str, ...] = ()   # keys a profile may set for it beyond the built-in ones

    def resolve(self) -> Callable:
        if callable(self.function):
            return self.function
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)


_P = "radbench_core.protocols."
_BUILTIN = (
    ProtocolSpec("knn", "classification", "frozen", _P + "knn:run_knn", "resolution",
                 description="weighted kNN (T=0.07) on frozen features; ML-kNN for multi-label"),
    ProtocolSpec("linear", "classification", "frozen", _P + "linear:run_linear", "resolution",
                 description="many linear heads on frozen features, selected on validation"),
    ProtocolSpec("linear_subset", "classification", "frozen", _P + "linear:run_linear", "resolution",
                 description="linear probe on a fixed systematic subset of the data (the study's Table 8)"),
    ProtocolSpec("fewshot", "classification", "frozen", _P + "fewshot:run_fewshot", "shots",
                 description="linear head on n patients per class, several seeds"),
    ProtocolSpec("finetune", "classification", "live", _P + "finetune:run_finetune", "resolution",
                 (("mode", "full"),), "full fine-tuning of backbone + head"),
    ProtocolSpec("lora", "classification", "live", _P + "finetune:run_finetune", "resolution",
                 (("mode", "lora"),), "LoRA adapters (r=48, alpha=16) + head"),
    ProtocolSpec("bitfit", "classification", "live", _P + "finetune:run_finetune", "resolution",
                 (("mode", "bitfit"),), "bias terms + head"),
    ProtocolSpec("seg_linear", "segmentation", "seg", _P + "segmentation:run_seg_decoder",
                 "resolution", (("decoder", "linear"),), "1x1 conv decoder on a frozen backbone"),
    ProtocolSpec("seg_unet", "segmentation", "seg", _P + "segmentation:run_seg_decoder",
                 "resolution", (("decoder", "unet"),), "hierarchical U-Net decoder, frozen backbone"),
    ProtocolSpec("seg_fewshot", "segmentation", "seg", _P + "segmentation:run_seg_fewshot", "shots",
                 (("decoder", "unet"),), "U-Net decoder on n training images, several seeds"),
    ProtocolSpec("scratch", "segmentation", "scratch", _P + "segmentation:run_seg_scratch",
                 "resolution", description="U-Net / TransUNet trained end to end"),
    ProtocolSpec("scratch_fewshot", "segmentation", "scratch", _P + "segmentation:run_seg_fewshot",
                 "shots", description="U-Net / TransUNet from scratch on n training images, several seeds"),
)
PROTOCOLS: Registry[ProtocolSpec] = Registry.of_builtins("protocol", ProtocolSpec,
                                                         "radbench list protocols", _BUILTIN)
PROTOCOL_IDS = tuple(PROTOCOLS)        # the built-in ones


def get_protocol(protocol_id: str) -> ProtocolSpec:
    """The spec of a protocol id (built-in or registered), or a ConfigError listing the valid ids."""
    return PROTOCOLS.get_spec(protocol_id)
