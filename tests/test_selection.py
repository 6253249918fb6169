"""radbench's -k/-m reader gives pytest's verdict on every expression (pytest's own matcher is the reference)."""

from __future__ import annotations

import pytest
from _pytest.mark.expression import Expression
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.core.errors import ConfigError
from radbench_core.run.selection import matches

WORDS = ("dinov2", "amos", "nih", "knn", "seg_unet", "mc", "x.y/z")


@st.composite
def expressions(draw, depth=0):
    kind = draw(st.sampled_from(("ident", "ident", "not", "and", "or", "paren") if depth < 3 else ("ident",)))
    if kind == "ident":
        return draw(st.sampled_from(WORDS))
    if kind == "not":
        return "not " + draw(expressions(depth + 1))
    if kind == "paren":
        return "(" + draw(expressions(depth + 1)) + ")"
    return f"{draw(expressions(depth + 1))} {kind} {draw(expressions(depth + 1))}"


@settings(max_examples=300, deadline=None)
@given(expressions(), st.sets(st.sampled_from(WORDS)))
def test_same_verdict_as_pytest(expression, true_words):
    predicate = true_words.__contains__
    assert matches(expression, predicate) == Expression.compile(expression).evaluate(predicate)


def test_cell_ids_as_keywords():
    cell = "dinov2_vitl14-amos-seg_unet@448"
    assert matches("dinov2 and amos", lambda s: s in cell)
    assert matches("seg_unet and not (nih or mc)", lambda s: s in cell)
    assert not matches("dinov2 and not amos", lambda s: s in cell)
    assert matches("", lambda s: False)


@pytest.mark.parametrize("bad", ["dinov2 and", "(nih", "nih)", "and nih", "nih nih", "nih $"])
def test_malformed_expressions_are_one_line_errors(bad):
    with pytest.raises(ConfigError):
        matches(bad, lambda s: True)
