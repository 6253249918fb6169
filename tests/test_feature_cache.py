import json

import numpy as np
import pytest

from radbench_core.run.feature_cache import FeatureCache, cache_key


def features(seed=0):
    rng = np.random.default_rng(seed)
    return {s: {"cls": rng.normal(size=(5, 4, 8)).astype(np.float32),
                "patch_mean": rng.normal(size=(5, 8)).astype(np.float32)} for s in ("train", "test")}


def test_second_call_is_a_hit_without_compute(tmp_path):
    cache = FeatureCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return features()

    first = cache.get_or_compute({"model": "m"}, compute)
    second = cache.get_or_compute({"model": "m"}, compute)
    assert calls == [1] and (cache.hits, cache.misses) == (1, 1)
    for split in first:
        for kind in first[split]:
            assert second[split][kind].dtype == np.float16
            np.testing.assert_array_equal(first[split][kind], second[split][kind])
    np.testing.assert_allclose(second["train"]["cls"], features()["train"]["cls"], atol=2e-3)


def test_key_depends_on_content():
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_corrupt_entry_is_detected_and_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute({"model": "m"}, features)
    entry = cache.entry(cache_key({"model": "m"}))
    target = entry / "train.cls.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0xFF
    target.write_bytes(bytes(data))
    calls = []
    with pytest.warns(UserWarning, match="corrupt"):
        out = cache.get_or_compute({"model": "m"}, lambda: calls.append(1) or features())
    assert calls == [1]
    assert out["train"]["cls"].shape == (5, 4, 8)


def test_truncated_entry_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute({"model": "m"}, features)
    entry = cache.entry(cache_key({"model": "m"}))
    target = entry / "test.patch_mean.npy"
    target.write_bytes(target.read_bytes()[:40])
    with pytest.warns(UserWarning, match="corrupt"):
        cache.get_or_compute({"model": "m"}, features)
    meta = json.loads((entry / "meta.json").read_text())
    assert set(meta["files"]) == {"train.cls.npy", "train.patch_mean.npy", "test.cls.npy",
                                  "test.patch_mean.npy"}


def test_memory_is_n_times_d_times_two_bytes(tmp_path):
    cache = FeatureCache(tmp_path)
    n, d = 1000, 64
    out = cache.get_or_compute({"k": 1}, lambda: {"train": {"x": np.ones((n, d), np.float32)}})
    assert out["train"]["x"].nbytes == n * d * 2
