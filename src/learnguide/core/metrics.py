"""Distances between sample sets: energy distance, RBF-kernel MMD and Fréchet distance, overall and per class.

All functions take sample sets ``x [n, ...]`` and ``y [k, ...]`` (flattened to vectors) and work in float64,
in chunks, so that tens of thousands of samples fit in memory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

CHUNK = 2048


def _pair_sum(x: Tensor, y: Tensor, fn: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Σ_{i,j} fn(‖x_i − y_j‖) over all pairs (fn = identity if None), in row chunks (float64 scalar)."""
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, x.shape[0], CHUNK):
        dist = torch.cdist(x[start : start + CHUNK], y)
        total += (dist if fn is None else fn(dist)).sum()
    return total


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).double()


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ between the empirical distributions of x and y.

    This is the V-statistic (expectations over the empirical measures, self-pairs included); in 1-D it is
    the square of ``scipy.stats.energy_distance``. It is ≥ 0 and 0 only for equal empirical measures.
    """
    x, y = _flat(x), _flat(y)
    exy = _pair_sum(x, y) / (x.shape[0] * y.shape[0])
    exx = _pair_sum(x, x) / x.shape[0] ** 2
    eyy = _pair_sum(y, y) / y.shape[0] ** 2
    return float(2.0 * exy - exx - eyy)


def median_bandwidth(x: Tensor, max_points: int = 2000) -> float:
    """Median pairwise distance of (up to ``max_points`` of) x: the usual RBF bandwidth heuristic."""
    x = _flat(x[:max_points])
    d = torch.pdist(x)
    return float(d.median())


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float) -> float:
    """Unbiased MMD² with the RBF kernel k(a, b) = exp(−‖a − b‖² / (2 h²)), h = ``bandwidth``."""
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    x, y = _flat(x), _flat(y)
    n, k = x.shape[0], y.shape[0]
    if n < 2 or k < 2:
        raise ValueError("the unbiased MMD needs at least 2 samples in each set")

    def kern(dist: Tensor) -> Tensor:
        return torch.exp(-dist.square() / (2.0 * bandwidth**2))

    kxx = (_pair_sum(x, x, kern) - n) / (n * (n - 1))  # the diagonal contributes k(a, a) = 1 per sample
    kyy = (_pair_sum(y, y, kern) - k) / (k * (k - 1))
    kxy = _pair_sum(x, y, kern) / (n * k)
    return float(kxx + kyy - 2.0 * kxy)


def feature_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[F]`` and covariance ``[F, F]`` (unbiased) in float64."""
    x = features.double()
    return x.mean(0), torch.cov(x.T)


def frechet_distance_from_moments(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """FD = |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2} (Heusel et al. 2017, eq. for FID).

    tr (Σ₁Σ₂)^{1/2} is the sum of square roots of the eigenvalues of Σ₁^{1/2} Σ₂ Σ₁^{1/2}, a symmetric PSD
    matrix, so a symmetric eigen-solver suffices (no general matrix square root).
    """
    vals, vecs = torch.linalg.eigh(cov1.double())
    root1 = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    inner = torch.linalg.eigvalsh(root1 @ cov2.double() @ root1).clamp_min(0)
    diff = mu1.double() - mu2.double()
    return float(diff @ diff + cov1.trace() + cov2.trace() - 2.0 * inner.sqrt().sum())


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, F]`` and ``[M, F]``."""
    return frechet_distance_from_moments(*feature_moments(features_a), *feature_moments(features_b))


def frechet_covariance_term(features_a: Tensor, features_b: Tensor) -> float:
    """tr Σ_a + tr Σ_b − 2 tr (Σ_a Σ_b)^{1/2}: the Fréchet distance between Gaussians fitted to ``[N, F]`` and
    ``[M, F]`` without its mean term |μ_a − μ_b|² (≥ 0; 0 for equal covariances)."""
    mu, cov = feature_moments(features_a)
    return frechet_distance_from_moments(mu, cov, mu, feature_moments(features_b)[1])


def class_metrics(
    samples: Tensor,
    labels: Tensor,
    reference: Tensor,
    reference_labels: Tensor,
    bandwidth: float,
    overall: bool = True,
) -> dict:
    """Energy distance and MMD² per class, their mean over classes, and (if ``overall``) over all samples.

    Returns ``{"energy": mean over classes, "mmd": mean over classes, "energy_overall": ..., "mmd_overall":
    ..., "per_class": {class: {"energy": ..., "mmd": ...}}}``. The per-class mean measures how well each
    conditional p(x | c) is matched, which is what guidance changes. The overall pair costs C² times the
    per-class ones; leave it out (``overall=False``) where only the per-class metrics are used.
    """
    per_class = {}
    for c in torch.unique(reference_labels).tolist():
        xs, ys = samples[labels == c], reference[reference_labels == c]
        if xs.shape[0] < 2:
            raise ValueError(f"class {c} has fewer than 2 samples")
        per_class[int(c)] = {"energy": energy_distance(xs, ys), "mmd": mmd_rbf(xs, ys, bandwidth)}
    out = {
        "energy": sum(v["energy"] for v in per_class.values()) / len(per_class),
        "mmd": sum(v["mmd"] for v in per_class.values()) / len(per_class),
        "per_class": per_class,
    }
    if overall:
        out["energy_overall"] = energy_distance(samples, reference)
        out["mmd_overall"] = mmd_rbf(samples, reference, bandwidth)
    return out
