"""The ``frontier`` profile: beyond the study (issue 24), the newer foundation models beside its best.

Why apart from ``profiles.py``: the study's profiles stay as they are; this one adds models the study
never ran (DINOv3, DINOv2 with registers, SigLIP, and the medical RAD-DINO, BiomedCLIP, MedSigLIP,
MedSAM) on the study's grid, so a reader sees them beside DINOv2 ViT-L/14 and ViT-g/14.
"""

from __future__ import annotations

from radbench_core.config.profiles import CLS_DATASETS, SEG_DATASETS, Grid, Profile, _paper, _shots
from radbench_core.models.specs import FRONTIER

STUDY_BEST = ("dinov2_vitl14", "dinov2_vitg14")
FRONTIER_MODELS = (*FRONTIER, *STUDY_BEST)
# the study's resolutions: U-Net decoder at 224 px (Table 5) and 448 px (Tables 5, 6), the linear
# decoder at 448 px (Figure 4)
FRONTIER_SEG = ("seg_unet@224", "seg_unet@448", "seg_linear@448")
# the demo: tiny variants on a slim grid (NIH kNN + linear, MC linear decoder; 27 cells, ~1 minute)
DEMO_CLS, DEMO_SEG = ("knn", "linear"), ("seg_linear@112",)


def frontier_demo_grids() -> tuple[Grid, ...]:
    return (Grid(FRONTIER, ("nih",), DEMO_CLS), Grid(FRONTIER, ("mc",), DEMO_SEG))


def frontier_profile() -> Profile:
    """Every dataset with kNN, the linear probe and both decoders, and Figure 5's few-shot grids."""
    paper = _paper()
    return Profile(
        name="frontier", description="beyond the study: DINOv3, DINOv2-reg, SigLIP, RAD-DINO, BiomedCLIP, "
        "MedSigLIP, MedSAM beside DINOv2 ViT-L/14 and ViT-g/14 on every dataset, frozen protocols and few-shot",
        demo=False,
        grids=(Grid(FRONTIER_MODELS, CLS_DATASETS, ("knn", "linear")),
               Grid(FRONTIER_MODELS, SEG_DATASETS, FRONTIER_SEG),
               Grid(FRONTIER_MODELS, ("nih",), _shots("fewshot")),
               Grid(FRONTIER_MODELS, ("mc",), _shots("seg_fewshot"))),
        hparams=paper.hparams, cls_resolution=224, batch_size=128, num_workers=8)
