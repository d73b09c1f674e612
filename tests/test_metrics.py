import numpy as np
import pytest
import torch
from scipy.stats import energy_distance as scipy_energy_distance

from learnguide.core.metrics import class_metrics, energy_distance, median_bandwidth, mmd_rbf


def test_energy_distance_matches_scipy_in_1d():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 1, generator=g), 0.5 + 1.3 * torch.randn(411, 1, generator=g)
    ours = energy_distance(x, y)
    reference = scipy_energy_distance(x[:, 0].numpy(), y[:, 0].numpy()) ** 2  # scipy returns the square root
    assert ours == pytest.approx(reference, rel=1e-9)


def test_energy_distance_matches_direct_computation_in_d_dimensions():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(150, 5)), rng.normal(0.3, 1.0, size=(170, 5))

    def mean_dist(a, b):
        return np.mean(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1))

    direct = 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
    assert energy_distance(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(direct, rel=1e-9)


def test_energy_distance_is_zero_for_equal_sets_and_chunking_does_not_matter(monkeypatch):
    x = torch.randn(100, 3)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    y = torch.randn(90, 3) + 1
    full = energy_distance(x, y)
    monkeypatch.setattr("learnguide.core.metrics.CHUNK", 7)
    assert energy_distance(x, y) == pytest.approx(full, rel=1e-9)


def test_mmd_rbf_is_the_unbiased_estimator():
    rng = np.random.default_rng(2)
    x, y, h = rng.normal(size=(40, 2)), rng.normal(0.5, 1.0, size=(50, 2)), 0.8

    def k(a, b):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * h * h))

    kxx, kyy = k(x, x), k(y, y)
    direct = (
        (kxx.sum() - np.trace(kxx)) / (40 * 39) + (kyy.sum() - np.trace(kyy)) / (50 * 49) - 2 * k(x, y).mean()
    )
    assert mmd_rbf(torch.from_numpy(x), torch.from_numpy(y), h) == pytest.approx(direct, rel=1e-9)
    with pytest.raises(ValueError):
        mmd_rbf(torch.from_numpy(x), torch.from_numpy(y), 0.0)


def test_class_metrics_per_class_and_overall():
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(3).repeat_interleave(200)
    ref = torch.randn(600, 2, generator=g) + labels[:, None] * 3.0
    good = torch.randn(600, 2, generator=g) + labels[:, None] * 3.0
    swapped = (
        torch.randn(600, 2, generator=g) + labels.flip(0)[:, None] * 3.0
    )  # right marginal, wrong classes
    bw = median_bandwidth(ref)
    m_good, m_bad = (
        class_metrics(good, labels, ref, labels, bw),
        class_metrics(swapped, labels, ref, labels, bw),
    )
    assert set(m_good) == {"energy", "mmd", "energy_overall", "mmd_overall", "per_class"}
    assert sorted(m_good["per_class"]) == [0, 1, 2]
    assert m_good["energy"] == pytest.approx(np.mean([v["energy"] for v in m_good["per_class"].values()]))
    assert m_bad["energy"] > 20 * m_good["energy"]  # per-class metrics see the wrong conditionals...
    assert m_bad["energy_overall"] < 5 * m_good["energy_overall"] + 0.01  # ...which the overall one cannot
