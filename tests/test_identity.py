"""Issue 26 M3: a record's identity covers everything that changes its number; resume names what differs."""

from __future__ import annotations

from pathlib import Path

from radbench_core.run.identity import (differing_parts, identity_hash, identity_parts, identity_summary,
                                        resume_mismatch, weights_identity)

BASE = {"cell": "dinov2_vits14-nih-linear", "hparams": {"lr": 0.1}, "resolution": 224, "demo": False,
        "phantom_size": "tiny", "phantom": None, "options": "LoadOptions()"}


def test_defaults_keep_the_hash_of_records_made_before():
    assert identity_hash(identity_parts(BASE)) == identity_hash(BASE)
    assert identity_parts(BASE, seed=0, data=None, weights=None, switches={}) == BASE


def test_every_run_part_changes_the_hash_and_is_named():
    plain = identity_parts(BASE)
    variants = {"seed": dict(seed=7), "data": dict(data="/other 1234abcd"), "weights": dict(weights="/w/x.pth 9 1"),
                "switches": dict(switches={"compile": True})}
    for name, change in variants.items():
        other = identity_parts(BASE, **change)
        assert identity_hash(other) != identity_hash(plain), name
        assert differing_parts(identity_summary(plain), identity_summary(other)) == [name]


def test_resume_mismatch_is_one_line_naming_the_part(tmp_path: Path):
    recorded = identity_summary(identity_parts(BASE, data="/data/a 11"))
    planned = identity_parts(BASE, seed=7, data="/data/b 22")
    line = resume_mismatch(tmp_path / "x.json", recorded, planned)
    assert line == (f"{tmp_path / 'x.json'}: --radbench-resume: this record was made with seed 0 (recorded) "
                    "vs 7 (this run); data folder /data/a 11 (recorded) vs /data/b 22 (this run). Fix: resume "
                    "with the options of that run, or start a new run (without --radbench-resume), or "
                    "delete the record to recompute the cell.")
    assert "\n" not in line
    hp = dict(BASE, hparams={"lr": 0.2})
    assert "hyperparameters differ" in resume_mismatch("x", identity_summary(BASE), hp)
    assert "predates identity summaries" in resume_mismatch("x", None, BASE)


def test_a_replaced_weights_file_changes_the_weights_part(tmp_path: Path):
    """A variant no check names: same file name, new content (size) -> another identity."""
    path = tmp_path / "dinov2_vits14.safetensors"
    path.write_bytes(b"a" * 10)
    first = weights_identity("dinov2_vits14", tmp_path)
    assert first is not None and first.startswith(f"{path.resolve()} 10 ")
    path.write_bytes(b"b" * 11)
    assert weights_identity("dinov2_vits14", tmp_path) != first
    assert weights_identity("dinov2_vits14", tmp_path / "nothing") is None
