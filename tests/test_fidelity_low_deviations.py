"""The audit's low-ranked differences, declared (issue 20): each recorded on the cells it touches only.

The rows are fixed deviations of config/fidelity.py (no switch): the study's value, its source, ours
and why are in docs/fidelity.md; here the scope of each, as the runner records it, and the study's
brain-tumour intensity rule against ours on one hand-made image.
"""

from __future__ import annotations

import numpy as np
import pytest

from radbench_core.config.fidelity import deviations_in_effect

LOW = {"auroc_scores_softmax", "brain_tumor_clip_low_percentile", "sarscov2_slice_draws_volume_scale",
       "nifti_canonical_orientation", "scratch_refit_cosine_length"}


@pytest.mark.parametrize("where, expected", [
    (("dinov2_vitl14", "brain_tumor", "linear"), {"auroc_scores_softmax", "brain_tumor_clip_low_percentile"}),
    (("dinov2_vitl14", "sarscov2", "finetune"), {"auroc_scores_softmax", "sarscov2_slice_draws_volume_scale"}),
    (("dinov2_vitl14", "sarscov2", "knn"), {"sarscov2_slice_draws_volume_scale"}),      # kNN votes, no logits
    (("dinov2_vitl14", "nih", "linear"), set()),                                        # multi-label: sigmoid
    (("dinov2_vitl14", "amos", "seg_unet"), {"nifti_canonical_orientation"}),
    (("dinov2_vitl14", "mc", "seg_unet"), set()),                                       # PNG, no NIfTI
    (("unet", "msd_heart", "scratch"), {"nifti_canonical_orientation", "scratch_refit_cosine_length"}),
])
def test_each_low_deviation_is_recorded_where_its_code_runs(where, expected):
    assert set(deviations_in_effect(*where, {})) & LOW == expected


def test_the_study_s_brain_tumour_rule_and_ours_differ_only_below_the_5th_percentile():
    from radbench_core.data.datasets.preprocess import window_mri
    image = np.arange(100, dtype=np.float64).reshape(10, 10)
    lo, hi = np.percentile(image, 5), np.percentile(image, 95)
    study = np.where(image <= hi, image, hi)                       # brain_tumor.py, verbatim
    study = np.where(study <= lo, 0.0, study)
    study = (study - study.min()) / (study.max() - study.min())    # the per-image min-max after it
    ours = window_mri(image)
    above = image > lo
    np.testing.assert_allclose(ours, (np.clip(image, lo, hi) - lo) / (hi - lo), atol=1e-6)
    assert np.all(study[~above] == 0) and np.all(ours[~above] == 0)
    assert np.all(study[above] >= ours[above] - 1e-6) and study[above].min() == pytest.approx(image[above].min() / hi)
    assert np.abs(study - ours).max() > 0.04               # the jump at the 5th percentile: 5 / 94.05


def test_the_data_and_device_reported_deviations_appear_only_when_reported():
    from radbench_core.config.fidelity import GPU_AUTOCAST
    assert "seg_resize_antialiased" in deviations_in_effect("dinov2_vitl14", "mc", "seg_unet", {})
    assert "seg_resize_antialiased" not in deviations_in_effect("dinov2_vitl14", "mc", "linear", {})
    for reported, on in (((), False), (("chexpert_small_release",), True)):
        assert ("chexpert_small_release" in deviations_in_effect("dinov2_vitl14", "chexpert", "linear", {},
                                                                  reported)) is on
    assert GPU_AUTOCAST not in deviations_in_effect("dinov2_vitl14", "nih", "linear", {})
    assert GPU_AUTOCAST in deviations_in_effect("dinov2_vitl14", "nih", "linear", {}, (GPU_AUTOCAST,))


def test_the_chexpert_loader_reports_the_small_release(tmp_path):
    from radbench_core.data.datasets import get_dataset
    from radbench_core.data.datasets.base import LoadOptions
    spec = get_dataset("chexpert")
    spec.write_phantom(tmp_path / spec.folder, size="tiny", seed=0)
    index = spec.index(tmp_path / spec.folder, LoadOptions())          # the phantom has test labels
    assert "chexpert_small_release" in index.deviations
    full = tmp_path / spec.folder / "CheXpert-v1.0"
    (tmp_path / spec.folder / "CheXpert-v1.0-small").rename(full)
    index = spec.index(tmp_path / spec.folder, LoadOptions())
    assert "chexpert_small_release" not in index.deviations
