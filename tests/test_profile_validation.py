"""Profiles are checked at start-up: unknown ids and keys, missing entries, bad load options."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import scratch_project
from radbench_core.core.errors import ConfigError
from radbench_core.config.checks import known_hparam_keys, validate_profile
from radbench_core.config.profiles import Grid, Profile, get_profile
from radbench_core.config import hparams as cls_h
from radbench_core.config import seg_hparams as seg_h


def demo_with(grids=(Grid(("dinov2_vits14",), ("nih",), ("knn",)),), **changes) -> Profile:
    return get_profile("demo").extend("t", grids=grids, replace_grids=True, **changes)


@pytest.mark.parametrize("name", ["demo", "smoke", "paper", "sound", "full", "frontier"])
def test_built_in_profiles_are_valid(name: str) -> None:
    validate_profile(get_profile(name))


def test_paper_profile_keeps_its_241_cells() -> None:
    """The study's 241, Figure 5's five DINOv2 448 px MC points (seg_fewshot@N_448px) included."""
    assert len(get_profile("paper").cells()) == 241 == len(get_profile("sound").cells())


def test_known_keys_are_the_built_in_union_plus_runner_keys() -> None:
    assert known_hparam_keys("knn") >= set(cls_h.PAPER["knn"]) | set(cls_h.DEMO["knn"]) | {"demo", "max_items"}
    assert known_hparam_keys("seg_unet") >= set(seg_h.PAPER["seg_unet"]) | set(seg_h.DEMO["seg_unet"])
    assert known_hparam_keys("linear_subset") >= set(cls_h.PAPER["linear"])     # same function as linear


@pytest.mark.parametrize("changes, message", [
    (dict(hparams={"knn": {"kk": 3}}), r"hparams\['knn'\].*unknown key\(s\) \['kk'\]; valid keys: .*\bks\b"),
    (dict(hparams={"knnn": {}}), r"hparams\['knnn'\].*unknown protocol; valid ids: knn, linear"),
    (dict(load_options={"chexpert": {"uncertain": "ones"}}), r"unknown option\(s\) \['uncertain'\]; valid: split_rule, subset, subset_splits, uncertainty"),
    (dict(load_options={"chexpret": {"uncertainty": "ones"}}), r"load_options\['chexpret'\].*unknown dataset; valid ids: nih"),
    (dict(split_files={"mcc": "x.json"}), r"split_files\['mcc'\].*unknown dataset"),
])
def test_bad_profiles_name_the_key_and_the_valid_ones(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_profile(demo_with(**changes))


def test_missing_protocol_entry_and_unknown_ids() -> None:
    bare = Profile(name="bare", description="", demo=True, grids=(Grid(("dinov2_vits14",), ("nih",), ("knn",)),))
    with pytest.raises(ConfigError, match=r"cells use protocol 'knn' but hparams has no 'knn' entry.*extend"):
        validate_profile(bare)
    for grid, what in ((Grid(("dinov2_vitl15",), ("nih",), ("knn",)), "model"),
                       (Grid(("dinov2_vits14",), ("nihh",), ("knn",)), "dataset"),
                       (Grid(("dinov2_vits14",), ("nih",), ("knnn@3",)), "protocol")):
        with pytest.raises(ConfigError, match=f"unknown {what} id; valid ids"):
            validate_profile(demo_with(grids=(grid,)))


def test_extend_merges_hparams_options_and_grids() -> None:
    base = get_profile("demo")
    child = base.extend("child", grids=(Grid(("resnet152",), ("nih",), ("knn",)),),
                        hparams={"knn": {"ks": [3]}}, load_options={"chexpert": {"uncertainty": "ones"}},
                        split_files={"mc": "mc.json"}, batch_size=8)
    assert child.grids[:-1] == base.grids and child.batch_size == 8 and child.demo
    assert child.hparams["knn"]["ks"] == [3] and child.hparams["knn"].keys() == base.hparams["knn"].keys()
    assert base.hparams["knn"]["ks"] != [3]                         # the parent is untouched
    grandchild = child.extend("g", load_options={"chexpert": {"subset": 5}})
    assert grandchild.load_options == {"chexpert": {"uncertainty": "ones", "subset": 5}}
    assert grandchild.split_files == {"mc": "mc.json"}


def test_load_options_come_from_the_profile_then_the_command_line(tmp_path: Path) -> None:
    from fixtures.cells import load_options_for
    profile = demo_with(load_options={"chexpert": {"uncertainty": "ones"}, "amos": {"subset": 150}},
                        split_files={"mc": "mine.json"})
    settings = SimpleNamespace(cache_dir=tmp_path, splits={"nih": tmp_path / "nih.json"},
                               load={"chexpert": {"uncertainty": "ignore"}})
    options = load_options_for(settings, profile)
    assert options["chexpert"].uncertainty == "ignore" and options["amos"].subset == 150
    assert options["mc"].split_file == "mine.json" and options["nih"].split_file == str(tmp_path / "nih.json")
    assert options["msd_heart"].uncertainty == "zeros" and options["msd_heart"].splits_dir == str(tmp_path / "splits")


@pytest.mark.parametrize("value, message", [
    ("chexpert.uncertainty=maybe", "*--radbench-load: 'chexpert.uncertainty=maybe': bad value. Fix: uncertainty takes zeros | ones | ignore*"),
    ("amos.subset=0", "*bad value. Fix: subset takes an integer >= 1*"),
    ("chexpert=ones", "*is not DATASET.OPTION=VALUE*"),
    ("cheXpert.uncertainty=ones", "*unknown dataset 'cheXpert'. Fix: use one of nih, chexpert*"),
])
def test_bad_load_option_is_a_usage_error(pytester, shared_cache, value: str, message: str) -> None:
    project = scratch_project(pytester, shared_cache)
    result = project.runpytest_subprocess("benchmarks", *project.base_args, "--co", f"--radbench-load={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_unknown_key_in_a_user_profile_fails_before_any_cell(pytester, shared_cache) -> None:
    project = scratch_project(pytester, shared_cache)
    pytester.makepyfile(typo_profile='''
from radbench_core.config.profiles import Grid, get_profile
PROFILE = get_profile("demo").extend("typo", grids=(Grid(("dinov2_vits14",), ("nih",), ("linear",)),),
                                     replace_grids=True, hparams={"linear": {"lr": [0.1]}})
''')
    result = project.runpytest_subprocess("benchmarks", *project.base_args, "--co", "--radbench-profile=typo_profile.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "profile 'typo' hparams['linear']: unknown key(s) ['lr']; valid keys: " in err and " lrs," in err


def test_demo_refuses_a_data_dir(pytester, shared_cache, tmp_path: Path) -> None:
    project = scratch_project(pytester, shared_cache)
    result = project.runpytest_subprocess("benchmarks", *project.base_args, "--co", "--radbench-profile=demo",
                                          f"--radbench-data-dir={tmp_path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--radbench-data-dir: profile 'demo' runs synthetic phantoms and would ignore*"
                                 "--radbench-profile smoke*"])


def test_a_user_protocol_is_key_checked_only_when_it_declares_its_keys(monkeypatch) -> None:
    from radbench_core.config.checks import declares_its_keys
    from radbench_core.protocols import PROTOCOLS, ProtocolSpec
    silent = ProtocolSpec("mine", "classification", "frozen", "my_module:run_mine")
    declared = ProtocolSpec("mine2", "classification", "frozen", "my_module:run_mine2", hparam_keys=("tau",))
    monkeypatch.setitem(PROTOCOLS, "mine", silent)
    monkeypatch.setitem(PROTOCOLS, "mine2", declared)
    assert not declares_its_keys("mine") and declares_its_keys("mine2") and declares_its_keys("knn")
    grids = (Grid(("dinov2_vits14",), ("nih",), ("mine", "mine2")),)
    validate_profile(demo_with(grids=grids, hparams={"mine": {"anything": 1}, "mine2": {"tau": 0.1}}))
    with pytest.raises(ConfigError, match=r"hparams\['mine2'\].*unknown key\(s\) \['tua'\]"):
        validate_profile(demo_with(grids=grids, hparams={"mine": {}, "mine2": {"tua": 0.1}}))
