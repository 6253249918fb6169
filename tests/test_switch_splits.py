"""Switches ``patient_split_70_10_20`` and ``amos_all_cases``: the study's split sizes in ``paper``.

Observed on the computation: the split sizes the loaders return when a profile's cell is loaded
through the runner, and the study's own make_splits expressions (mc.py, brain_tumor.py) written
out here against our implementation of them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from radbench_core.config.profiles import get_profile
from radbench_core.config.switches import STUDY, switch_values
from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.data.datasets.study_splits import brain_tumor_study_split, check_rule, mc_study_split
from radbench_core.protocols import PROTOCOLS
from radbench_core.run.runner import RunContext, cell_hparams, load_index, load_options_of


def test_mc_rule_is_the_studys_make_splits_and_gives_69_23_46():
    names = pd.DataFrame([f"MCUCXR_{i:04d}_0.png" for i in range(138)])      # the study's lines:
    test_list = [i for i in range(0, 138, math.ceil(138 / 46))]
    val_list = [i for i in range(0, 92, math.ceil(92 / 23))]
    test_set = names.iloc[test_list]
    train_val = names.drop(test_list).reset_index(drop=True)
    val_set, train_set = train_val.iloc[val_list], train_val.drop(val_list)
    ours = mc_study_split(138)
    for split, frame in (("train", train_set), ("val", val_set), ("test", test_set)):
        assert [names[0][i] for i in ours[split]] == list(frame[0]), split
    assert [len(ours[s]) for s in ("train", "val", "test")] == [69, 23, 46]


def test_brain_tumor_rule_is_the_studys_make_splits_on_233_patients():
    n = 233                                                                     # the study's lines:
    test_list = np.arange(0, n, n / 70).round().astype("int")
    val_list = np.arange(0, n - 70, (n - 70) / 50).round().astype("int")
    patients = list(range(n))
    test = [patients[i] for i in test_list]
    rest = [p for p in patients if p not in test]
    val = [rest[i] for i in val_list]
    ours = brain_tumor_study_split(n)
    assert ours["test"] == sorted(test) and ours["val"] == sorted(val)
    assert sorted(ours["train"] + ours["val"] + ours["test"]) == patients
    assert [len(ours[s]) for s in ("train", "val", "test")] == [113, 50, 70]


def _sizes(tmp_path, switches: dict, dataset: str, protocol: str, variant: str = "") -> dict[str, int]:
    profile = get_profile("demo").extend("t", switches=switches)
    ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
    cell = Cell("unet" if protocol == "scratch" else "dinov2_vits14", dataset, protocol, variant)
    options = load_options_of(dataset, ctx, cell_hparams(cell, PROTOCOLS[protocol], profile))
    index, _ = load_index(dataset, ctx, options)
    return {s: len(index.splits[s]) for s in ("train", "val", "test")}


def test_the_loaders_give_the_studys_sizes_under_the_study_switch_and_ours_otherwise(tmp_path):
    study, sound = switch_values(STUDY), {}
    mc_study, mc_ours = (_sizes(tmp_path, sw, "mc", "scratch", "112") for sw in (study, sound))
    n = sum(mc_ours.values())
    expected = {k: len(v) for k, v in mc_study_split(n).items()}
    assert mc_study == expected and mc_study != mc_ours
    assert mc_ours["test"] == round(0.2 * n) and mc_study["test"] == math.ceil(n / 3)
    bt_study, bt_ours = (_sizes(tmp_path, sw, "brain_tumor", "linear") for sw in (study, sound))
    assert sum(bt_study.values()) == sum(bt_ours.values()) and bt_study != bt_ours


def test_amos_runs_150_cases_in_paper_and_every_case_in_sound(tmp_path):
    for name, subset in (("paper", 150), ("sound", None)):
        profile = get_profile(name)
        ctx = RunContext(profile=profile, cache_dir=tmp_path, run_dir=tmp_path, progress=False)
        cell = Cell("dinov2_vitl14", "amos", "seg_unet", "224")
        assert load_options_of("amos", ctx, cell_hparams(cell, PROTOCOLS["seg_unet"], profile)).subset == subset
        # a user's own subset wins over the switch
        ctx.load_options["amos"] = LoadOptions(subset=40)
        assert load_options_of("amos", ctx, cell_hparams(cell, PROTOCOLS["seg_unet"], profile)).subset == 40


def test_an_unknown_split_rule_is_a_config_error():
    with pytest.raises(ConfigError, match="split_rule"):
        check_rule("random")


def _class_counts(tmp_path, switches: dict, dataset: str) -> tuple[list[int], dict[str, dict[int, int]]]:
    """(labels of the patients in the loader's order, split -> class -> patients) of a demo cell."""
    profile = get_profile("demo").extend("t", switches=switches)
    ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
    cell = Cell("dinov2_vits14", dataset, "linear")
    index, _ = load_index(dataset, ctx, load_options_of(dataset, ctx, cell_hparams(cell, PROTOCOLS["linear"],
                                                                                       profile)))
    label = {it.patient: int(it.label) for it in index.items}
    counts = {}
    for s in ("train", "val", "test"):
        patients = {index.items[i].patient for i in index.splits[s]}
        counts[s] = {c: sum(label[p] == c for p in patients) for c in sorted(set(label.values()))}
    return [label[p] for p in dict.fromkeys(it.patient for it in index.items)], counts


def test_sarscov2_study_split_is_unstratified_systematic_and_ours_stratified(tmp_path):
    """The former fixed deviation stratified_systematic_split is this switch's data side: under the
    study's rule the SARS-CoV-2 split is sars_cov_2_ct.py's plain systematic draw over the patients
    (Covid first, then the others), under ours every class is dealt 70 / 10 / 20 on its own."""
    labels, study = _class_counts(tmp_path, switch_values(STUDY), "sarscov2")
    n = len(labels)
    assert n == 120 and labels == [1] * 60 + [0] * 60        # the phantom: 60 Covid, then 60 others
    # the study's lines on 120 patients (shares of 70 / 50 of 210): test every 3rd, val of the rest
    test = np.arange(0, n, n / round(n * 70 / 210)).round().astype("int")
    rest = [p for p in range(n) if p not in set(test)]
    val = [rest[i] for i in np.arange(0, len(rest), len(rest) / round(n * 50 / 210)).round().astype("int")]
    train = [p for p in rest if p not in set(val)]
    by_hand = {s: {c: sum(labels[p] == c for p in pos) for c in (0, 1)}
               for s, pos in (("train", train), ("val", val), ("test", test))}
    assert study == by_hand == {"train": {0: 26, 1: 25}, "val": {0: 14, 1: 15}, "test": {0: 20, 1: 20}}
    _, ours = _class_counts(tmp_path, {}, "sarscov2")
    assert ours == {"train": {0: 42, 1: 42}, "val": {0: 6, 1: 6}, "test": {0: 12, 1: 12}}   # 70/10/20 of 60


def test_brain_tumor_study_split_ignores_the_class_and_ours_keeps_each_class_at_70_10_20(tmp_path):
    labels, study = _class_counts(tmp_path, switch_values(STUDY), "brain_tumor")
    n = len(labels)
    test = np.arange(0, n, n / round(n * 70 / 233)).round().astype("int")          # brain_tumor.py
    rest = [p for p in range(n) if p not in set(test)]
    val = [rest[i] for i in np.arange(0, len(rest), len(rest) / round(n * 50 / 233)).round().astype("int")]
    train = [p for p in rest if p not in set(val)]
    by_hand = {s: {c: sum(labels[p] == c for p in pos) for c in (0, 1, 2)}
               for s, pos in (("train", train), ("val", val), ("test", test))}
    assert study == by_hand
    _, ours = _class_counts(tmp_path, {}, "brain_tumor")
    per_class = {c: labels.count(c) for c in (0, 1, 2)}
    for c, total in per_class.items():           # each class within one patient of its 70 / 10 / 20 share
        for s, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
            assert abs(ours[s][c] - share * total) <= 1, (s, c)
    assert ours != study
