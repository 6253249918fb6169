"""Counted costs of the networks the planner cannot count analytically, kept from a real count.

Why stored: counting builds a decoder or scratch model on the meta device and runs
``torch.utils.flop_counter`` over it; for the paper profile's shapes that was most of
``radbench plan``'s 14-18 s (issue 21). The numbers only change when ``protocols/decoders.py`` or
``models/scratch_models.py`` change, and ``tests/test_planner.py`` recounts every entry, so a stale
entry fails there. A shape not listed is counted when first asked for (``plan/flops.py``).
"""

from __future__ import annotations

# (decoder kind, width, patch, resolution, classes) -> (FLOPs, activation elements) on one image
DECODERS: dict[tuple[str, int, int, int, int], tuple[float, float]] = {
    ("linear", 1024, 14, 448, 2): (4194304.0, 2048.0),
    ("unet", 1024, 14, 224, 2): (36492541952.0, 15894016.0),
    ("unet", 1024, 14, 448, 2): (145970167808.0, 63576064.0),
    ("unet", 1024, 16, 224, 2): (27939602432.0, 12168856.0),
    ("unet", 1280, 14, 224, 2): (57000853504.0, 19736064.0),
    ("unet", 1536, 14, 224, 2): (82064179200.0, 23578112.0),
    ("unet", 1536, 14, 448, 2): (328256716800.0, 94312448.0),
}

# (scratch model, resolution, classes) -> (FLOPs, activation elements) on one image
SCRATCH: dict[tuple[str, int, int], tuple[float, float]] = {
    ("transunet", 224, 2): (146415976448.0, 215004160.0),
    ("transunet", 448, 2): (630981263360.0, 860016640.0),
    ("unet", 224, 2): (73762734080.0, 79579136.0),
    ("unet", 448, 2): (295050936320.0, 318316544.0),
}

# scratch model -> parameters of the full-size model (models.scratch_models.parameter_counts)
SCRATCH_PARAMS: dict[str, int] = {"unet": 31_037_633, "transunet": 324_625_681}
