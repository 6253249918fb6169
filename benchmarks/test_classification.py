"""Classification cells: every (model, classification dataset, protocol) the profile lists."""

TASK = "classification"


def test_cell(cell, run_cell, record):
    record(run_cell(cell))
