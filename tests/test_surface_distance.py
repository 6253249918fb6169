"""HD95 (eval/surface_distance.py) against MONAI's compute_hausdorff_distance(percentile=95), the
reference implementation, on random and hand-made masks: anisotropic spacing, empty masks, single
voxels, several classes, 2D images and single-slice volumes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from radbench_core.core.errors import ConfigError
from radbench_core.eval.surface_distance import (hausdorff, hd95_per_class, per_item_hd95,
                                                 summarise_hd95)



def monai_per_class(pred: np.ndarray, ref: np.ndarray, num_classes: int, spacing=None,
                    percentile: float | None = 95) -> np.ndarray:
    """MONAI on one-hot (1, C, ...) maps, background excluded, undirected, 95th percentile."""
    monai_hd = pytest.importorskip("monai.metrics.hausdorff_distance").compute_hausdorff_distance
    onehot = lambda a: np.eye(num_classes, dtype=np.float32)[a].transpose(-1, *range(a.ndim))[None]  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # MONAI warns on empty masks
        out = monai_hd(onehot(pred), onehot(ref), include_background=False, percentile=percentile,
                       spacing=None if spacing is None else list(spacing))
    return out.numpy()[0].astype(np.float64)


def blobs(rng: np.random.Generator, shape: tuple[int, ...], num_classes: int) -> np.ndarray:
    """Smooth random label map: blurred noise thresholded into classes (irregular surfaces)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.5)
    edges = np.quantile(field, np.linspace(0.45, 0.95, num_classes)[:-1] if num_classes > 2 else [0.7])
    return np.digitize(field, edges).astype(np.int64)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("spacing", [None, (2.5, 0.7, 0.9), (1.0, 1.0, 3.0)])
def test_random_3d_label_maps_match_monai(seed: int, spacing) -> None:
    rng = np.random.default_rng(seed)
    ref = blobs(rng, (9, 20, 17), 4)
    pred = blobs(rng, (9, 20, 17), 4)
    pred[ref == 1] = 1                                   # partly overlapping, partly not
    ours = hd95_per_class(pred, ref, 4, spacing)
    np.testing.assert_allclose(ours, monai_per_class(pred, ref, 4, spacing), rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(ours)) and np.all(ours > 0)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("spacing", [None, (0.5, 2.0)])
def test_random_2d_masks_match_monai(seed: int, spacing) -> None:
    rng = np.random.default_rng(10 + seed)
    ref = blobs(rng, (31, 24), 3)
    pred = np.roll(ref, (1 + seed, -2), axis=(0, 1))       # shifted prediction, touching the edge
    np.testing.assert_allclose(hd95_per_class(pred, ref, 3, spacing), monai_per_class(pred, ref, 3, spacing),
                               rtol=1e-5, atol=1e-5)


def test_single_voxels_hand_computed_with_anisotropic_spacing() -> None:
    pred = np.zeros((5, 6, 7), dtype=np.int64)
    ref = np.zeros_like(pred)
    pred[1, 2, 3] = 1
    ref[4, 0, 6] = 1
    expected = math.sqrt((3 * 2.5) ** 2 + (2 * 0.7) ** 2 + (3 * 0.9) ** 2)
    assert hausdorff(pred, ref, (2.5, 0.7, 0.9)) == pytest.approx(expected, rel=1e-12)
    assert hd95_per_class(pred, ref, 2, (2.5, 0.7, 0.9))[0] == pytest.approx(expected, rel=1e-12)
    assert monai_per_class(pred, ref, 2, (2.5, 0.7, 0.9))[0] == pytest.approx(expected, rel=1e-5)
    assert hausdorff(pred, pred, (2.5, 0.7, 0.9)) == 0.0


def test_hand_made_squares_directed_percentiles() -> None:
    """A 4x4 square vs the same square widened by 2 columns: reference-to-prediction distances are 0
    or 2 px... the max of the two directed 95th percentiles, here 2 columns x 0.5 mm = 1.0 mm."""
    ref = np.zeros((10, 12), dtype=np.int64)
    ref[3:7, 3:7] = 1
    pred = ref.copy()
    pred[3:7, 7:9] = 1
    ours = hausdorff(pred, ref, (1.0, 0.5))
    assert ours == pytest.approx(1.0)
    assert monai_per_class(pred, ref, 2, (1.0, 0.5))[0] == pytest.approx(ours, rel=1e-6)


def test_empty_masks_follow_monai_nan_and_inf() -> None:
    full = np.zeros((4, 8, 8), dtype=np.int64)
    full[1:3, 2:6, 2:6] = 1
    empty = np.zeros_like(full)
    assert math.isnan(hausdorff(empty, empty))
    assert hausdorff(full, empty) == math.inf and hausdorff(empty, full) == math.inf
    # absent from both: NaN, as MONAI's HD95
    assert np.isnan(hd95_per_class(empty, empty, 3)).all() and np.isnan(monai_per_class(empty, empty, 3)).all()
    for p, r in ((full, empty), (empty, full)):
        ours = hd95_per_class(p, r, 3)
        # absent from one: inf, MONAI's plain Hausdorff distance; its HD95 is not finite either
        # (NaN: torch.quantile interpolates inf - inf)
        np.testing.assert_array_equal(ours[0], monai_per_class(p, r, 3, percentile=None)[0])
        assert ours[0] == math.inf and not np.isfinite(monai_per_class(p, r, 3)[0])
        assert math.isnan(ours[1])                                 # class 2 absent from both


def test_single_slice_volume_is_scored_as_2d_image() -> None:
    rng = np.random.default_rng(3)
    ref, pred = blobs(rng, (1, 25, 25), 3), blobs(rng, (1, 25, 25), 3)
    ours = hd95_per_class(pred, ref, 3, (5.0, 0.8, 0.6))           # slice thickness ignored
    np.testing.assert_allclose(ours, monai_per_class(pred[0], ref[0], 3, (0.8, 0.6)), rtol=1e-5)
    np.testing.assert_allclose(ours, hd95_per_class(pred[0], ref[0], 3, (0.8, 0.6)))


def test_per_item_and_summary_convention() -> None:
    a = np.zeros((3, 6, 6), dtype=np.int64)
    a[1, 1:4, 1:4] = 1
    b = np.roll(a, 1, axis=2)
    empty = np.zeros_like(a)
    hd = per_item_hd95([b, a, empty, b], [a, a, a, empty], 3, [(2.0, 1.0, 0.5)] * 4)
    assert hd.shape == (4, 2)
    assert hd[0, 0] == pytest.approx(0.5) and hd[1, 0] == 0.0
    assert hd[2, 0] == math.inf and hd[3, 0] == math.inf and np.isnan(hd[:, 1]).all()
    s = summarise_hd95(hd, ["liver", "spleen"])
    assert s["per_class"]["liver"] == pytest.approx(0.25)          # mean of 0.5 and 0 (both present)
    assert math.isnan(s["per_class"]["spleen"]) and s["mean"] == pytest.approx(0.25)
    assert s["volumes_scored"] == {"liver": 2, "spleen": 0}
    assert s["volumes_one_empty"] == {"liver": 2, "spleen": 0}


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, float("nan"), 1.0)])
def test_bad_spacing_is_a_config_error(spacing) -> None:
    mask = np.ones((3, 4, 4), dtype=np.int64)
    with pytest.raises(ConfigError, match="spacing"):
        hd95_per_class(mask, mask, 2, spacing)


def test_shape_mismatch_and_float_maps_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="differ in shape"):
        hd95_per_class(np.zeros((2, 4, 4), int), np.zeros((2, 4, 5), int), 2)
    with pytest.raises(ConfigError, match="integer"):
        hd95_per_class(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), 2)


# --------------------------------------------------------------------------- spacing and the records
def test_axial_spacing_follows_the_slice_stack_of_any_orientation(tmp_path) -> None:
    """(S, H, W) spacing from the header, checked against nibabel's canonical zooms (reversed)."""
    import nibabel as nib
    from radbench_core.data.datasets.volumes import axial_shape, axial_spacing
    for k, affine in enumerate((np.diag([-0.8, -0.7, 5.0, 1.0]),                 # LPS-stored CT
                                np.array([[0, 0, 1.5, 0], [2.0, 0, 0, 0], [0, -0.6, 0, 0], [0, 0, 0, 1.0]]))):
        path = tmp_path / f"v{k}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.uint8), affine), str(path))
        canon = nib.as_closest_canonical(nib.load(str(path)))
        expected = tuple(float(z) for z in canon.header.get_zooms()[:3][::-1])
        assert axial_spacing(path) == pytest.approx(expected)
        assert len(axial_spacing(path)) == len(axial_shape(path)) == 3
    assert axial_spacing(tmp_path / "v1.nii.gz") == pytest.approx((0.6, 2.0, 1.5))


def test_montgomery_spacing_only_at_the_release_size(tmp_path) -> None:
    from PIL import Image
    from radbench_core.data.datasets.base import Item
    from radbench_core.data.datasets.montgomery import RELEASE_PIXEL_MM, SPEC, MontgomeryIndex
    for name, size in (("full.png", (4020, 4892)), ("small.png", (64, 80))):
        Image.new("L", size).save(tmp_path / name)
    index = MontgomeryIndex(SPEC, tmp_path, [])
    assert index.voxel_spacing(Item("a", "a", ("full.png",))) == (1.0, RELEASE_PIXEL_MM, RELEASE_PIXEL_MM)
    assert index.voxel_spacing(Item("b", "b", ("small.png",))) is None


class _Index:
    def __init__(self, spacings):
        from radbench_core.data.datasets.base import Item
        self.items = [Item(f"c{i}", f"c{i}", (f"c{i}",)) for i in range(len(spacings))]
        self.spacings = spacings

    def split_items(self, split: str):
        return self.items

    def voxel_spacing(self, item):
        return self.spacings[self.items.index(item)]


def test_segmentation_records_hd95_per_organ_in_mm_as_monai() -> None:
    from types import SimpleNamespace
    from radbench_core.protocols.segmentation import surface_summary
    rng = np.random.default_rng(7)
    targets = [blobs(rng, (6, 16, 14), 3) for _ in range(3)]
    preds = [np.roll(t, 1, axis=1) for t in targets]
    preds[2][preds[2] == 2] = 0                                  # organ 2 missed in volume 3
    spacings = [(3.0, 0.8, 0.8), (1.5, 0.6, 0.7), (2.0, 1.0, 1.0)]
    out = surface_summary(preds, targets, SimpleNamespace(index=_Index(spacings), num_classes=3),
                          ["liver", "kidney"])
    ref = np.array([monai_per_class(p, t, 3, s) for p, t, s in zip(preds, targets, spacings)])
    assert out["unit"] == "mm" and "MONAI" in out["convention"]
    assert out["per_class"]["liver"] == pytest.approx(ref[:, 0].mean(), rel=1e-5)
    assert out["per_class"]["kidney"] == pytest.approx(ref[:2, 1].mean(), rel=1e-5)
    assert out["volumes_scored"] == {"liver": 3, "kidney": 2}
    assert out["volumes_one_empty"] == {"liver": 0, "kidney": 1}
    assert out["mean"] == pytest.approx((out["per_class"]["liver"] + out["per_class"]["kidney"]) / 2)
    # one volume without a known spacing: every distance in pixels
    unknown = surface_summary(preds, targets, SimpleNamespace(index=_Index(spacings[:2] + [None]),
                                                              num_classes=3), ["liver", "kidney"])
    ref_px = np.array([monai_per_class(p, t, 3) for p, t in zip(preds, targets)])
    assert unknown["unit"] == "px"
    assert unknown["per_class"]["liver"] == pytest.approx(ref_px[:, 0].mean(), rel=1e-5)


# --------------------------------------------------------------------------- the report's table
def _seg_record(model: str, spleen: tuple[float, float], liver: tuple[float, float], unit: str | None = "mm"):
    from radbench_core.core.results import CellResult, Metric
    per_class = {"spleen": {"dice": spleen[0], "hd95": spleen[1]}, "liver": {"dice": liver[0], "hd95": liver[1]}}
    extra = {"per_class": per_class}
    if unit:
        extra["hd95"] = {"unit": unit, "per_class": {k: v["hd95"] for k, v in per_class.items()}}
    else:
        per_class = {k: {"dice": v["dice"]} for k, v in per_class.items()}
        extra = {"per_class": per_class}
    return CellResult(cell_id=f"{model}-amos-seg_unet@224", model=model, dataset="amos", protocol="seg_unet",
                      variant="224", task="segmentation", modality="ct", profile="t",
                      metrics={"dice_jaccard": Metric(0.5)}, weights="official", extra=extra)


def test_per_organ_table_puts_dice_and_hd95_side_by_side_lower_hd95_best(tmp_path) -> None:
    from radbench_core.report import build_report
    from radbench_core.report.clinical import clinical_tables
    from radbench_core.report.marks import PredictionStore
    from radbench_core.report.render import to_markdown
    recs = [_seg_record("dinov2_vitl14", (0.9, 4.25), (0.8, float("nan"))),
            _seg_record("mae_vitl16", (0.7, 2.5), (0.6, 12.0))]
    table = clinical_tables(recs, PredictionStore({}))["perorgan_amos"]
    assert [(c.group, c.label) for c in table.columns] == [
        ("spleen", "Dice"), ("spleen", "HD95 (mm)"), ("liver", "Dice"), ("liver", "HD95 (mm)")]
    assert [table.text(0, c, compare=False) for c in range(4)] == ["0.900", "4.250", "0.800", "—"]
    assert table.best_rows(0) == {0} and table.best_rows(1) == {1}       # HD95: lower is better
    assert "MONAI" in table.caption and table.title.startswith("Per-organ Dice and HD95, ")
    md = to_markdown(table)
    assert "HD95 (mm)" in md and "**2.500**" in md
    html = build_report(recs, tmp_path).read_text()
    assert "Per-organ Dice and HD95" in html and "HD95 (mm)" in html
    old = clinical_tables([_seg_record("mae_vitl16", (0.7, 2.5), (0.6, 12.0), unit=None)],
                          PredictionStore({}))["perorgan_amos"]
    assert [c.label for c in old.columns] == ["spleen", "liver"]     # records before HD95: Dice only
