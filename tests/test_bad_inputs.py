"""Every bad input gets one clear error: the file or option, what was expected, and the fix.

One test per row of docs/bad_inputs.md, each triggering the real error through the public API
(open_dataset, load_backbone, get_*, load_baseline, parse_tolerances, RunStore, FeatureCache, the
pytest plugin's options). The last test runs the plugin on a data folder and a weights folder with
bad files in them and shows that each bad input fails its own cell only: the other cells pass,
their records and results.csv are written, an earlier record in the run folder is untouched.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.base import LoadOptions
from radbench_core.core.errors import (BaselineError, ConfigError, DatasetError, DatasetMissing, RadbenchError,
                                  StorageError, WeightsError, WeightsMissing)
from radbench_core.run.feature_cache import FeatureCache, cache_key
from radbench_core.models.features import load_backbone
from radbench_core.gate.compare import load_baseline, parse_tolerances
from radbench_core.models.specs import get_model
from radbench_core.protocols import get_protocol
from radbench_core.core.results import CellResult, Metric, RunStore

from conftest import scratch_project

ROOT = Path(__file__).resolve().parent.parent


def explained(info: pytest.ExceptionInfo, where: str | Path, problem: str, fix: str) -> str:
    """The error is one ``<where>: <problem>. Fix: <fix>.`` line with each part naming what it should."""
    exc = info.value
    assert isinstance(exc, RadbenchError)
    assert str(where) in exc.where, (exc.where, where)
    assert problem in exc.problem, (exc.problem, problem)
    assert fix in exc.fix, (exc.fix, fix)
    message = str(exc)
    assert message == f"{exc.where}: {exc.problem.rstrip('.')}. Fix: {exc.fix.rstrip('.')}."
    assert "Traceback" not in message and "\n" not in message
    return message


def phantom(tmp_path: Path, dataset_id: str) -> Path:
    spec = get_dataset(dataset_id)
    root = tmp_path / spec.folder
    spec.write_phantom(root, "tiny", 0)
    return root


def edit_dataset_json(root: Path, edit) -> Path:
    path = root / "dataset.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    return path


def demo_state(model_id: str) -> dict[str, torch.Tensor]:
    backbone = load_backbone(model_id, demo=True, resolution=56)
    return {k: v.contiguous() for k, v in backbone.model.state_dict().items()}


def reload(model_id: str, weights_dir: Path):
    """load_backbone's real weights path, with the tiny demo architecture (as tests/test_weights.py)."""
    return load_backbone(model_id, demo=False, resolution=56, weights_dir=weights_dir,
                         arch_kwargs=get_model(model_id).demo_kwargs, hf_cache_dir=weights_dir)


def record(cell_id: str = "dinov2_vits14-nih-linear", value: float = 0.75) -> CellResult:
    return CellResult(cell_id=cell_id, model="dinov2_vits14", dataset="nih", protocol="linear", variant="",
                      task="classification", modality="xray", profile="demo",
                      metrics={"auroc": Metric(value, True, value - 0.1, value + 0.1)}, seed=0)


# -- data ----------------------------------------------------------------------------------------------

def test_corrupt_png(tmp_path):
    index = open_dataset(get_dataset("nih"), phantom(tmp_path, "nih"))
    victim = index.root / index.items[0].images[0]
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DatasetError) as info:
        index.load_slices(index.items[0])
    explained(info, victim, "cannot decode the image", "re-download")


def test_truncated_nii_gz(tmp_path):
    spec = get_dataset("msd_spleen")
    index = open_dataset(spec, phantom(tmp_path, "msd_spleen"))
    victim = index.root / index.items[0].images[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(DatasetError) as info:
        index.load_slices(index.items[0])
    explained(info, victim, "the voxel data cannot be decoded", "re-download")


def test_image_label_shape_mismatch(tmp_path):
    spec = get_dataset("msd_spleen")
    root = phantom(tmp_path, "msd_spleen")
    label = root / "labelsTr" / "spleen_1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 5), np.uint8), nib.load(str(label)).affine), str(label))
    with pytest.raises(DatasetError) as info:
        open_dataset(spec, root)
    message = explained(info, label, "label shape (S, H, W) = (5, 32, 32) does not match its image", "")
    assert str(root / "imagesTr" / "spleen_1.nii.gz") in message


def test_mask_values_outside_declared_classes(tmp_path):
    spec = get_dataset("msd_spleen")
    root = phantom(tmp_path, "msd_spleen")
    label = root / "labelsTr" / "spleen_1.nii.gz"
    old = nib.load(str(label))
    values = np.asarray(old.dataobj).copy()
    values[0, 0, 0] = 4
    nib.save(nib.Nifti1Image(values, old.affine), str(label))
    index = open_dataset(spec, root)
    item = next(it for it in index.items if it.key == "spleen_1")
    with pytest.raises(DatasetError) as info:
        index.load_mask(item)
    explained(info, label, "label values [4] are outside the declared 0..1", "")


def test_csv_label_outside_declared_set(tmp_path):
    root = phantom(tmp_path, "nih")
    csv = root / "Data_Entry_2017.csv"
    lines = csv.read_text().splitlines()
    first = lines[1].split(",")
    first[1] = "Covid19"
    lines[1] = ",".join(first)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(get_dataset("nih"), root)
    explained(info, csv, "'Covid19', outside the declared set", "")


def test_nan_and_inf_pixels(tmp_path):
    spec = get_dataset("msd_spleen")
    root = phantom(tmp_path, "msd_spleen")
    image = root / "imagesTr" / "spleen_1.nii.gz"
    old = nib.load(str(image))
    values = np.asarray(old.dataobj, dtype=np.float32).copy()
    values[1, 2, 3], values[2, 2, 2] = np.nan, np.inf
    nib.save(nib.Nifti1Image(values, old.affine), str(image))
    index = open_dataset(spec, root)
    item = next(it for it in index.items if it.key == "spleen_1")
    with pytest.raises(DatasetError) as info:
        index.load_slices(item)
    explained(info, image, f"2 of {values.size} values are not finite (1 NaN, 1 inf)", "")


def test_csv_missing_required_column(tmp_path):
    root = phantom(tmp_path, "chexpert")
    csv = root / "CheXpert-v1.0-small" / "train.csv"
    csv.write_text(csv.read_text().replace("Frontal/Lateral", "View", 1))
    with pytest.raises(DatasetError) as info:
        open_dataset(get_dataset("chexpert"), root)
    explained(info, csv, "required column(s) ['Frontal/Lateral'] not found", "")


def test_empty_split(tmp_path):
    root = phantom(tmp_path, "nih")
    (root / "test_list.txt").write_text("")
    with pytest.raises(DatasetError) as info:
        open_dataset(get_dataset("nih"), root)
    explained(info, root, "the 'test' split of NIH ChestX-ray14 is empty", "split file")


@pytest.mark.parametrize("entry", ["../outside.nii.gz", "./imagesTr/../../outside.nii.gz", "/etc/passwd"])
def test_dataset_json_path_escaping_the_folder(tmp_path, entry):
    spec = get_dataset("msd_spleen")
    root = phantom(tmp_path, "msd_spleen")
    path = edit_dataset_json(root, lambda meta: meta["training"][0].update(image=entry))
    with pytest.raises(DatasetError) as info:
        open_dataset(spec, root)
    message = explained(info, path, "training[0].image: the path", "")
    assert entry in message and "points outside the dataset folder" in message


@pytest.mark.parametrize("entry", ["../../etc/passwd", "/etc/passwd"])
def test_csv_path_escaping_the_folder(tmp_path, entry):
    root = phantom(tmp_path, "chexpert")
    csv = root / "CheXpert-v1.0-small" / "train.csv"
    lines = csv.read_text().splitlines()
    lines[1] = entry + lines[1][lines[1].index(","):]
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as info:
        open_dataset(get_dataset("chexpert"), root)
    explained(info, csv, f"the path {entry!r} is absolute or escapes the dataset folder",
              "restore the original metadata file")


def test_missing_dataset_folder_skips_with_download_hint(tmp_path):
    with pytest.raises(DatasetMissing) as info:
        open_dataset(get_dataset("amos"), tmp_path / "amos22")
    explained(info, tmp_path / "amos22", "AMOS 2022 (CT) was not found", "<data dir>/amos22/ holds dataset.json")


def test_malformed_published_split_file(tmp_path):
    root = phantom(tmp_path, "nih")
    split_file = tmp_path / "published.json"
    split_file.write_text(json.dumps({"train": ["not-an-image.png"], "val": [], "test": []}))
    with pytest.raises(DatasetError) as info:
        open_dataset(get_dataset("nih"), root, LoadOptions(split_file=str(split_file)))
    explained(info, split_file, "split 'train' lists the unknown item key 'not-an-image.png'", "")


# -- names ----------------------------------------------------------------------------------------------

def test_unknown_model_name():
    with pytest.raises(ConfigError) as info:
        load_backbone("dinov2_vits15", demo=True)
    explained(info, "model 'dinov2_vits15'", "unknown model id; valid ids: dinov2_vits14", "radbench list")


def test_unknown_dataset_name():
    with pytest.raises(ConfigError) as info:
        get_dataset("chestxray14")
    explained(info, "dataset 'chestxray14'", "unknown dataset id; valid ids: nih, chexpert",
              "use one of the listed ids (see `radbench list datasets`), or register yours")


def test_unknown_protocol_name():
    with pytest.raises(ConfigError) as info:
        get_protocol("lienar")
    explained(info, "protocol 'lienar'", "unknown protocol id; valid ids: knn, linear",
              "use one of the listed ids (see `radbench list protocols`), or register yours")


# -- weights --------------------------------------------------------------------------------------------

def test_weights_of_the_wrong_architecture(tmp_path):
    save_file(demo_state("resnet152"), tmp_path / "dinov2_vits14.safetensors")
    with pytest.raises(WeightsError) as info:
        reload("dinov2_vits14", tmp_path)
    explained(info, tmp_path / "dinov2_vits14.safetensors", "not a DINOv2 ViT-S/14", "use the DINOv2 ViT-S/14 weights")
    assert "unexpected keys (e.g. bn1." in info.value.problem


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_corrupt_weights_file(tmp_path, suffix):
    path = tmp_path / f"dinov2_vits14{suffix}"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(WeightsError) as info:
        reload("dinov2_vits14", tmp_path)
    explained(info, path, "cannot read the weights file", "download it again")


class _Payload:
    """Unpickling this would run a shell command: exactly what a hostile checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_checkpoint_with_an_arbitrary_object_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "resnet152.pth"
    torch.save({"state_dict": demo_state("resnet152"), "hook": _Payload(marker)}, path)
    with pytest.raises(WeightsError) as info:
        reload("resnet152", tmp_path)
    explained(info, path, "holds pickled objects other than tensors", "never unpickled with weights_only=False")
    assert "UnpicklingError" in info.value.problem
    assert not marker.exists()                               # the payload never ran


def test_missing_weights_skip_naming_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("RADBENCH_WEIGHTS", raising=False)
    with pytest.raises(WeightsMissing) as info:
        reload("dinov2_vits14", tmp_path)
    explained(info, f"weights dir {tmp_path}", "looked for dinov2_vits14.safetensors", "--radbench-weights")


# -- baselines and tolerances ---------------------------------------------------------------------------

def test_malformed_baseline_file(tmp_path):
    path = tmp_path / "demo.json"
    path.write_text('{"format": "radbench-baseline", "version": 1, "profile": "demo"')
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    explained(info, path, "not valid JSON", "regenerate it with --radbench-update-baseline")


def test_bad_fail_expression():
    with pytest.raises(BaselineError) as info:
        parse_tolerances("auroc=0.01")
    explained(info, "--radbench-fail", "missing ':' between metric and tolerance in 'auroc=0.01'",
              'write e.g. --radbench-fail "auroc:0.01')


# -- results storage ------------------------------------------------------------------------------------

def test_unwritable_results_directory_not_a_folder(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    store = RunStore(blocker / "run-1")
    with pytest.raises(StorageError) as info:
        store.write_cell(record())
    explained(info, blocker / "run-1" / "cells", "write failed (Not a directory)", "check the disk and the path")


def test_unwritable_results_directory_permission_denied(tmp_path, monkeypatch):
    # root ignores file modes, so refuse the temporary file the way a read-only folder would
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    store = RunStore(tmp_path / "run-1")
    with pytest.raises(StorageError) as info:
        store.write_cell(record())
    explained(info, tmp_path / "run-1" / "cells", "cannot write here (Permission denied)",
              "choose a writable results directory with --radbench-results-dir")


def test_full_disk_while_writing_keeps_the_old_record(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "run-1")
    path = store.write_cell(record(value=0.75))
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StorageError) as info:
        store.write_cell(record(value=0.9))
    monkeypatch.undo()
    explained(info, path, "the disk is full; nothing was written and earlier results are intact",
              "--radbench-resume")
    assert path.read_bytes() == before
    assert sorted(p.name for p in store.cells_dir.iterdir()) == [path.name]   # no temporary left
    assert store.read_cell(record().cell_id).metrics["auroc"].value == 0.75


def test_cell_record_with_a_wrong_schema_version(tmp_path):
    store = RunStore(tmp_path / "run-1")
    path = store.write_cell(record())
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(StorageError) as info:
        store.load_cells()
    explained(info, path, "not a radbench cell record (record schema_version 99, this radbench reads 1)",
              "delete the file and rerun that cell with --radbench-resume")


def test_torn_cell_record(tmp_path):
    store = RunStore(tmp_path / "run-1")
    path = store.write_cell(record())
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(StorageError) as info:
        store.read_cell(record().cell_id)
    explained(info, path, "not a radbench cell record", "rerun that cell with --radbench-resume")


def test_corrupt_feature_cache_entry_is_reported_and_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    good = {"train": {"cls": np.arange(24, dtype=np.float32).reshape(3, 2, 4)}}
    cache.get_or_compute({"model": "m"}, lambda: good)
    victim = cache.entry(cache_key({"model": "m"})) / "train.cls.npy"
    victim.write_bytes(victim.read_bytes()[:-8] + b"\xff" * 8)
    calls = []
    with pytest.warns(UserWarning) as caught:
        out = cache.get_or_compute({"model": "m"}, lambda: calls.append(1) or good)
    message = str(caught[0].message)
    assert str(victim.parent) in message and "checksum mismatch" in message and "recomputing" in message
    assert calls == [1]
    np.testing.assert_array_equal(out["train"]["cls"], good["train"]["cls"])


# -- plugin options (usage errors, before any cell runs) --------------------------------------------------

TINY_PROFILE = '''
from radbench_core.config.profiles import Grid, Profile, _hparams
PROFILE = Profile(name="tiny", description="bad-input checks", demo={demo},
                  grids=(Grid({models}, {datasets}, ("knn",)),), hparams=_hparams(paper=False),
                  cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)
'''


@pytest.fixture
def project(pytester):
    scratch_project(pytester, pytester.path / "cache")
    pytester.makepyfile(tiny_profile=TINY_PROFILE.format(demo=True, models=("dinov2_vits14",),
                                                         datasets=("nih",)))
    return pytester


def usage_error(project, *args) -> str:
    """Option parsing fails before collection: exit code 4 and the message, no cell ran."""
    result = project.runpytest_inprocess("benchmarks", *project.base_args, "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines[-5:]
    assert not (project.path / "runs").exists()
    return "\n".join(result.errlines)


@pytest.mark.parametrize("args, expected", [
    (("--radbench-profile=nonsense",),
     "--radbench-profile: unknown profile 'nonsense'. Fix: use one of demo, smoke, paper, sound, full, frontier or a .py profile file"),
    (("--radbench-profile=tiny_profile.py", "--radbench-fail=auroc:-1"),
     "--radbench-fail: a negative tolerance in 'auroc:-1'"),
    (("--radbench-profile=tiny_profile.py", "--radbench-shard=3/2"),
     "--radbench-shard: '3/2': need 1 <= i <= N and N >= 1 (shards are 1-based). Fix: use one of 1/2 ... 2/2."),
    (("--radbench-profile=tiny_profile.py", "--radbench-shard=half"),
     "--radbench-shard: 'half' is not of the form i/N"),
    (("--radbench-profile=tiny_profile.py", "--radbench-seed=-4"),
     "--radbench-seed: expected an integer >= 0 and <= 4294967295, got '-4'"),
    (("--radbench-profile=tiny_profile.py", "--radbench-seed=abc"),
     "--radbench-seed: expected an integer >= 0 and <= 4294967295, got 'abc'"),
    (("--radbench-profile=tiny_profile.py", "--radbench-seed=99999999999999999999"),
     "--radbench-seed: expected an integer >= 0 and <= 4294967295, got '99999999999999999999'. Fix:"),
    (("--radbench-profile=tiny_profile.py", "--radbench-device=cuda"),
     "--radbench-device: cuda was asked for but no CUDA GPU is visible (torch.cuda.is_available() is "
     "False). Fix: pass --radbench-device=cpu"),
    (("--radbench-profile=tiny_profile.py", "--radbench-device=cuda:7"),
     "--radbench-device: cuda:7 was asked for but no CUDA GPU is visible"),
    (("--radbench-profile=tiny_profile.py", "--radbench-baseline=b.json", "--radbench-fail=auroc:0.01",
      "--radbench-update-baseline"),
     "--radbench-update-baseline: with --radbench-fail the tolerances would be ignored"),
    (("--radbench-profile=tiny_profile.py", "--radbench-device=tpu"),
     "--radbench-device: expected cpu, cuda or cuda:N, got 'tpu'"),
    (("--radbench-profile=tiny_profile.py", "--radbench-resume=no-such-run"),
     "--radbench-resume: no run folder"),
    (("--radbench-profile=tiny_profile.py", "--radbench-update-baseline"),
     "--radbench-update-baseline needs --radbench-baseline FILE to write"),
], ids=["profile", "fail", "shard-range", "shard-form", "seed-negative", "seed-text", "seed-huge",
        "device-no-gpu", "device-index-no-gpu", "update-baseline-and-fail", "device", "resume",
        "update-baseline"])
def test_bad_plugin_option_is_a_usage_error(project, args, expected):
    assert expected in usage_error(project, *args)


def test_device_problem_names_the_visible_gpus():
    from fixtures.options import device_problem
    assert device_problem("cuda:7", True, 2) == (
        "--radbench-device: cuda:7: only 2 GPU(s) are visible (cuda:0 .. cuda:1). Fix: pass a number "
        "below 2, or check CUDA_VISIBLE_DEVICES")
    assert device_problem("cuda:1", True, 2) is None and device_problem("cuda", True, 1) is None
    assert device_problem("cpu", False, 0) is None and device_problem(None, False, 0) is None
    assert "must be an integer" in device_problem("cuda:x", True, 1)
    assert "no CUDA GPU is visible" in device_problem("cuda", False, 0)


@pytest.mark.parametrize("args", [("--radbench-seed=-4",), ("--radbench-device=tpu",),
                                  ("--radbench-update-baseline",)])
def test_every_usage_error_says_the_fix(project, args):
    assert "Fix:" in usage_error(project, "--radbench-profile=tiny_profile.py", *args)


def test_unknown_model_in_a_profile_stops_collection_naming_it(project):
    project.makepyfile(bad_profile=TINY_PROFILE.format(demo=True, models=("dinov2_vits15",), datasets=("nih",)))
    result = project.runpytest_inprocess("benchmarks", *project.base_args, "--collect-only",
                                         "--radbench-profile=bad_profile.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR          # checked at start-up, before collection
    assert not (project.path / "runs" / "cells").exists()
    output = "\n".join(result.outlines + result.errlines)
    assert "model 'dinov2_vits15': unknown model id; valid ids: dinov2_vits14" in output
    assert "Fix: use one of the listed ids" in output


@pytest.mark.parametrize("case", ["unknown-model", "unwritable-results"])
def test_profile_and_results_folder_are_checked_at_start_up(project, case):
    args = ["--radbench-profile=tiny_profile.py"]
    if case == "unknown-model":
        project.makepyfile(bad_profile=TINY_PROFILE.format(demo=True, models=("dinov2_vits15",),
                                                           datasets=("nih",)))
        args = ["--radbench-profile=bad_profile.py"]
        expected = "model 'dinov2_vits15': unknown model id"
    else:
        (project.path / "blocker").write_text("a file, not a folder")
        args.append(f"--radbench-results-dir={project.path / 'blocker' / 'runs'}")
        expected = "--radbench-results-dir: cannot write"
    result = project.runpytest_inprocess("benchmarks", *project.base_args, *args, "-k", "no-such-cell")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in "\n".join(result.errlines)


# -- a bad input fails its own cell only -----------------------------------------------------------------

def test_bad_inputs_fail_their_cell_only_and_keep_stored_results(project, tmp_path):
    """Real (non-demo) run: good + corrupt data, good + wrong-architecture + corrupt weights."""
    from radbench_core.models.architectures import create_architecture, strip_unused_parts
    data, weights = tmp_path / "data", tmp_path / "weights"
    phantom(data, "nih")
    chexpert = phantom(data, "chexpert")
    victim = next((chexpert / "CheXpert-v1.0-small" / "train").rglob("*.jpg"))
    victim.write_bytes(b"\xff\xd8 this is not a jpeg")
    weights.mkdir()
    spec = get_model("dinov2_vits14")
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in strip_unused_parts(spec, create_architecture(spec))
               .state_dict().items()}, weights / "dinov2_vits14.safetensors")
    os.link(weights / "dinov2_vits14.safetensors", weights / "densenet201.safetensors")   # wrong arch
    (weights / "resnet152.safetensors").write_bytes(b"\x00" * 64)                         # corrupt
    project.makepyfile(real_profile=TINY_PROFILE.format(
        demo=False, models=("dinov2_vits14", "densenet201", "resnet152"), datasets=("nih", "chexpert")))
    run_dir = project.path / "runs" / "run-1"
    earlier = RunStore(run_dir).write_cell(record("vgg19-nih-linear"))
    earlier_bytes = earlier.read_bytes()

    result = project.runpytest_subprocess(
        "benchmarks", *project.base_args, "--radbench-profile=real_profile.py", f"--radbench-data-dir={data}",
        f"--radbench-weights={weights}", f"--radbench-run-dir={run_dir}", timeout=600)
    result.assert_outcomes(passed=1, failed=5, skipped=1)   # skipped: no segmentation cells
    out = "\n".join(result.outlines)
    assert f"{victim}: cannot decode the image" in out
    assert f"{weights / 'densenet201.safetensors'}: not a DenseNet201 (densenet201) checkpoint" in out
    assert f"{weights / 'resnet152.safetensors'}: cannot read the weights file" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    stored = {r.cell_id: r for r in RunStore(run_dir).load_cells()}
    assert sorted(stored) == ["dinov2_vits14-nih-knn", "vgg19-nih-linear"]
    assert earlier.read_bytes() == earlier_bytes
    assert 0.0 <= stored["dinov2_vits14-nih-knn"].metrics["auroc"].value <= 1.0
    assert str(weights / "dinov2_vits14.safetensors") in stored["dinov2_vits14-nih-knn"].weights
    csv = (run_dir / "results.csv").read_text()
    assert "dinov2_vits14-nih-knn" in csv and "chexpert" not in csv
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["outcomes"] == {"passed": 1, "resumed": 0, "failed": 5, "skipped": 1}
    assert manifest["interrupted"] is False
    assert len(manifest["failed_cells"]) == 5                       # issue 22: and in the HTML report
    assert any("cannot decode the image" in r for r in manifest["failed_cells"].values())
    html = (run_dir / "index.html").read_text()
    assert "Failed cells (5)" in html and "not a DenseNet201 (densenet201) checkpoint" in html


def test_a_profile_whose_cells_are_all_inapplicable_is_a_usage_error(project):
    """Issue 26: it ran nothing and exited 0 without a word."""
    project.makepyfile(seg_knn=TINY_PROFILE.format(demo=True, models=("dinov2_vits14",), datasets=("mc",)))
    message = usage_error(project, "--radbench-profile=seg_knn.py")
    assert ("--radbench-profile: profile 'tiny' has no applicable cell: all 1 combinations of its grids "
            "are inapplicable (e.g. dinov2_vits14-mc-knn), so nothing would run. Fix: pair") in message


def test_a_grid_given_strings_names_the_string_not_a_letter():
    from radbench_core.config.profiles import Grid
    with pytest.raises(ConfigError) as info:
        Grid("dinov2_vits14", ("nih",), ("knn",))
    assert str(info.value) == ("Grid(models=...): 'dinov2_vits14' is a string, so its letters would be read "
                               "as models. Fix: write a tuple, e.g. Grid(models=('dinov2_vits14',)).")
