"""Profiles: which cells run and with which hyperparameters, as plain Python data.

``demo`` (the default when no data is configured) runs every dataset as a phantom with tiny
random-init models; ``smoke`` runs tiny random-init models on the user's real data folder with short
schedules and capped splits (does the folder, every loader, every split work?); ``paper`` is exactly
the cells behind the study's Tables 3-9 and Figures 1, 3-5 with its hyperparameters; ``full`` is
every model x every dataset it applies to x every protocol. A user profile is one more
``Profile(...)`` instance, usually ``get_profile("demo").extend(...)`` (see ``load_profile``);
``validate_profile`` checks it at start-up (``profile_checks.py``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radbench_core.core.cells import Cell, parse_protocol
from radbench_core.core.errors import ConfigError

CLS_DATASETS = ("nih", "chexpert", "sarscov2", "brain_tumor")
SEG_DATASETS = ("mc", "amos", "msd_spleen", "msd_hippocampus", "msd_heart")
DINOV2 = ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")
CNNS = ("densenet201", "resnet152", "vgg19")
FOUNDATION = (*DINOV2, "clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16", "sam_vitl16")
CLS_MODELS = (*DINOV2, "clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16",
              "vit_l16_in21k", *CNNS)
SEG_BACKBONES = (*DINOV2, "clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16",
                 "sam_vitl16", "vit_l16_in21k")
SCRATCH = ("unet", "transunet")


@dataclass(frozen=True)
class Grid:
    """Every model x every dataset x every protocol entry (``"fewshot@8"``) listed here."""
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    protocols: tuple[str, ...]

    def __post_init__(self) -> None:
        # Grid("dinov2_vits14", ...) would iterate the letters and report "unknown model 'd'"
        for name in ("models", "datasets", "protocols"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigError(f"Grid({name}=...)", f"{value!r} is a string, so its letters would be "
                                  f"read as {name}", f"write a tuple, e.g. Grid({name}=({value!r},))")

    def cells(self) -> list[Cell]:
        return [Cell(m, d, *parse_protocol(p))
                for m in self.models for d in self.datasets for p in self.protocols]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    demo: bool                                # phantoms + random-init tiny models
    grids: tuple[Grid, ...]
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    cls_resolution: int = 224                 # classification input size unless the cell says
    phantom_size: str = "small"
    batch_size: int = 64                      # feature extraction batch
    num_workers: int = 2                      # DataLoader workers for extraction
    # dataset id -> LoadOptions fields, e.g. {"chexpert": {"uncertainty": "ones"}, "amos": {"subset": 150}}
    load_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    split_files: dict[str, str] = field(default_factory=dict)     # dataset id -> split JSON
    data: str = ""                            # "" = phantoms iff demo; "user" = the data dir, even if demo
    # switch id -> value (config/switches.py); a switch not named here runs its sound value
    switches: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_phantoms(self) -> bool:
        """Whether cells read phantoms (demo) rather than the user's data folder (smoke, paper, ...)."""
        return self.demo and self.data != "user"

    def extend(self, name: str, *, description: str | None = None, grids: tuple[Grid, ...] = (),
               replace_grids: bool = False, hparams: dict[str, dict[str, Any]] | None = None,
               load_options: dict[str, dict[str, Any]] | None = None,
               split_files: dict[str, str] | None = None, switches: dict[str, Any] | None = None,
               **changes: Any) -> "Profile":
        """A new profile starting from this one: grids appended (or replaced), hyperparameters merged
        per protocol (a key set here wins), load options and split files merged per dataset, switch
        values merged (``switches={"multilabel_loss_mean": "mean"}``)."""
        merged = {k: dict(v) for k, v in self.hparams.items()}
        for protocol, values in (hparams or {}).items():
            merged.setdefault(protocol, {}).update(values)
        options = {k: dict(v) for k, v in self.load_options.items()}
        for dataset, values in (load_options or {}).items():
            options.setdefault(dataset, {}).update(values)
        return dataclasses.replace(
            self, name=name, description=description or f"{self.description} (extended as {name})",
            grids=tuple(grids) if replace_grids else self.grids + tuple(grids), hparams=merged,
            load_options=options, split_files={**self.split_files, **(split_files or {})},
            switches={**self.switches, **(switches or {})}, **changes)

    def cells(self) -> list[Cell]:
        """Unique cells in grid order, keeping only combinations that make sense."""
        seen: dict[str, Cell] = {}
        for grid in self.grids:
            for cell in grid.cells():
                if cell.id not in seen and applicable(cell):
                    seen[cell.id] = cell
        return list(seen.values())

    def hparams_for(self, protocol: str) -> dict[str, Any]:
        """The protocol's hyperparameters with the profile's switch values under their keys.

        A switch at its sound value (the code's default) is added only where the hyperparameters
        already name its key, so records and config hashes of runs that predate a switch stay valid.
        """
        from radbench_core.config.switches import hparams_with_switches, switches
        if protocol not in self.hparams:
            raise ConfigError(f"profile {self.name!r}", f"has no hyperparameters for {protocol!r}",
                              f"add a {protocol!r} entry to the profile's hparams")
        known = switches()
        values = {sid: v for sid, v in self.switches.items()
                  if sid in known and (v != known[sid].sound or known[sid].key in self.hparams[protocol])}
        return hparams_with_switches(protocol, self.hparams[protocol], values)


def applicable(cell: Cell) -> bool:
    """A protocol's task must match the dataset's; scratch models only train from scratch."""
    from radbench_core.data.datasets import get_dataset
    from radbench_core.models.specs import get_model
    from radbench_core.protocols import get_protocol

    model, dataset, protocol = get_model(cell.model), get_dataset(cell.dataset), get_protocol(cell.protocol)
    if protocol.task != dataset.task:
        return False
    if (protocol.inputs == "scratch") != (model.arch == "seg_scratch"):
        return False
    if protocol.id in ("lora",) and model.arch not in ("vit", "sam"):
        return False
    if protocol.id in ("seg_fewshot", "scratch_fewshot") and cell.dataset != "mc":
        return False
    return dataset.task in model.tasks


def _hparams(paper: bool) -> dict[str, dict[str, Any]]:
    from radbench_core.config import hparams as cls_h
    from radbench_core.config import seg_hparams as seg_h
    source = (cls_h.PAPER, seg_h.PAPER) if paper else (cls_h.DEMO, seg_h.DEMO)
    merged: dict[str, dict[str, Any]] = {}
    for table in source:
        merged.update({k: dict(v) for k, v in table.items()})
    # Table 8: the linear probe on a fixed systematic subset (at most this many items per split)
    merged["linear_subset"] = {**merged["linear"], "max_items": TABLE8_MAX_ITEMS}
    return merged


def _demo() -> Profile:
    fewshot = tuple(f"fewshot@{n}" for n in (1, 2, 4, 8))
    return Profile(
        name="demo",
        description="every dataset as a synthetic phantom, tiny random-init models, short schedules",
        demo=True,
        grids=(
            Grid(CLS_MODELS + ("sam_vitl16",), CLS_DATASETS, ("knn", "linear")),
            # Figure 5's two rows: DINOv2 ViT-L/14 vs a self-supervised and a supervised model
            Grid(("dinov2_vitl14", "mae_vitl16", "resnet152"), ("nih",), fewshot),
            Grid(("dinov2_vits14", "dinov2_vitb14", "resnet152"), ("nih", "brain_tumor"),
                 ("finetune", "lora", "bitfit")),
            # every segmentation backbone with the U-Net decoder (Figure 1 ranks all of them) ...
            Grid(SEG_BACKBONES, SEG_DATASETS, ("seg_unet@112",)),
            # ... and the linear decoder for the Table 7 / Figure 4 comparisons
            Grid(("dinov2_vitl14", "mae_vitl16", "clip_vitl14", "vit_l16_in21k"), SEG_DATASETS,
                 ("seg_linear@112",)),
            # the 224 vs 112 px comparison of Table 5, on the 2D dataset only (4x the pixels)
            Grid(("dinov2_vitl14", "mae_vitl16"), ("mc",), ("seg_unet@224",)),
            Grid(SCRATCH, SEG_DATASETS, ("scratch@112",)),
            Grid(("dinov2_vitl14", "mae_vitl16", "vit_l16_in21k"), ("mc",),
                 tuple(f"seg_fewshot@{n}" for n in (1, 4, "all"))),
            Grid(("unet",), ("mc",), tuple(f"scratch_fewshot@{n}" for n in (1, 4, "all"))),
            *frontier_demo_grids(),
        ),
        hparams=_hparams(paper=False),
        cls_resolution=112,
        phantom_size="small",
        batch_size=32,
        num_workers=0,
    )


SUPERVISED_CLS = (*CNNS, "vit_l16_in21k")
WEAKLY_SELF = ("clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16")
FIGURE1 = (*WEAKLY_SELF, "dinov2_vitl14", "dinov2_vitg14")
# Table 8: a fixed systematic subset of each split (the study used "a subset", size unstated)
TABLE8_MAX_ITEMS = 2000


def _shots(protocol: str, size: int | None = None) -> tuple[str, ...]:
    """Figure 5's entries of one protocol, from the pinned ``shot_grid`` (so the pin is the list),
    at ``size`` px when given (``seg_fewshot@4_448px``).

    x = 1..16 patients (NIH) or images (MC); the "All" points are the Table 5 / 6 cells themselves,
    so no "@all" cell is run for them."""
    from radbench_core.config import hparams as cls_h
    from radbench_core.core.cells import shots_variant
    return tuple(f"{protocol}@{shots_variant(n, size)}" for n in cls_h.PAPER["fewshot"]["shot_grid"])


def paper_grids() -> tuple[Grid, ...]:
    """The study's experiments, one grid per table or figure; ``Profile.cells`` drops repeats."""
    return (
        # Table 3: linear probing, DINOv2 sizes vs supervised models, 4 classification datasets
        Grid((*DINOV2, *SUPERVISED_CLS), CLS_DATASETS, ("linear",)),
        # Figure 3 (+ Figure 1's classification axis): DINOv2 L/g vs weakly-/self-supervised models
        Grid(FIGURE1, CLS_DATASETS, ("linear",)),
        # Table 4: kNN, linear probing and fine-tuning on NIH and CheXpert
        Grid((*SUPERVISED_CLS, *WEAKLY_SELF, "dinov2_vitl14", "dinov2_vitg14"), ("nih", "chexpert"),
             ("knn", "linear", "finetune")),
        # Table 5 (+ Figure 1's segmentation axis): U-Net decoder at 224, DINOv2 L/g also at 448
        Grid(FIGURE1, SEG_DATASETS, ("seg_unet@224",)),
        Grid(("dinov2_vitl14", "dinov2_vitg14"), SEG_DATASETS, ("seg_unet@448",)),
        # Table 6: frozen DINOv2 + U-Net decoder (448 px, above) vs U-Net / TransUNet from scratch
        Grid(SCRATCH, SEG_DATASETS, ("scratch@448",)),
        # Table 7: supervised ImageNet-21k ViT-L/16 vs DINOv2 ViT-L/14, U-Net decoder
        Grid(("vit_l16_in21k",), SEG_DATASETS, ("seg_unet@224",)),
        # Figure 4: linear vs U-Net decoder on frozen DINOv2 ViT-L/14 (448 px, as Table 6)
        Grid(("dinov2_vitl14",), SEG_DATASETS, ("seg_linear@448",)),
        # Table 8: SAM vs DINOv2 at 1024 px on a subset of NIH and CheXpert
        Grid(("sam_vitl16", "dinov2_vitl14"), ("nih", "chexpert"), ("linear_subset@1024",)),
        # Table 9: fine-tuning vs linear probing vs LoRA vs BitFit on DINOv2 ViT-g/14
        Grid(("dinov2_vitg14",), ("nih", "chexpert"), ("finetune", "linear", "lora", "bitfit")),
        # Figure 5: few-shot on NIH (patients per class) and MC; top row DINOv2 L/14 vs weakly-/
        # self-supervised models, bottom row vs supervised ones
        Grid(("dinov2_vitl14", *WEAKLY_SELF, *SUPERVISED_CLS), ("nih",), _shots("fewshot")),
        Grid(("dinov2_vitl14", *WEAKLY_SELF), ("mc",), _shots("seg_fewshot")),
        # ... the bottom row's DINOv2 ViT-L/14 curve at 448 px (it ends at Table 6's 448 px cell)
        Grid(("dinov2_vitl14",), ("mc",), _shots("seg_fewshot", 448)),
        Grid(SCRATCH, ("mc",), _shots("scratch_fewshot")),
    )


def _paper() -> Profile:
    from radbench_core.config.switches import STUDY, switch_values
    return Profile(
        name="paper",
        description="the study's experiments (Tables 3-9, Figures 1, 3, 4, 5) as it ran them: every "
                    "switch at the study's value",
        demo=False,
        grids=paper_grids(),
        hparams=_hparams(paper=True),
        cls_resolution=224,
        batch_size=128,
        num_workers=8,
        switches=switch_values(STUDY),
    )


def _sound() -> Profile:
    """The study's cells run soundly: ``paper`` with every switch at the value we argue for."""
    from radbench_core.config.switches import SOUND, switch_values
    return _paper().extend("sound", description="the study's experiments with every switch at the "
                           "sound value (docs/fidelity.md lists each switch)",
                           switches=switch_values(SOUND))


def with_switch_side(profile: Profile, side: str | None) -> Profile:
    """``profile`` with every switch at one side (``--radbench-switches study|sound``), same cells;
    named ``<profile>+<side>``. ``None``: the profile as it is."""
    if side is None:
        return profile
    from radbench_core.config.switches import SOUND, STUDY, switch_values
    if side not in (STUDY, SOUND):
        raise ConfigError("--radbench-switches", f"unknown side {side!r}", "use study or sound")
    return profile.extend(f"{profile.name}+{side}", description=f"{profile.description}; every "
                          f"switch at the {side} value", switches=switch_values(side))


def _full() -> Profile:
    from radbench_core.models.specs import MODELS
    from radbench_core.protocols import PROTOCOLS
    entries = []
    for pid, spec in PROTOCOLS.items():
        if spec.variant == "shots":
            entries += [f"{pid}@{n}" for n in (1, 2, 4, 8, 16)]
        elif spec.task == "segmentation":
            entries += [f"{pid}@224", f"{pid}@448"]
        else:
            entries.append(pid)
    paper = _paper()
    return Profile(name="full", description="every model x every dataset it applies to x every protocol",
                   demo=False, grids=(Grid(tuple(MODELS), CLS_DATASETS + SEG_DATASETS, tuple(entries)),),
                   hparams=paper.hparams, cls_resolution=224, batch_size=128, num_workers=8)


SMOKE_MAX_ITEMS = {"classification": 48, "segmentation": 6}     # per split: minutes, not hours


def _smoke() -> Profile:
    """Tiny random-init models on the user's data folder: every registered dataset, short schedules.

    A dataset whose folder is absent skips (saying where it was looked for); the others prove the
    folder, its splits and its loader end to end. Numbers mean nothing: the models are untrained.
    """
    from radbench_core.data.datasets import DATASETS
    from radbench_core.protocols import get_protocol
    hparams = _hparams(paper=False)
    for protocol, values in hparams.items():
        values["max_items"] = SMOKE_MAX_ITEMS[get_protocol(protocol).task]
    by_task: dict[str, list[str]] = {"classification": [], "segmentation": []}
    for dataset_id, spec in DATASETS.items():
        by_task[spec.task].append(dataset_id)
    return Profile(
        name="smoke", description="tiny random-init models on your data folder, capped splits, short "
        "schedules: checks every dataset's folder, splits and loader (metrics are meaningless)",
        demo=True, data="user",
        grids=(Grid(("dinov2_vits14",), tuple(by_task["classification"]), ("knn", "linear")),
               Grid(("dinov2_vits14",), tuple(by_task["segmentation"]), ("seg_linear@112",))),
        hparams=hparams, cls_resolution=112, phantom_size="tiny", batch_size=32, num_workers=0)


def frontier_demo_grids() -> tuple[Grid, ...]:
    from radbench_core.config.frontier_profile import frontier_demo_grids as grids
    return grids()


def _frontier() -> Profile:
    from radbench_core.config.frontier_profile import frontier_profile
    return frontier_profile()


_BUILDERS = {"demo": _demo, "smoke": _smoke, "paper": _paper, "sound": _sound, "full": _full,
             "frontier": _frontier}
PROFILE_NAMES = tuple(_BUILDERS)


def get_profile(name: str) -> Profile:
    """A built-in profile by name, or a user profile from a ``.py`` file defining ``PROFILE``."""
    if name in _BUILDERS:
        return _BUILDERS[name]()
    if name.endswith(".py"):
        return load_profile(Path(name))
    raise ConfigError("--radbench-profile", f"unknown profile {name!r}",
                      f"use one of {', '.join(PROFILE_NAMES)} or a path to a .py file defining "
                      "PROFILE = radbench_core.config.profiles.Profile(...)")


def load_profile(path: Path) -> Profile:
    if not path.is_file():
        raise ConfigError(path, "profile file not found", "pass an existing .py file to --radbench-profile")
    spec = importlib.util.spec_from_file_location(f"radbench_user_profile_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    profile = getattr(module, "PROFILE", None)
    if not isinstance(profile, Profile):
        raise ConfigError(path, "defines no PROFILE = Profile(...)",
                          "add `PROFILE = Profile(name=..., demo=..., grids=(Grid(...),), hparams=...)`")
    return profile
