"""Beyond the study (issue 24): the ``frontier`` profile's grid, its plan, and the demo's new cells."""

from __future__ import annotations

from radbench_core.config.frontier_profile import FRONTIER_MODELS
from radbench_core.config.profiles import CLS_DATASETS, SEG_DATASETS, get_profile
from radbench_core.models.specs import FRONTIER, get_model
from radbench_core.plan.estimate import plan


def test_frontier_runs_every_new_model_and_the_studys_best_on_every_dataset() -> None:
    cells = get_profile("frontier").cells()
    assert set(FRONTIER) >= {"dinov2_vitg14_reg4", "dinov3_vits16", "dinov3_vitb16", "dinov3_vitl16",
                             "siglip_so400m14", "rad_dino", "biomedclip_vitb16", "medsiglip_448", "medsam_vitb16"}
    assert {c.model for c in cells} == set(FRONTIER_MODELS) == set(FRONTIER) | {"dinov2_vitl14", "dinov2_vitg14"}
    for model in FRONTIER_MODELS:
        mine = {(c.dataset, c.protocol, c.variant) for c in cells if c.model == model}
        for dataset in CLS_DATASETS:
            assert {(dataset, "knn", ""), (dataset, "linear", "")} <= mine, (model, dataset)
        for dataset in SEG_DATASETS:
            assert {(dataset, "seg_unet", "224"), (dataset, "seg_unet", "448"),
                    (dataset, "seg_linear", "448")} <= mine, (model, dataset)
        assert {v for d, p, v in mine if p == "fewshot"} == {"1", "2", "4", "8", "16"}
        assert {v for d, p, v in mine if p == "seg_fewshot"} == {"1", "2", "4", "8", "16"}   # Figure 5's x axis
    # 11 models x (4 x 2 + 5 x 3 + 5 + 5) = 363
    assert len(cells) == len(FRONTIER_MODELS) * (len(CLS_DATASETS) * 2 + len(SEG_DATASETS) * 3 + 10)


def test_frontier_plans_every_cell_with_a_positive_cost() -> None:
    profile = get_profile("frontier")
    result = plan(profile, profile.cells(), gpu="H200")
    assert len(result.estimates) == 363 and all(e.forward_gflop > 0 for e in result.estimates)
    by_id = {e.cell_id: e for e in result.estimates}
    # RAD-DINO = ViT-B/14 at 224 px, by hand: T = 16*16 + 1 = 257, D = 768, 12 blocks, MLP 4D
    t, d = 257, 768
    blocks = 12 * ((4 + 2 * 4) * t * d * d + 2 * t * t * d)
    by_hand = 2 * (256 * 3 * 14 * 14 * d + blocks) / 1e9
    assert abs(by_id["rad_dino-nih-linear"].forward_gflop - by_hand) < 1e-6 * by_hand
    # SigLIP so400m at 448 px: 27 blocks of 1152 with a 4304-wide MLP, no class token counted as T-1
    assert by_id["siglip_so400m14-mc-seg_unet@448"].forward_gflop > by_id["siglip_so400m14-mc-seg_unet@224"].forward_gflop * 4


def test_the_demo_runs_each_new_models_tiny_variant_on_nih_and_mc_only() -> None:
    new = [c for c in get_profile("demo").cells() if c.model in FRONTIER]
    assert len(new) == 27 and {c.model for c in new} == set(FRONTIER)
    assert {(c.dataset, c.protocol) for c in new} == {("nih", "knn"), ("nih", "linear"), ("mc", "seg_linear")}
    assert all(get_model(m).demo_kwargs for m in FRONTIER)
