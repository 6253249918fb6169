"""Intensity windowing against hand-computed values, and the NaN/inf guard."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from radbench_core.data.datasets.preprocess import check_finite, to_unit, window_ct, window_mri
from radbench_core.core.errors import DatasetError


def test_window_ct_hand_computed():
    hu = np.array([-3000, -1024, -1000, 0, 400, 600, 3071], dtype=np.int16)
    out = window_ct(hu)
    expected = np.array([0.0, 0.0, 24 / 1624, 1024 / 1624, 1424 / 1624, 1.0, 1.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def test_window_mri_clips_to_5th_95th_percentile():
    vol = np.arange(101, dtype=np.float64).reshape(1, 1, 101)    # percentiles 5 and 95 are 5 and 95
    out = window_mri(vol)
    assert out.dtype == np.float32 and out.shape == vol.shape
    flat = out.ravel()
    assert flat[:6].tolist() == [0.0] * 6                          # 0..5 clip to the low end
    np.testing.assert_allclose(flat[50], 45 / 90, atol=1e-6)
    np.testing.assert_allclose(flat[20], 15 / 90, atol=1e-6)
    assert flat[95:].tolist() == [1.0] * 6


def test_window_mri_uses_numpy_percentiles_on_random_volume():
    rng = np.random.default_rng(3)
    vol = rng.gamma(2.0, 100.0, size=(4, 7, 9)).astype(np.float32)
    lo, hi = np.percentile(vol, [5, 95])
    expected = (np.clip(vol, lo, hi) - lo) / (hi - lo)
    np.testing.assert_allclose(window_mri(vol), expected, atol=1e-5)


def test_constant_inputs_give_zeros():
    assert not window_mri(np.full((2, 3, 3), 7.0)).any()
    assert not to_unit(np.full((3, 3), 200, dtype=np.uint8)).any()


def test_to_unit_hand_computed_8_and_16_bit():
    np.testing.assert_allclose(to_unit(np.array([[10, 60], [110, 210]], dtype=np.uint8)),
                               [[0.0, 0.25], [0.5, 1.0]], atol=1e-7)
    out = to_unit(np.array([0, 1000, 4095], dtype=np.uint16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 1000 / 4095, 1.0], atol=1e-6)
    np.testing.assert_allclose(to_unit(np.array([-2.0, 0.0, 2.0])), [0.0, 0.5, 1.0])


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.integers(1, 60),
              elements=st.floats(-5000, 5000, width=32, allow_nan=False)))
def test_outputs_stay_in_unit_interval_and_keep_order(arr):
    for fn in (window_ct, window_mri, to_unit):
        out = fn(arr)
        assert out.dtype == np.float32 and out.shape == arr.shape
        assert out.min() >= 0.0 and out.max() <= 1.0
        order = np.argsort(arr, kind="stable")
        assert np.all(np.diff(out[order]) >= 0)          # monotone: windowing never swaps intensities


def test_check_finite_names_the_file_and_counts():
    check_finite(np.zeros(3, dtype=np.int16), "ok.nii.gz")
    check_finite(np.ones(3), "ok.nii.gz")
    with pytest.raises(DatasetError) as err:
        check_finite(np.array([1.0, np.nan, np.inf, 2.0]), "imagesTr/case_1.nii.gz")
    msg = str(err.value)
    assert msg.startswith("imagesTr/case_1.nii.gz:")
    assert "2 of 4 values are not finite (1 NaN, 1 inf)" in msg and "Fix:" in msg


def test_a_subnormal_intensity_range_still_maps_into_the_unit_interval():
    # found by hypothesis: 1 / (hi - lo) overflows float32 when the range is sub-normal
    arr = np.array([0.0, 1e-45, 1e-45], dtype=np.float32)
    for fn in (window_mri, to_unit):
        out = fn(arr)
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(to_unit(arr), np.array([0.0, 1.0, 1.0], dtype=np.float32))


# --------------------------------------------------------------------------- the study's windows
def test_ct_window_is_the_studys_minus_1024_to_600() -> None:
    from radbench_core.data.datasets.preprocess import CT_WINDOW_HU
    assert CT_WINDOW_HU == (-1024.0, 600.0)
    hu = np.array([-2000.0, -1024.0, -212.0, 600.0, 3000.0])
    np.testing.assert_allclose(window_ct(hu), [0.0, 0.0, 812 / 1624, 1.0, 1.0], rtol=1e-6)


def test_msd_slices_are_clipped_each_to_its_own_percentiles() -> None:
    from radbench_core.data.datasets.preprocess import window_percentile_per_slice
    rng = np.random.default_rng(0)
    vol = np.stack([rng.normal(0, 1, (8, 9)), rng.normal(500, 50, (8, 9)), np.full((8, 9), 7.0)])
    out = window_percentile_per_slice(vol)
    assert out.shape == vol.shape and out.dtype == np.float32
    for k in range(2):                                   # by hand: numpy percentiles of that slice
        lo, hi = np.percentile(vol[k], 5), np.percentile(vol[k], 95)
        np.testing.assert_allclose(out[k], (np.clip(vol[k], lo, hi) - lo) / (hi - lo), atol=1e-6)
        assert out[k].min() == 0.0 and out[k].max() == 1.0
    assert (out[2] == 0).all()                           # a constant slice
    # per volume would crush the dim slice next to the bright one; per slice it keeps its contrast
    assert np.ptp(window_mri(vol)[0]) < 0.05 and np.ptp(out[0]) == 1.0
    np.testing.assert_allclose(window_percentile_per_slice(vol[1]), out[1])   # a 2D image = one slice


@pytest.mark.parametrize("dataset_id", ["msd_spleen", "msd_heart"])
def test_msd_volumes_load_through_the_per_slice_window(dataset_id, tmp_path) -> None:
    from radbench_core.data.datasets import get_dataset, open_dataset
    from radbench_core.data.datasets.base import LoadOptions
    from radbench_core.data.datasets.preprocess import window_percentile_per_slice
    from radbench_core.data.datasets.volumes import _decode
    from radbench_core.data.source import prepare_phantom
    root = prepare_phantom(dataset_id, "small", tmp_path)
    index = open_dataset(get_dataset(dataset_id), root, LoadOptions())
    item = index.split_items("test")[0]
    raw = _decode(root / item.images[0], as_label=False)
    np.testing.assert_array_equal(index.load_slices(item), window_percentile_per_slice(raw))
