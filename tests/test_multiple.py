"""Holm's step-down correction against an independent brute-force definition (fast: the mutation
target of `make mutants` for eval/multiple.py, docs/testing.md).

Reference: p_holm(i) = max over the j ranked at or before i of min(1, (m - rank(j)) * p(j)), computed
here with plain Python loops over every prefix, NaNs dropped from m."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.eval.multiple import holm


def reference(p: list[float]) -> list[float]:
    finite = [i for i, v in enumerate(p) if not math.isnan(v)]
    m = len(finite)
    ranked = sorted(finite, key=lambda i: (p[i], i))
    out = [math.nan] * len(p)
    for pos, i in enumerate(ranked):
        out[i] = max(min(1.0, (m - k) * p[j]) for k, j in enumerate(ranked[:pos + 1]))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(math.nan)), min_size=0, max_size=12))
def test_holm_equals_the_brute_force_definition(p):
    got, want = holm(p), reference(p)
    assert len(got) == len(p)
    for g, w in zip(got, want):
        assert (math.isnan(g) and math.isnan(w)) or g == pytest.approx(w, abs=1e-15)


def test_holm_by_hand_with_ties_nan_and_the_cap():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.01, 0.01, 0.2]) == pytest.approx([0.03, 0.03, 0.2])      # a tie keeps m - k per rank
    out = holm([0.02, math.nan, 0.3])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.3)
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([0.0, 0.5]) == [0.0, 0.5] and holm([]) == [] and holm([0.3]) == [0.3]


def test_78_pairs_need_p_below_alpha_over_78_for_the_smallest():
    p = [0.05 / 78 * 0.99] + [0.5] * 77
    assert holm(p)[0] < 0.05 and holm([0.001] + [0.5] * 77)[0] == pytest.approx(0.078)
