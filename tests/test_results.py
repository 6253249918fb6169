import json

import pytest

from radbench_core.core.errors import StorageError
from radbench_core.core.results import DEMO_WEIGHTS, CellResult, Metric, RunStore, cell_filename


def make(cell_id="dinov2_vits14-nih-linear", value=0.8):
    return CellResult(cell_id=cell_id, model="dinov2_vits14", dataset="nih", protocol="linear",
                      variant="", task="classification", modality="xray", profile="demo",
                      metrics={"auroc": Metric(value, True, value - 0.1, value + 0.1)},
                      hparams={"lr": 0.01}, seed=3)


def test_round_trip_through_the_store(tmp_path):
    store = RunStore(tmp_path / "run")
    result = make()
    path = store.write_cell(result)
    assert path.name == "dinov2_vits14-nih-linear.json"
    back = store.read_cell(result.cell_id)
    assert back == result
    assert back.is_demo and back.weights == DEMO_WEIGHTS
    assert store.load_cells() == [result]


def test_nan_is_written_as_null_strict_json(tmp_path):
    store = RunStore(tmp_path)
    result = make(value=float("nan"))
    store.write_cell(result)
    text = store.cell_path(result.cell_id).read_text()
    assert "NaN" not in text
    assert json.loads(text)["metrics"]["auroc"]["value"] is None


def test_unknown_schema_version_is_a_clear_error(tmp_path):
    store = RunStore(tmp_path)
    store.write_cell(make())
    path = store.cell_path("dinov2_vits14-nih-linear")
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(StorageError, match="schema_version"):
        store.load_cells()


def test_cell_filenames_are_safe():
    assert cell_filename("a-b-seg_unet@448") == "a-b-seg_unet@448.json"
    assert "/" not in cell_filename("../../etc/passwd")
