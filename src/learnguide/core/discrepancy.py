"""Kernels for the self-consistency discrepancy between guided and true particles (docs/design.md §3.2).

For guided particles x̃_j(ω) and true particles y_k of one group (one item, or items sharing (c, s, t)), in
pixels or in a feature space φ, a kernel k gives the ω-dependent part of MMD²/2:

    L(ω) = (λ/2) · mean_{j≠k} k(x̃_j, x̃_k) − mean_{j,k} k(x̃_j, y_k)

With the energy kernel k(x, y) = −‖x − y‖^β this is the paper's eq. 9 exactly; λ = 1 makes it a proper MMD.
The RBF kernel exp(−‖x − y‖² / 2h²) and the inverse multiquadric (1 + ‖x − y‖² / h²)^(−1/2) average over
bandwidths h = scale · h_med, where h_med² is the median squared distance between the group's pooled particles
(the median heuristic, detached from the gradient). The polynomial kernel (x·y / D + 1)³ of D-dimensional
particles is KID's (Bińkowski et al. 2018): its MMD² compares the first three moments, as FID compares two,
and is estimated without bias from a batch. None of these has sufficient statistics outside pixels with the
energy kernel, so they are computed from the particles.

We write these ourselves: dcor (NumPy, no autograd) and geomloss (no β exponent, no λ repulsion, no batching
over groups) do not fit the shapes and gradients needed here; the tests check every kernel against a direct
float64 computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from learnguide.core.objectives import DIST_EPS, check_energy_params

KERNELS = ("energy", "rbf", "imq", "polynomial")

FeatureMap = Callable[[Tensor, Tensor], Tensor]
"""φ(x [B, ...], s [B]) -> [B, F]: a frozen map in which guided and true particles at time s are compared."""


@dataclass(frozen=True)
class KernelConfig:
    """A discrepancy kernel.

    Attributes:
        name: ``"energy"`` (−‖x − y‖^β), ``"rbf"`` (Gaussian), ``"imq"`` (inverse multiquadric) or
            ``"polynomial"`` ((x·y / D + 1)³, KID's).
        beta: the energy kernel's exponent β ∈ (0, 2].
        lam: repulsion weight λ ∈ [0, 1] (1: a proper MMD).
        scales: for rbf and imq, bandwidths as multiples of the median heuristic (their kernels are averaged).
    """

    name: str = "energy"
    beta: float = 1.75
    lam: float = 1.0
    scales: tuple[float, ...] = (0.5, 1.0, 2.0)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        if self.name not in KERNELS:
            raise ValueError(f"unknown kernel {self.name!r}; choose one of {KERNELS}")
        check_energy_params(self.beta, self.lam)
        if not self.scales or not all(math.isfinite(s) and s > 0 for s in self.scales):
            raise ValueError(f"kernel bandwidth scales must be finite and > 0, got {self.scales}")


def median_squared_distance(x: Tensor, y: Tensor) -> Tensor:
    """Median over the distinct pairs of each group's pooled particles ``[x; y]``: ``[G]``, no gradient."""
    pooled = torch.cat([x, y], dim=1).detach()
    j, k = torch.triu_indices(pooled.shape[1], pooled.shape[1], offset=1)
    return (pooled[:, j] - pooled[:, k]).pow(2).sum(-1).median(dim=1).values.clamp_min(DIST_EPS)


def kernel_values(config: KernelConfig, sq_dist: Tensor, h2: Tensor) -> Tensor:
    """k from squared distances ``[G, ...]``, with the groups' median squared distances ``h2 [G]`` (energy,
    rbf and imq; the polynomial kernel needs the particles themselves: :func:`pair_kernel`)."""
    if config.name == "polynomial":
        raise ValueError("the polynomial kernel is not a function of distances: use pair_kernel")
    if config.name == "energy":
        return -(sq_dist ** (0.5 * config.beta))
    h2 = h2.reshape((-1,) + (1,) * (sq_dist.dim() - 1))
    total = torch.zeros_like(sq_dist)
    for scale in config.scales:  # a handful of bandwidths; each term is batched over all pairs
        r = sq_dist / (scale**2 * h2)
        total = total + (torch.exp(-0.5 * r) if config.name == "rbf" else (1.0 + r).rsqrt())
    return total / len(config.scales)


def pair_kernel(config: KernelConfig, a: Tensor, b: Tensor, h2: Tensor) -> Tensor:
    """k(a, b) ``[G, ...]`` of particles ``a``, ``b`` ``[G, ..., D]`` paired row by row (broadcast), with the
    groups' median squared distances ``h2 [G]`` (used by rbf and imq only); squared distances are clamped at
    ``DIST_EPS``."""
    if config.name == "polynomial":  # KID's cubic kernel (module docstring)
        return ((a * b).sum(-1) / a.shape[-1] + 1.0) ** 3
    return kernel_values(config, (a - b).pow(2).sum(-1).clamp_min(DIST_EPS), h2)


def kernel_matrix(config: KernelConfig, a: Tensor, b: Tensor, h2: Tensor) -> Tensor:
    """k(a_j, b_k) ``[G, n, m]`` of every pair of particles ``a [G, n, D]`` and ``b [G, m, D]``."""
    return pair_kernel(config, a[:, :, None], b[:, None], h2)


def kernel_loss(
    x_guided: Tensor, x_true: Tensor, config: KernelConfig, labels: Tensor | None = None
) -> Tensor:
    """The self-consistency loss ``[G]`` of each group of guided particles ``x_guided [G, n, ...]`` against
    true particles ``x_true [G, m, ...]`` (module docstring); differentiable in ``x_guided``. With the
    guided particles' class ids ``labels [G, n]``, the repulsion's pairs are weighted by
    :func:`class_pair_weights` (a set stratified by class); None: every distinct pair counts equally."""
    g, t = x_guided.flatten(2), x_true.flatten(2)
    bandwidth = config.name in ("rbf", "imq")
    h2 = median_squared_distance(g, t) if bandwidth else g.new_ones(g.shape[0])
    attraction = kernel_matrix(config, g, t, h2).mean((1, 2))
    n = g.shape[1]
    if config.lam == 0.0 or n < 2:
        return -attraction
    if labels is not None:  # the whole [G, n, n] matrix, weighted by class
        weights = class_pair_weights(labels).to(g.dtype)
        repulsion = (weights * kernel_matrix(config, g, g, h2)).sum((1, 2))
    else:  # the n(n − 1)/2 distinct pairs only
        j, k = torch.triu_indices(n, n, offset=1)
        repulsion = pair_kernel(config, g[:, j], g[:, k], h2).mean(1)
    return 0.5 * config.lam * repulsion - attraction


def class_pair_weights(labels: Tensor) -> Tensor:
    """Weights ``[G, n, n]`` of the distinct pairs of each set of n items with class ids ``labels [G, n]``,
    under which a weighted mean of a pair function estimates its mean over two independent draws from the
    set's class mixture without bias (docs/design.md §3.4):

        w_jk = 1 / n²                        classes differ
        w_jk = n_c / ((n_c − 1) · n²)        both of class c (n_c items of it), j ≠ k;  w_jj = 0

    Each class pair (c, c') then weighs n_c·n_c' / n², as two independent draws do. The plain mean over
    distinct pairs gives a same-class pair (n_c − 1) / (n − 1) < n_c / n of the weight, which in a batch
    stratified by class under-prices a loss of within-class diversity. A class with one item has no
    same-class pair to estimate its share from; its 1/n² is left out and the weights rescaled to sum to 1."""
    same = labels[:, :, None] == labels[:, None, :]
    counts = same.sum(-1).clamp_min(2).double()  # [G, n]: n_c of each item's class (≥ 2: see above)
    n = labels.shape[1]
    ratio = (counts / (counts - 1))[:, :, None].expand(-1, -1, n)
    weights = torch.where(same, ratio, torch.ones_like(ratio)) * (1.0 - torch.eye(n, dtype=ratio.dtype))
    return weights / weights.sum((1, 2), keepdim=True)


def pixel_features(x: Tensor, s: Tensor) -> Tensor:
    """The identity feature map: particles ``[B, ...]`` flattened to ``[B, D]`` (the paper's pixel space)."""
    return x.flatten(1)


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance between the distinct rows of ``features [B, F]`` (B ≥ 2): a space's scale."""
    if features.shape[0] < 2:
        raise ValueError("a space's scale needs at least 2 samples")
    return float(torch.pdist(features.double()).mean())


def joint_features(parts: list[tuple[FeatureMap, float]]) -> FeatureMap:
    """The feature map φ(x, s) = [w_1 φ_1(x, s), …, w_n φ_n(x, s)] ``[B, ΣF_i]`` of weighted maps ``(φ_i,
    w_i)``: its squared distance is Σ w_i² ‖φ_i(x) − φ_i(y)‖², so with w_i = weight / (a space's
    :func:`mean_pairwise_distance` on data) each space counts by its weight whatever its units (docs/design.md
    §3.2)."""
    if not parts or not all(math.isfinite(w) and w > 0 for _, w in parts):
        weights = [w for _, w in parts]
        raise ValueError(f"a joint feature map needs maps with finite weights > 0, got {weights}")

    def phi(x: Tensor, s: Tensor) -> Tensor:
        return torch.cat([w * f(x, s).flatten(1) for f, w in parts], dim=1)

    return phi


def data_scaled_features(parts: list[tuple[FeatureMap, float]], x0: Tensor) -> FeatureMap:
    """:func:`joint_features` of maps ``(φ_i, weight_i)`` with w_i = weight_i / (φ_i's
    :func:`mean_pairwise_distance` on clean data ``x0 [B, ...]``, B ≥ 2, at s = 0): each space counts by its
    weight whatever its units."""
    s0 = x0.new_zeros(x0.shape[0])
    with torch.no_grad():
        scales = [mean_pairwise_distance(f(x0, s0).flatten(1)) for f, _ in parts]
    return joint_features([(f, w / scale) for (f, w), scale in zip(parts, scales, strict=True)])
