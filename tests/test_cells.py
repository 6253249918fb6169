import pytest
from hypothesis import given, strategies as st

from radbench_core.core.cells import Cell, parse_cell_id, parse_protocol
from radbench_core.core.errors import ConfigError

name = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)


@given(name, name, name, st.one_of(st.just(""), st.from_regex(r"[0-9a-z]{1,4}", fullmatch=True)))
def test_id_round_trip(model, dataset, protocol, variant):
    cell = Cell(model, dataset, protocol, variant)
    assert parse_cell_id(cell.id) == cell


def test_examples():
    assert Cell("dinov2_vitl14", "amos", "seg_unet", "448").id == "dinov2_vitl14-amos-seg_unet@448"
    assert parse_protocol("fewshot@8") == ("fewshot", "8")
    assert parse_protocol("linear") == ("linear", "")


def test_bad_id_says_the_format():
    with pytest.raises(ConfigError, match="<model>-<dataset>-<protocol>"):
        parse_cell_id("not a cell")
