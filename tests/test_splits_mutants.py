"""Hand-computed cases that kill surviving mutants of data/datasets/splits.py (issue 21, `make mutants`).

The dealing rule (patient_split's docstring): the j-th patient in (stratum, natural) order goes to the
group whose count lags (j + 1) * fraction the most, ties to the earlier group; a group left empty
then takes the last-dealt patient of the largest group (ties: the earlier group). Every expected
split below is worked out by hand from that rule, step by step in the comments.
"""

from __future__ import annotations

import pytest

from radbench_core.core.errors import ConfigError
from radbench_core.data.datasets.base import Item
from radbench_core.data.datasets.splits import (cap_splits, missing_classes, natural_key, patient_split,
                                                restrict_items, subset_splits)


def test_natural_key_exact_parts():
    assert natural_key("case_10b2") == ("case_", 10, "b", 2, "", "case_10b2")
    assert natural_key("7") == ("", 7, "", "7")
    assert natural_key("abc") == ("abc", "abc")
    # the text breaks ties between ids with equal numbers: "p01" and "p1" both read 1
    assert sorted(["p1", "p01", "p2"], key=natural_key) == ["p01", "p1", "p2"]


def test_three_and_four_patients_by_hand():
    # 3 patients, 70/10/20: deficits j=0 (.7, .1, .2) -> train; j=1 (.4, .2, .4) -> train (tie, earlier);
    # j=2 (.1, .3, .6) -> test. val is empty: the largest group (train) gives its last-dealt patient p1.
    assert patient_split(["p0", "p1", "p2"]) == {"train": [0], "val": [1], "test": [2]}
    # a 4th patient: j=3 (.8, .4, -.2) -> train; val takes p3, train's last-dealt
    assert patient_split(["p3", "p0", "p2", "p1"]) == {"train": [1, 3], "val": [0], "test": [2]}
    # fewer patients than groups: nothing is moved (two groups stay empty)
    assert patient_split(["p0", "p1"]) == {"train": [0, 1], "val": [], "test": []}
    assert patient_split(["p0"]) == {"train": [0], "val": [], "test": []}


def test_an_empty_group_takes_from_the_earlier_of_two_largest():
    # 50/50/0 over 4 patients: j=0 (.5, .5, 0) -> train (tie); j=1 (0, 1, 0) -> val; j=2 (.5, .5, 0)
    # -> train; j=3 (0, 1, 0) -> val. test is empty; train and val tie at 2: train (earlier) gives p2.
    out = patient_split(["p0", "p1", "p2", "p3"], (0.5, 0.5, 0.0))
    assert out == {"train": [0], "val": [1, 3], "test": [2]}


def test_a_zero_fraction_is_accepted_and_groups_are_named_as_given():
    out = patient_split([f"c{i}" for i in range(10)], (0.8, 0.0, 0.2), ("a", "b", "c"))
    # 80/0/20 repeats with period 5: j=0 (.8, 0, .2) -> a; j=1 (.6, 0, .4) -> a; j=2 (.4, 0, .6) -> c;
    # j=3 (1.2, 0, -.2) -> a; j=4 (1, 0, 0) -> a. b is empty and takes a's last-dealt patient, c9
    assert out == {"a": [0, 1, 3, 4, 5, 6, 8], "b": [9], "c": [2, 7]}


def test_strata_order_by_class_then_id_by_hand():
    # class 0 = p5..p9, class 1 = p0..p4: the dealing runs over p5..p9 then p0..p4, in the 10-slot
    # pattern train train test train train val train train test train
    patients = [f"p{i}" for i in range(10)]
    classes = [1] * 5 + [0] * 5
    out = patient_split(patients, strata=classes)
    group = {patients[i]: g for g, idx in out.items() for i in idx}
    dealt = ["p5", "p6", "p7", "p8", "p9", "p0", "p1", "p2", "p3", "p4"]
    pattern = ["train", "train", "test", "train", "train", "val", "train", "train", "test", "train"]
    assert [group[p] for p in dealt] == pattern
    # the classes are ranked in natural order of their text: "2" before "10"
    labels = ["10"] * 5 + ["2"] * 5
    assert patient_split(patients, strata=labels) == out


def test_a_patients_stratum_is_that_of_its_first_item():
    # a's items are of class 1 then 0: a is class 1, dealt after b and c (class 0): b train, c train,
    # a test; val is empty and takes c (train's last-dealt). Were a class 0, it would be dealt first.
    out = patient_split(["b", "c", "a", "a"], strata=[0, 0, 1, 0])
    assert out == {"train": [0], "val": [1], "test": [2, 3]}


def test_bad_arguments_word_for_word():
    where = "patient_split(fractions, groups)"
    cases = [
        (dict(fractions=(0.5, 0.5)), f"{where}: 2 fractions for 3 groups ('train', 'val', 'test'). "
         "Fix: give one fraction per group, e.g. (0.7, 0.1, 0.2) for train/val/test."),
        (dict(fractions=(), groups=()), f"{where}: 0 fractions for 0 groups (). "
         "Fix: give one fraction per group, e.g. (0.7, 0.1, 0.2) for train/val/test."),
        (dict(fractions=(0.5, 0.5), groups=("a", "a")), f"{where}: group names repeat in ('a', 'a'). "
         "Fix: give each group a distinct name."),
        (dict(fractions=(1.2, -0.2, 0.0)), f"{where}: fractions (1.2, -0.2, 0.0) must be >= 0 and sum to 1. "
         "Fix: use fractions such as (0.7, 0.1, 0.2)."),
        (dict(fractions=(0.7, 0.1, 0.1)), f"{where}: fractions (0.7, 0.1, 0.1) must be >= 0 and sum to 1. "
         "Fix: use fractions such as (0.7, 0.1, 0.2)."),
        (dict(strata=[0]), "patient_split(strata): 1 strata for 2 items. Fix: give one stratum (class) per item."),
    ]
    for kwargs, text in cases:
        with pytest.raises(ConfigError) as info:
            patient_split(["a", "b"], **kwargs)
        assert str(info.value) == text
    # a sum off by float rounding only is accepted
    assert patient_split(["a", "b", "c"], (0.1 + 0.2, 0.3, 0.4))


def test_cap_and_subset_by_hand():
    splits = {"train": list(range(10)), "val": [10], "test": [11, 12, 13, 14]}
    # spread of 3 out of 10: int(0.5 * 10/3), int(1.5 * 10/3), int(2.5 * 10/3) = 1, 5, 8; of 3 out
    # of 4: int(0.5 * 4/3), int(1.5 * 4/3), int(2.5 * 4/3) = 0, 2, 3
    assert cap_splits(splits, 3) == {"train": [1, 5, 8], "val": [10], "test": [11, 13, 14]}
    assert cap_splits(splits, 4) == {"train": [1, 3, 6, 8], "val": [10], "test": [11, 12, 13, 14]}
    assert cap_splits(splits, None) is splits
    assert cap_splits(splits, 1) == {"train": [5], "val": [10], "test": [13]}
    # 4 of 15: quotas 2.67 / 0.27 / 1.07 -> floors 2 / 0 / 1, the 1 left to the largest remainder
    # (train) -> 3 / 0 / 1; val, emptied, takes one from the largest (train) -> 2 / 1 / 1
    assert subset_splits(splits, 4) == {"train": [2, 7], "val": [10], "test": [13]}
    # 2 of 15: quotas 1.33 / 0.13 / 0.53 -> 1 / 0 / 1; the donor (train, first of the tie) would
    # fall to 0, so val stays empty
    assert subset_splits(splits, 2) == {"train": [5], "val": [], "test": [13]}
    # 14 of 15: quotas 9.33 / 0.93 / 3.73 -> 9 / 0 / 3, the 2 left to val (.93) and test (.73);
    # spread of 9 out of 10: int((i + 0.5) * 10/9) = 0, 1, 2, 3, 5, 6, 7, 8, 9
    assert subset_splits(splits, 14) == {"train": [0, 1, 2, 3, 5, 6, 7, 8, 9], "val": [10],
                                         "test": [11, 12, 13, 14]}
    assert subset_splits(splits, 15) is splits and subset_splits(splits, None) is splits
    # 2 of 10 (8 / 1 / 1): quotas 1.6 / .2 / .2 -> 2 / 0 / 0; val takes one of train's 2; test would
    # empty train (first of the tie at 1), so it stays empty
    small = {"train": list(range(8)), "val": [8], "test": [9]}
    assert subset_splits(small, 2) == {"train": [4], "val": [8], "test": []}
    with pytest.raises(ConfigError) as info:
        cap_splits(splits, 0)
    assert str(info.value) == ("LoadOptions.max_items: got 0, expected a positive count. "
                               "Fix: pass max_items >= 1, or None for every item.")
    with pytest.raises(ConfigError) as info:
        subset_splits(splits, 0)
    assert str(info.value) == ("LoadOptions.subset: got 0, expected a positive number of cases. "
                               "Fix: pass subset >= 1, or None for every case.")


def test_restrict_items_renumbers_by_hand():
    items = [Item(key=f"k{i}", patient=f"p{i}", images=()) for i in range(6)]
    kept, renumbered = restrict_items(items, {"train": [4, 1], "val": [], "test": [5]})
    assert [it.key for it in kept] == ["k1", "k4", "k5"]
    assert renumbered == {"train": [1, 0], "val": [], "test": [2]}


def test_missing_classes_single_and_multilabel_by_hand():
    single = [Item(key=f"i{k}", patient=f"p{k}", images=(), label=lab)
              for k, lab in enumerate([0, 2, 2, None, 1])]
    assert missing_classes(single, {"train": [0, 1, 4], "val": [2, 3], "test": [3]}) == \
        {"val": [0, 1], "test": [0, 1, 2]}
    multi = [Item(key=f"m{k}", patient=f"p{k}", images=(), label=lab)
             for k, lab in enumerate([(1, 0, 0), (0, 0, 1), (0, 0, 0)])]
    assert missing_classes(multi, {"train": [0, 1], "test": [2]}) == {"test": [0, 2]}
    assert missing_classes([Item(key="u", patient="u", images=())], {"train": [0]}) == {}


def test_two_empty_groups_are_filled_one_after_the_other_by_hand():
    groups = ("g0", "g1", "g2", "g3")
    # 1/3, 2/3, 0, 0 over 6 patients deals g1 g0 g1 g1 g0 g1: counts (2, 4, 0, 0). g2 takes p5 from
    # g1 (now 3), then g3 takes p3 from g1 again, the largest after the first move
    out = patient_split([f"p{i}" for i in range(6)], (1 / 3, 2 / 3, 0.0, 0.0), groups)
    assert out == {"g0": [1, 4], "g1": [0, 2], "g2": [5], "g3": [3]}
    # 0, 3/4, 1/4, 0 over 4 patients deals g1 g1 g2 g1: counts (0, 3, 1, 0). g0 takes p3 from g1,
    # then g3 takes p1 from g1 (2 > 1): the group filled first holds one patient and is no donor
    out = patient_split([f"p{i}" for i in range(4)], (0.0, 0.75, 0.25, 0.0), groups)
    assert out == {"g0": [3], "g1": [0], "g2": [2], "g3": [1]}
    # 1/2, 1/2, 0, 0 over 6 patients deals g0 g1 g0 g1 g0 g1: counts (3, 3, 0, 0). g2 takes p4 from
    # g0 (the earlier of the tie, now 2), then g3 takes p5 from g1 (3)
    out = patient_split([f"p{i}" for i in range(6)], (0.5, 0.5, 0.0, 0.0), groups)
    assert out == {"g0": [0, 2], "g1": [1, 3], "g2": [4], "g3": [5]}


def test_deficits_are_compared_unrounded_by_hand():
    # 60/20/20 over 3 patients: j=0 (.6, .2, .2) -> train; j=1 (.2, .4, .4) -> val (tie, earlier);
    # j=2 (.8, -.6, .6) -> train; test is empty and takes p2. Deficits rounded to whole patients
    # (0, 0, 0 at j=1) would deal p1 to train and end with val [2], test [1].
    assert patient_split(["p0", "p1", "p2"], (0.6, 0.2, 0.2)) == {"train": [0], "val": [1], "test": [2]}
