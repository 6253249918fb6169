"""eval/paired.py's branches that a wrong number could hide in (issue 21's mutation run): the result
of an unscorable pair field by field, a single resample, the block cache (filled once, reused, keyed
by seed and chunk), the group check that decides whether the cache may be used, and
``cluster_weights``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radbench_core.eval import paired as paired_mod
from radbench_core.eval.paired import (PairedResult, _same_groups, cluster_counts, cluster_weights,
                                       paired_bootstrap)
from radbench_core.eval.predictions import classification_predictions
from radbench_core.eval.weighted_metrics import weighted_values


def _pred(labels, scores, groups, ids=None):
    n = len(labels)
    ids = ids if ids is not None else [f"i{k}" for k in range(n)]
    return classification_predictions(ids, groups, np.asarray(labels), np.asarray(scores, float), "binary")


def _same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == y


def test_an_unscorable_pair_reports_nan_fields_and_its_counts() -> None:
    """Every label 0: no AUROC, so diff is NaN and nothing is tested; counts are still reported."""
    a = _pred([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], ["p", "p", "q", "r"])
    b = _pred([0, 0, 0, 0], [0.4, 0.3, 0.2, 0.1], ["p", "p", "q", "r"])
    r = paired_bootstrap(a, b, "auroc", resamples=20, seed=0)
    assert (r.metric, r.resamples, r.n_items, r.n_groups, r.method) == (
        "auroc", 0, 4, 3, "paired bootstrap (patients)")
    for field in (r.value_a, r.value_b, r.diff, r.ci_low, r.ci_high, r.p_value, r.p_normal, r.mc_error):
        assert math.isnan(field)


def _one_positive_patient():
    """Patient A holds the only positive; a draw without A has no AUROC."""
    labels = [1, 0, 0, 0]
    groups = ["A", "A", "B", "B"]
    return (_pred(labels, [0.9, 0.1, 0.2, 0.3], groups), _pred(labels, [0.9, 0.5, 0.95, 0.3], groups))


def _seed_where_every_draw_misses(patient_index: int, resamples: int) -> int:
    for seed in range(1000):
        counts, _ = cluster_counts(np.array(["A", "B"]), resamples, seed)
        if (counts[:, patient_index] == 0).all():
            return seed
    raise AssertionError("no such seed")


def test_a_finite_difference_whose_resamples_are_all_unscorable_keeps_the_values() -> None:
    a, b = _one_positive_patient()
    seed = _seed_where_every_draw_misses(0, 2)
    r = paired_bootstrap(a, b, "auroc", resamples=2, seed=seed)
    assert (r.value_a, r.value_b) == (1.0, pytest.approx(2 / 3))
    assert r.diff == pytest.approx(1 / 3)
    assert (r.resamples, r.n_items, r.n_groups) == (0, 4, 2)
    assert all(math.isnan(x) for x in (r.ci_low, r.ci_high, r.p_value, r.p_normal, r.mc_error))


def test_a_single_finite_resample_is_a_result_by_hand() -> None:
    """One draw, both patients once (the observed sample): d* = d, so |d* - d| = 0 < |d|: no
    extreme draw, p = 1/2; one value has no spread, so p_normal is 0 for d != 0; MC error
    sqrt(1/2 * 1/2 / 1) = 1/2."""
    a, b = _one_positive_patient()
    for seed in range(1000):
        counts, _ = cluster_counts(np.array(["A", "B"]), 1, seed)
        if counts.tolist() == [[1, 1]]:
            break
    r = paired_bootstrap(a, b, "auroc", resamples=1, seed=seed)
    assert r.resamples == 1
    assert r.ci_low == pytest.approx(1 / 3) and r.ci_high == pytest.approx(1 / 3)
    assert r.p_value == 0.5 and r.p_normal == 0.0 and r.mc_error == 0.5
    # the same pair against itself: d = 0, every draw is "as extreme": p = 1 and p_normal = 1
    s = paired_bootstrap(a, a, "auroc", resamples=1, seed=seed)
    assert (s.diff, s.p_value, s.p_normal, s.mc_error) == (0.0, 1.0, 1.0, 0.0)


def _block():
    rng = np.random.default_rng(4)
    n = 30
    labels = rng.integers(0, 2, n)
    groups = [f"p{k // 3}" for k in range(n)]
    a = _pred(labels, labels + rng.normal(0, 0.8, n), groups)
    b = _pred(labels, labels + rng.normal(0, 1.2, n), groups)
    return a, b


def test_the_cache_gives_the_uncached_result_and_fills_once_per_prediction(monkeypatch) -> None:
    a, b = _block()
    plain = paired_bootstrap(a, b, "auroc", resamples=200, seed=7, chunk=64)
    calls: list[tuple] = []
    real = paired_mod.weighted_values

    def spy(pred, metric, weights, item_units=None, chunk=250):
        calls.append((id(pred), np.shape(weights), chunk))
        return real(pred, metric, weights, item_units, chunk=chunk)
    monkeypatch.setattr(paired_mod, "weighted_values", spy)
    cache: dict = {}
    first = paired_bootstrap(a, b, "auroc", resamples=200, seed=7, chunk=64, cache=cache)
    for field in PairedResult.__dataclass_fields__:
        x, y = getattr(first, field), getattr(plain, field)
        assert x == pytest.approx(y, abs=1e-12) if isinstance(x, float) else x == y, field
    assert set(cache) == {(id(a), "auroc", 200, 7, 64), (id(b), "auroc", 200, 7, 64)}
    assert cache[(id(a), "auroc", 200, 7, 64)][0] is a
    value_a, values_a = cache[(id(a), "auroc", 200, 7, 64)][1]
    assert value_a == first.value_a and values_a.shape == (200,)
    # per prediction: its value on all-ones weights (1, N), then its 200 draws in chunks of 64
    assert calls == [(id(a), (1, 30), 250), (id(a), (200, 10), 64), (id(b), (1, 30), 250), (id(b), (200, 10), 64)]
    calls.clear()
    again = paired_bootstrap(a, b, "auroc", resamples=200, seed=7, chunk=64, cache=cache)
    assert calls == [] and again == first                 # served from the cache
    other_seed = paired_bootstrap(a, b, "auroc", resamples=200, seed=8, chunk=64, cache=cache)
    assert len(cache) == 4 and other_seed.ci_low != first.ci_low
    paired_bootstrap(a, b, "auroc", resamples=200, seed=8, chunk=32, cache=cache)
    assert len(cache) == 6                                  # the chunk is part of the key


def test_the_cache_is_not_used_when_the_groups_differ(monkeypatch) -> None:
    """Same items, a different patient grouping in b: the pair is drawn on a's groups, as uncached."""
    a, b = _block()
    b_regrouped = classification_predictions(b.ids.tolist(), [f"q{k // 5}" for k in range(30)],
                                             b.labels, b.scores[0], "binary")
    assert not _same_groups(a, b_regrouped) and _same_groups(a, b)
    cache: dict = {}
    got = paired_bootstrap(a, b_regrouped, "auroc", resamples=100, seed=2, cache=cache)
    assert cache == {}
    assert got == paired_bootstrap(a, b_regrouped, "auroc", resamples=100, seed=2)


def test_same_groups_compares_as_text_in_item_order() -> None:
    a = _pred([0, 1, 0], [0.1, 0.2, 0.3], ["1", "2", "2"])
    assert _same_groups(a, _pred([0, 1, 0], [0.3, 0.2, 0.1], [1, 2, 2]))      # ints read as text
    assert not _same_groups(a, _pred([0, 1, 0], [0.3, 0.2, 0.1], ["2", "1", "2"]))
    assert not _same_groups(a, _pred([0, 1, 0], [0.3, 0.2, 0.1], ["1", "2", "3"]))


def test_cluster_weights_are_the_float_counts_of_each_items_patient() -> None:
    groups = np.array(["b", "a", "b", "c"])
    w = cluster_weights(groups, 5, seed=3)
    counts, inverse = cluster_counts(groups, 5, seed=3)
    assert w.dtype == np.float64 and w.shape == (5, 4)
    np.testing.assert_array_equal(w, counts[:, inverse])
    np.testing.assert_array_equal(w[:, 0], w[:, 2])                         # one patient, one count
    assert (w.sum(axis=1) == counts[:, inverse].sum(axis=1)).all()
    assert not np.array_equal(cluster_weights(groups, 50, seed=3), cluster_weights(groups, 50, seed=4))


def test_the_observed_value_is_the_metric_on_unit_weights() -> None:
    a, b = _block()
    r = paired_bootstrap(a, b, "auroc", resamples=10, seed=0, cache={})
    assert r.value_a == float(weighted_values(a, "auroc", np.ones((1, 30)))[0])
    assert r.value_b == float(weighted_values(b, "auroc", np.ones((1, 30)))[0])


def test_to_dict_holds_every_field() -> None:
    a, b = _block()
    r = paired_bootstrap(a, b, "auroc", resamples=10, seed=0)
    d = r.to_dict()
    assert list(d) == list(PairedResult.__dataclass_fields__)
    assert all(_same(d[k], getattr(r, k)) if isinstance(d[k], float) else d[k] == getattr(r, k) for k in d)


def test_ci_p_values_and_monte_carlo_error_by_hand_at_another_alpha() -> None:
    """The uncached path, alpha = 0.2: every field recomputed from the same draws."""
    from scipy.stats import norm
    a, b = _block()
    r = paired_bootstrap(a, b, "auroc", resamples=300, seed=11, alpha=0.2)
    counts, inverse = cluster_counts(a.groups, 300, 11)
    d_star = weighted_values(a, "auroc", counts, inverse) - weighted_values(b, "auroc", counts, inverse)
    d_star = d_star[np.isfinite(d_star)]
    d = float(weighted_values(a, "auroc", np.ones((1, 30)))[0] - weighted_values(b, "auroc", np.ones((1, 30)))[0])
    low, high = np.quantile(d_star, [0.1, 0.9])
    p = (1 + np.sum(np.abs(d_star - d) >= abs(d) - 1e-12)) / (1 + d_star.size)
    sd = d_star.std(ddof=1)
    assert r.metric == "auroc" and r.diff == pytest.approx(d, abs=1e-12)
    assert r.value_a == float(weighted_values(a, "auroc", np.ones((1, 30)))[0])
    assert r.value_b == float(weighted_values(b, "auroc", np.ones((1, 30)))[0])
    assert (r.ci_low, r.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert r.p_value == pytest.approx(p, abs=1e-12) and 0.0 < r.p_value < 1.0
    assert r.p_normal == pytest.approx(2.0 * norm.sf(abs(d) / sd), rel=1e-9)
    assert r.mc_error == pytest.approx(math.sqrt(p * (1 - p) / d_star.size), rel=1e-12)
    assert r.resamples == d_star.size == 300


def test_two_resamples_have_a_spread_and_one_resample_warns_nothing() -> None:
    import warnings
    from scipy.stats import norm
    a, b = _block()
    r = paired_bootstrap(a, b, "auroc", resamples=2, seed=0)
    counts, inverse = cluster_counts(a.groups, 2, 0)
    d_star = weighted_values(a, "auroc", counts, inverse) - weighted_values(b, "auroc", counts, inverse)
    assert d_star[0] != d_star[1]
    assert r.p_normal == pytest.approx(2.0 * norm.sf(abs(r.diff) / d_star.std(ddof=1)), rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = paired_bootstrap(a, b, "auroc", resamples=1, seed=0)
    assert one.resamples == 1 and one.p_normal in (0.0, 1.0)


def test_the_defaults_are_1000_patient_draws_with_seed_0() -> None:
    a, b = _block()
    default = paired_bootstrap(a, b, "auroc")
    assert default == paired_bootstrap(a, b, "auroc", resamples=1000, seed=0)
    assert default.resamples == 1000
    assert (default.ci_low, default.ci_high) != (paired_bootstrap(a, b, "auroc", seed=1).ci_low,
                                                 paired_bootstrap(a, b, "auroc", seed=1).ci_high)


def test_no_items_give_empty_draws_and_an_undefined_pair() -> None:
    counts, inverse = cluster_counts(np.array([], dtype=str), 4, 0)
    assert counts.shape == (4, 0) and inverse.shape == (0,)
    empty = classification_predictions([], [], np.zeros(0, int), np.zeros(0), "binary")
    r = paired_bootstrap(empty, empty, "auroc", resamples=5)
    assert (r.n_items, r.n_groups, r.resamples) == (0, 0, 0) and math.isnan(r.diff)
