"""The paper profile is the study's experiment list with the study's settings; deviations are named.

The expected cell list below is written out from the study's table and figure layouts (the paper
text and the study repo's Figure 5 panels, as read in ../shared/study/audit.md (a)), independently of
``profiles.paper_grids``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from radbench_core.config import fidelity, switches
from radbench_core.core.cells import Cell
from radbench_core.config.fidelity import Setting, deviations_in_effect
from radbench_core.config.profiles import get_profile
from radbench_core.protocols import PROTOCOLS

ROOT = Path(__file__).resolve().parents[1]
CLS = ("nih", "chexpert", "sarscov2", "brain_tumor")
SEG = ("mc", "amos", "msd_spleen", "msd_hippocampus", "msd_heart")
SUP = ("densenet201", "resnet152", "vgg19", "vit_l16_in21k")
WEAK_SELF = ("clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16")
DINO = ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")


def study_cells() -> set[str]:
    ids: set[str] = set()
    add = lambda models, datasets, protocols: ids.update(  # noqa: E731
        f"{m}-{d}-{p}" for m in models for d in datasets for p in protocols)
    add(DINO + SUP, CLS, ["linear"])                                                   # Table 3
    add(("dinov2_vitl14", "dinov2_vitg14") + WEAK_SELF, CLS, ["linear"])               # Figure 3 / 1
    add(SUP + WEAK_SELF + ("dinov2_vitl14", "dinov2_vitg14"), ("nih", "chexpert"),
        ["knn", "linear", "finetune"])                                                 # Table 4
    add(WEAK_SELF + ("dinov2_vitl14", "dinov2_vitg14"), SEG, ["seg_unet@224"])         # Table 5 / Fig 1
    add(("dinov2_vitl14", "dinov2_vitg14"), SEG, ["seg_unet@448"])                     # Tables 5, 6
    add(("unet", "transunet"), SEG, ["scratch@448"])                                   # Table 6
    add(("vit_l16_in21k",), SEG, ["seg_unet@224"])                                     # Table 7
    add(("dinov2_vitl14",), SEG, ["seg_linear@448"])                                   # Figure 4
    add(("sam_vitl16", "dinov2_vitl14"), ("nih", "chexpert"), ["linear_subset@1024"])  # Table 8
    add(("dinov2_vitg14",), ("nih", "chexpert"), ["finetune", "linear", "lora", "bitfit"])  # Table 9
    add(("dinov2_vitl14",) + WEAK_SELF + SUP, ("nih",),
        [f"fewshot@{n}" for n in (1, 2, 4, 8, 16)])                                    # Figure 5
    # Figure 5 MC (the study repo's few-shot_mc.png): x = 1, 2, 4, 8, 16, All; top row DINOv2-L vs
    # CLIP, OpenCLIP, MAE, MSN; bottom row vs U-Net and TransUNet from scratch (448 px); "All" is
    # the Table 5 / 6 cell. The bottom row's DINOv2-L curve is at 448 px (its All point is Table 6's
    # 448 px value, 0.974), the top row's at 224 px (paper 4.3: only worse than MAE with all images).
    add(("dinov2_vitl14",) + WEAK_SELF, ("mc",), [f"seg_fewshot@{n}" for n in (1, 2, 4, 8, 16)])
    add(("dinov2_vitl14",), ("mc",), [f"seg_fewshot@{n}_448px" for n in (1, 2, 4, 8, 16)])
    add(("unet", "transunet"), ("mc",), [f"scratch_fewshot@{n}" for n in (1, 2, 4, 8, 16)])
    return ids


def test_paper_profile_is_exactly_the_studys_experiments():
    cells = [c.id for c in get_profile("paper").cells()]
    assert len(cells) == len(set(cells))
    assert set(cells) == study_cells()
    assert len(cells) == 241         # the study's 241
    assert get_profile("paper").hparams_for("scratch_fewshot")["resolution"] == 448


def test_docs_fidelity_md_is_the_registry_rendered():
    doc = (ROOT / "docs" / "fidelity.md").read_text(encoding="utf-8")
    assert doc == fidelity.to_markdown(), "regenerate: python -m radbench_core.config.fidelity > docs/fidelity.md"


def test_every_setting_has_a_source_and_every_deviation_a_reason():
    assert fidelity.SETTINGS, "the registry lists the study's settings"
    ids = [s.deviation for s in fidelity.SETTINGS if s.deviation]
    assert len(ids) == len(set(ids)), "deviation ids are unique"
    for s in fidelity.SETTINGS:
        assert s.source.startswith(("paper", "repo", "study", "ours")), s
        assert s.study and s.ours and s.name and s.area, s
        if s.deviation:
            assert s.why, f"deviation {s.deviation} says why"
        if s.key:
            assert s.protocols, f"{s.name}: a pinned setting names the protocols it pins"
            assert all(p in PROTOCOLS for p in s.protocols), s


@pytest.mark.parametrize("setting", [s for s in fidelity.SETTINGS if s.key],
                         ids=lambda s: f"{'/'.join(s.protocols)}:{s.key}")
def test_paper_profile_pins_the_setting(setting: Setting):
    """A drift of any pinned setting (optimizer, schedule, epochs, batch, decoder, metric) fails here."""
    paper = get_profile("paper")
    for protocol in setting.protocols:
        hparams = paper.hparams_for(protocol)
        assert setting.key in hparams, f"paper hparams of {protocol!r} lack {setting.key!r}"
        assert fidelity._same(hparams[setting.key], setting.value), (
            f"{protocol}.{setting.key} = {hparams[setting.key]!r}, the fidelity table says "
            f"{setting.value!r} ({setting.name}: study {setting.study}, {setting.source})")


def test_deviations_in_effect_follow_the_cell_and_its_hparams(monkeypatch):
    monkeypatch.setattr(switches, "SWITCHES", ())
    settings = (
        Setting("knn", "k chosen on", "test", "repo x.py", "val", protocols=("knn",), key="k_sel",
                value="val", deviation="k_on_val", why="test-set selection is optimistic"),
        Setting("dataset:chexpert", "test split", "official test", "repo y.py", "from train",
                datasets=("chexpert",), deviation="cx_fallback", why="no test labels"),
        Setting("linear", "batch", "128", "paper B.2", "128", protocols=("linear",), key="batch_size",
                value=128),
    )
    monkeypatch.setattr(fidelity, "SETTINGS", settings)
    assert deviations_in_effect("m", "nih", "knn", {"k_sel": "val"}) == ["k_on_val"]
    assert deviations_in_effect("m", "nih", "knn", {"k_sel": "test"}) == []     # the study's way
    assert deviations_in_effect("m", "chexpert", "knn", {"k_sel": "val"}) == ["cx_fallback", "k_on_val"]
    assert deviations_in_effect("m", "chexpert", "linear", {"batch_size": 128}) == ["cx_fallback"]
    assert deviations_in_effect("m", "nih", "linear", {"batch_size": 64}) == []
    assert set(fidelity.deviations()) == {"k_on_val", "cx_fallback"}


def test_every_record_carries_the_deviations_in_effect(tmp_path):
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.config.profiles import Grid, Profile, _hparams
    from radbench_core.run.runner import BackbonePool, RunContext, cell_hparams, run_cell
    profile = Profile(name="tiny", description="test", demo=True,
                      grids=(Grid(("dinov2_vits14",), ("nih",), ("knn", "linear")),),
                      hparams=_hparams(paper=False), cls_resolution=56, phantom_size="tiny",
                      batch_size=16, num_workers=0)
    ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
    pool, cache = BackbonePool(), FeatureCache(tmp_path / "cache" / "features")
    for protocol in ("knn", "linear"):
        cell = Cell("dinov2_vits14", "nih", protocol)
        rec = run_cell(cell, ctx, pool, cache)
        spec = PROTOCOLS[protocol]
        expected = deviations_in_effect(cell.model, cell.dataset, protocol,
                                        cell_hparams(cell, spec, profile))
        assert rec.deviations == expected
        assert rec.to_dict()["deviations"] == expected
        assert rec.switches == switches.switches_in_effect(cell.model, cell.dataset, protocol,
                                                           cell_hparams(cell, spec, profile))
    assert rec.switches["multilabel_loss_mean"] == "mean" and "multilabel_loss_mean" in rec.deviations


def test_a_data_dependent_deviation_needs_the_loaders_report(monkeypatch):
    monkeypatch.setattr(switches, "SWITCHES", ())
    settings = (Setting("dataset:chexpert", "test split", "official test", "repo y.py", "from train",
                        datasets=("chexpert",), deviation="cx_fallback", why="no test labels",
                        reported_by_data=True),)
    monkeypatch.setattr(fidelity, "SETTINGS", settings)
    assert deviations_in_effect("m", "chexpert", "linear", {}) == []
    assert deviations_in_effect("m", "chexpert", "linear", {}, reported=("cx_fallback",)) == ["cx_fallback"]


def test_table8_resolution_is_whole_patches_and_declared():
    from radbench_core.run.runner import fit_to_patches, resolution_of
    paper = get_profile("paper")
    spec = PROTOCOLS["linear_subset"]
    assert resolution_of(Cell("dinov2_vitl14", "nih", "linear_subset", "1024"), spec, paper) == 1022
    assert resolution_of(Cell("sam_vitl16", "nih", "linear_subset", "1024"), spec, paper) == 1024
    assert fit_to_patches("dinov2_vitl14", 448) == 448 and fit_to_patches("densenet201", 1000) == 1000
    hp = paper.hparams_for("linear_subset")
    assert "table8_patch14_at_1022px" in deviations_in_effect("dinov2_vitl14", "nih", "linear_subset", hp)
    assert "table8_patch14_at_1022px" not in deviations_in_effect("sam_vitl16", "nih", "linear_subset", hp)


def test_paper_and_sound_run_the_same_cells_with_every_switch_on_its_side():
    paper, sound = get_profile("paper"), get_profile("sound")
    assert [c.id for c in paper.cells()] == [c.id for c in sound.cells()]
    for sw in switches.SWITCHES:
        for protocol in sw.protocols or tuple(paper.hparams):
            assert paper.hparams_for(protocol)[sw.key] == sw.study, (sw.id, protocol)
            assert sound.hparams_for(protocol).get(sw.key, sw.sound) == sw.sound, (sw.id, protocol)
        model = sw.models[0] if sw.models else "dinov2_vitl14"
        dataset = sw.datasets[0] if sw.datasets else "nih"
        protocol = sw.protocols[0] if sw.protocols else "linear"
        assert sw.id not in deviations_in_effect(model, dataset, protocol, paper.hparams_for(protocol))
        assert sw.id in deviations_in_effect(model, dataset, protocol, sound.hparams_for(protocol))


def test_switches_are_unique_sourced_and_two_sided():
    ids = [s.id for s in switches.SWITCHES]
    assert len(ids) == len(set(ids)) and not set(ids) & {s.deviation for s in fidelity.SETTINGS}
    for s in switches.SWITCHES:
        assert s.source.startswith(("paper", "repo")) and s.why and s.key, s
        assert s.study != s.sound, f"{s.id}: a switch has two different values"
        assert all(p in PROTOCOLS for p in s.protocols), s


def test_demo_hparams_hold_no_switch_key_it_did_not_hold_before():
    """Demo runs every switch at the sound value (the code's default), so its hashes stay put."""
    demo = get_profile("demo")
    for protocol in demo.hparams:
        assert demo.hparams_for(protocol) == dict(demo.hparams[protocol])


def test_a_deviation_is_recorded_only_where_it_is_in_effect(tmp_path):
    """Table 8's 1022 px deviation only at 1022 px; our (stratified) split rule only while it is ours."""
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.config.profiles import Grid, Profile, _hparams
    from radbench_core.run.runner import BackbonePool, RunContext, run_cell
    hp = get_profile("paper").hparams_for("linear_subset")
    at = lambda res: deviations_in_effect("dinov2_vitl14", "nih", "linear_subset", hp, resolution=res)  # noqa: E731
    assert "table8_patch14_at_1022px" in at(1022) and "table8_patch14_at_1022px" not in at(112)
    for dataset in ("brain_tumor", "sarscov2"):
        sound = deviations_in_effect("m", dataset, "linear", get_profile("sound").hparams_for("linear"))
        paper = deviations_in_effect("m", dataset, "linear", get_profile("paper").hparams_for("linear"))
        assert "patient_split_70_10_20" in sound and "patient_split_70_10_20" not in paper
    profile = Profile(name="tiny", description="test", demo=True,
                      grids=(Grid(("dinov2_vits14",), ("nih",), ("linear_subset@56",)),),
                      hparams=_hparams(paper=False), cls_resolution=56, phantom_size="tiny",
                      batch_size=16, num_workers=0)
    ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
    rec = run_cell(Cell("dinov2_vits14", "nih", "linear_subset", "56"), ctx, BackbonePool(),
                   FeatureCache(tmp_path / "cache" / "features"))
    assert rec.hparams["resolution"] == 56 and "table8_patch14_at_1022px" not in rec.deviations
    assert "table8_subset_size" in rec.deviations
