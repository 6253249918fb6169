"""Issue 15: the classes of bad input that used to give a silently wrong (or missing) result.

Each test fails on the code before the fix: geometry, content-aware caching, finite everything,
undefined headline metrics, one-line errors from DataLoader workers and the feature cache, and a
report that is replaced as a whole.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from radbench_core.data.datasets.csvtools import check_mask_geometry, read_raw
from radbench_core.data.datasets.volumes import check_geometry, check_pair, load_image
from radbench_core.core.errors import DatasetError, NumericalError, RadbenchError, StorageError
from radbench_core.run.feature_cache import FeatureCache, index_files, sources_fingerprint
from radbench_core.core.finite import (check_features_finite, check_headline, check_loss,
                                  check_state_finite)
from radbench_core.core.results import Metric

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def _nifti(path: Path, shape=(8, 9, 5), affine=AFFINE, dtype=np.int16) -> Path:
    nib.save(nib.Nifti1Image(np.arange(np.prod(shape)).reshape(shape).astype(dtype), affine), str(path))
    return path


# -- 1. geometry -----------------------------------------------------------------------------------

@pytest.mark.parametrize("label_affine, problem", [
    (np.diag([-1.5, 1.5, 3.0, 1.0]), "label orientation LAS differs from its image"),   # x flipped
    (np.diag([1.5, 1.5, 3.0, 1.0]) + np.array([[0, 0, 0, 4.0], [0] * 4, [0] * 4, [0] * 4]),
     "label affine differs from its image"),                                             # shifted 4 mm
    (np.diag([1.5, 1.5, 2.0, 1.0]), "label affine differs from its image"),             # other spacing
])
def test_label_with_the_right_shape_but_another_geometry_is_refused(tmp_path, label_affine, problem):
    image = _nifti(tmp_path / "img.nii.gz")
    label = _nifti(tmp_path / "lbl.nii.gz", affine=label_affine, dtype=np.uint8)
    with pytest.raises(DatasetError) as err:
        check_pair(image, label)
    text = str(err.value)
    assert text.startswith(f"{label}:") and str(image) in text and problem in text and "Fix:" in text


def test_matching_geometry_within_tolerance_passes(tmp_path):
    image = _nifti(tmp_path / "img.nii.gz")
    label = _nifti(tmp_path / "lbl.nii.gz", affine=AFFINE + 1e-5, dtype=np.uint8)   # float noise
    assert check_geometry(image, label) == (5, 9, 8) and check_pair(image, label) == 5


@settings(max_examples=25, deadline=None)
@given(st.floats(-50, 50).filter(lambda d: abs(d) > 0.01))
def test_any_shift_beyond_the_tolerance_is_caught(shift):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        image = _nifti(Path(tmp) / "img.nii.gz")
        moved = AFFINE.copy()
        moved[1, 3] = shift
        label = _nifti(Path(tmp) / "lbl.nii.gz", affine=moved, dtype=np.uint8)
        with pytest.raises(DatasetError, match="label affine differs"):
            check_pair(image, label)


def test_2d_mask_of_another_size_or_orientation_is_refused(tmp_path):
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(image)
    rotated = tmp_path / "rot.png"
    Image.fromarray(np.zeros((30, 20), np.uint8)).save(rotated)
    with pytest.raises(DatasetError, match=r"mask shape \(30, 20\) differs from the image shape "
                                           r"\(20, 30\).*looks rotated/transposed"):
        check_mask_geometry(image, rotated, (30, 20))
    tagged = tmp_path / "tagged.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tagged, exif=exif)
    with pytest.raises(DatasetError, match=r"tagged.png: mask orientation \(rotated 90 CW, EXIF tag 6\) "
                                           r"differs from its image"):
        check_mask_geometry(image, tagged, (20, 30))
    check_mask_geometry(image, image, (20, 30))


# -- 3. degenerate and non-finite inputs -----------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1)])
def test_empty_or_one_pixel_image_is_a_dataset_error(tmp_path, shape):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.zeros(shape, np.uint8)).save(path)
    with pytest.raises(DatasetError, match=rf"tiny.png: degenerate image of shape \({shape[0]}, {shape[1]}\)"):
        read_raw(path)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 7), (0, 4, 4)])
def test_degenerate_volume_is_a_dataset_error(tmp_path, shape):
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(path))
    with pytest.raises(DatasetError, match=r"vol.nii.gz: degenerate volume of shape"):
        load_image(path)


def test_zero_sized_image_in_a_mat_file_is_a_dataset_error(tmp_path):
    import h5py
    from radbench_core.data.datasets.brain_tumor import read_mat
    path = tmp_path / "1.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("cjdata/image", data=np.zeros((0, 0), np.int16))
        f.create_dataset("cjdata/label", data=np.array([[1.0]]))
        f.create_dataset("cjdata/PID", data=np.array([[ord("7")]], np.uint16))
    with pytest.raises(DatasetError, match=r"1.mat \(cjdata/image\): degenerate image of shape \(0, 0\)"):
        read_mat(path)


def test_non_finite_weights_name_the_tensor_and_file():
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight[0, 1] = float("nan")
    with pytest.raises(NumericalError) as err:
        check_state_finite(model.state_dict().items(), "/w/dinov2_vits14.safetensors")
    assert str(err.value).startswith("/w/dinov2_vits14.safetensors: weight tensor 'weight': 1 of 6 "
                                     "values are not finite")
    check_state_finite(torch.nn.Linear(3, 2).state_dict().items(), "ok")


def test_non_finite_features_and_loss_fail():
    with pytest.raises(NumericalError, match=r"cell x: test features 'cls': 1 of 4 values"):
        check_features_finite({"train": {"cls": np.zeros((2, 2))},
                               "test": {"cls": np.array([[0.0, np.inf], [0.0, 1.0]])}}, "cell x")
    with pytest.raises(NumericalError, match=r"linear probe: the training loss became nan at step 7"):
        check_loss(torch.tensor(float("nan")), "linear probe", step=7)
    check_loss(torch.tensor(0.3), "fine")


def test_extraction_refuses_non_finite_features_naming_the_item(tmp_path):
    from radbench_core.run.extraction import extract_splits

    class NaNBackbone(torch.nn.Module):
        def pooled(self, x):
            out = x.mean(dim=(1, 2, 3))[:, None].repeat(1, 4)
            out[0, 0] = float("nan")
            return {"cls": out}

    class Split(torch.utils.data.Dataset):
        def __init__(self, n):
            self.items = [type("It", (), {"images": (f"img{i}.png",), "n_slices": 1})() for i in range(n)]
            self.n_items, self.split = n, "train"
            self.index = type("Ix", (), {"root": tmp_path})()

        def __len__(self):
            return self.n_items

        def __getitem__(self, i):
            return {"image": torch.full((3, 8, 8), float(i)), "item": i}

    with pytest.raises(NumericalError, match=r"img0.png: features: cls features of 2 of 3 train items are not finite"):
        extract_splits(NaNBackbone(), {"train": Split(3)}, device="cpu", batch_size=2, progress=False)


# -- 4. undefined headline metrics never pass ------------------------------------------------------

def test_undefined_headline_metric_fails_the_cell():
    with pytest.raises(NumericalError, match=r"the headline metric 'auroc' is undefined \(nan\)"):
        check_headline({"auroc": Metric(float("nan"))}, "classification", "cell a")
    with pytest.raises(NumericalError, match=r"the headline metric 'dice' was not computed"):
        check_headline({"jaccard": Metric(0.5)}, "segmentation")
    check_headline({"auroc": Metric(0.7)}, "classification")
    check_headline({"dice": Metric(0.0)}, "segmentation")                 # 0 is a real (bad) value


# -- 2. content-aware caching ----------------------------------------------------------------------

def test_a_source_file_changed_in_place_changes_the_feature_key(tmp_path):
    (tmp_path / "a.png").write_bytes(b"1234")
    before = sources_fingerprint(tmp_path, ["a.png"])
    assert sources_fingerprint(tmp_path, ["a.png"]) == before
    (tmp_path / "a.png").write_bytes(b"12345")                           # size changes
    after_size = sources_fingerprint(tmp_path, ["a.png"])
    os.utime(tmp_path / "a.png", ns=(1, 10**18))                          # same size, new mtime
    assert len({before, after_size, sources_fingerprint(tmp_path, ["a.png"])}) == 3
    calls = []
    cache = FeatureCache(tmp_path / "cache")

    def compute():
        calls.append(1)
        return {"train": {"cls": np.ones((2, 3))}}

    cache.get_or_compute({"m": 1, "sources": before}, compute)
    cache.get_or_compute({"m": 1, "sources": before}, compute)
    cache.get_or_compute({"m": 1, "sources": after_size}, compute)
    assert len(calls) == 2


def test_index_files_lists_images_and_masks():
    from radbench_core.data.datasets.base import Item
    ix = type("Ix", (), {"items": [Item("a", "p", ("i/a.png",), masks=("m/a.png",)),
                                   Item("b", "p", ("i/b.png",))]})()
    assert index_files(ix) == ["i/a.png", "m/a.png", "i/b.png"]


@pytest.mark.parametrize("damage", ["meta-edited", "meta-checksum-gone", "meta-not-json",
                                    "file-instead-of-entry"])
def test_a_bad_cache_entry_is_recomputed_with_one_warning(tmp_path, damage):
    cache = FeatureCache(tmp_path)
    parts = {"m": 1}
    feats = {"train": {"cls": np.arange(6.0).reshape(2, 3)}}
    cache.get_or_compute(parts, lambda: feats)
    entry = next(p for p in tmp_path.iterdir() if p.is_dir())
    if damage == "meta-edited":
        meta = json.loads((entry / "meta.json").read_text())
        meta["files"]["train.cls.npy"]["split"] = "test"                 # valid JSON, wrong content
        (entry / "meta.json").write_text(json.dumps(meta))
    elif damage == "meta-checksum-gone":
        (entry / "meta.sha256").unlink()
    elif damage == "meta-not-json":
        (entry / "meta.json").write_text("{")
    else:
        import shutil
        shutil.rmtree(entry)
        entry.write_text("not a folder")
    with pytest.warns(UserWarning, match=r"feature cache entry .* is corrupt .*recomputing it"):
        out = cache.get_or_compute(parts, lambda: feats)
    np.testing.assert_array_equal(out["train"]["cls"], feats["train"]["cls"])
    assert entry.is_dir() and cache.get_or_compute(parts, lambda: 1 / 0)["train"]["cls"].shape == (2, 3)


def test_feature_cache_storage_problems_are_one_storage_error(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(StorageError, match=r"file: the feature cache folder is a file.*--radbench-cache-dir"):
        FeatureCache(blocked).get_or_compute({"m": 1}, lambda: {"train": {"cls": np.ones((1, 1))}})
    cache = FeatureCache(tmp_path / "c")
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError) as err:
        cache.get_or_compute({"m": 1}, lambda: {"train": {"cls": np.ones((1, 1))}})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "the disk is full" in str(err.value) and "--radbench-cache-dir" in str(err.value)
    assert not [p for p in (tmp_path / "c").iterdir() if p.is_dir()]     # no half entry left


def test_an_edited_phantom_is_rewritten(tmp_path):
    from radbench_core.data.source import prepare_phantom
    root = prepare_phantom("mc", "tiny", tmp_path)
    victim = next(p for p in sorted(root.rglob("*.png")))
    original = victim.read_bytes()
    assert prepare_phantom("mc", "tiny", tmp_path) == root
    victim.write_bytes(b"edited in place")
    with pytest.warns(UserWarning, match="the cached phantom was changed on disk; writing it anew"):
        assert prepare_phantom("mc", "tiny", tmp_path) == root
    assert victim.read_bytes() == original


# -- 6. one line, everywhere -----------------------------------------------------------------------

class _Broken(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise DatasetError("/data/x/img_3.png", "cannot decode the image", "re-download this file")


def test_an_error_in_a_dataloader_worker_reaches_the_user_as_the_same_one_line_error():
    loader = torch.utils.data.DataLoader(_Broken(), batch_size=2, num_workers=1)
    with pytest.raises(DatasetError) as err:
        next(iter(loader))
    assert str(err.value) == ("/data/x/img_3.png: cannot decode the image. Fix: re-download this file.")
    assert err.value.where == "/data/x/img_3.png" and "\n" not in str(err.value)


_TEXT = st.from_regex(r"[A-Za-z0-9_/(),'-][A-Za-z0-9_/ (),'-]{0,29}", fullmatch=True)


@given(_TEXT, _TEXT, _TEXT)
def test_radbench_errors_round_trip_through_pickle_and_traceback_text(where, problem, fix):
    err = StorageError(where, problem, fix)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is StorageError and str(back) == str(err)
    wrapped = StorageError(f"Caught StorageError in DataLoader worker process 0.\nOriginal Traceback "
                           f"(most recent call last):\n  File \"x.py\", line 1\nradbench_core.core.errors."
                           f"StorageError: {err}\n")
    assert str(wrapped) == str(err)
    assert isinstance(wrapped, RadbenchError)


# -- 8. reports replaced as a whole ----------------------------------------------------------------

def _record(cell="dinov2_vits14-nih-linear", auroc=0.7):
    from radbench_core.core.results import CellResult
    return CellResult(cell_id=cell, model="dinov2_vits14", dataset="nih", protocol="linear", variant="",
                      task="classification", modality="xray", profile="demo",
                      metrics={"auroc": Metric(auroc)}, hparams={}, params_trainable=1, params_total=2,
                      wall_time_s=1.0, peak_memory_mb=1.0, seed=0, deterministic=True, device="cpu",
                      weights="w", dataset_provenance="p", config_hash="h")


def test_the_report_is_built_aside_and_swapped_in(tmp_path, monkeypatch):
    from fixtures.finish import build_report_swapped
    from radbench_core.core.results import RunStore
    run = tmp_path / "run"
    store = RunStore(run)
    store.write_cell(_record())
    index = build_report_swapped([_record()], run, manifest={})
    assert index == run / "index.html" and (run / "results.csv").exists()
    assert 'href="cells/' in index.read_text()                       # links resolve in place
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}

    import radbench_core.report as report

    def dies_half_way(records, out_dir, **kwargs):
        Path(out_dir, "results.csv").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "build_report", dies_half_way)
    with pytest.raises(OSError):
        build_report_swapped([_record(auroc=0.1)], run, manifest={})
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before                                            # previous report intact
    assert not [p for p in run.iterdir() if p.name.startswith(".report-")]


def test_same_size_and_mtime_is_a_documented_limitation_and_verify_content_catches_it(tmp_path, monkeypatch):
    """Issue 26: a file restored with the same size and mtime (backup, rsync -a) reused cached features."""
    from radbench_core.data.datasets.inputs import changed_inputs, input_manifest
    path = tmp_path / "a.png"
    path.write_bytes(b"1234")
    os.utime(path, ns=(1, 10**18))
    before, manifest = sources_fingerprint(tmp_path, ["a.png"]), input_manifest(tmp_path, ["a.png"])
    path.write_bytes(b"9876")                                           # same size ...
    os.utime(path, ns=(1, 10**18))                                      # ... and the same mtime
    assert sources_fingerprint(tmp_path, ["a.png"]) == before           # the documented limitation
    assert changed_inputs(tmp_path, manifest) == []
    monkeypatch.setenv("RADBENCH_VERIFY_CONTENT", "1")
    verified = sources_fingerprint(tmp_path, ["a.png"])
    manifest = input_manifest(tmp_path, ["a.png"])
    path.write_bytes(b"1234")
    os.utime(path, ns=(1, 10**18))
    assert sources_fingerprint(tmp_path, ["a.png"]) != verified
    assert changed_inputs(tmp_path, manifest) == ["a.png (same size and mtime, other content)"]
