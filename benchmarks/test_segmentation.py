"""Segmentation cells: frozen-backbone decoders and scratch baselines the profile lists."""

TASK = "segmentation"


def test_cell(cell, run_cell, record):
    record(run_cell(cell))
