"""Self-consistency objectives: energy MMD between guided and true particles (docs/design.md §3, §3.1).

For one item with guided particles x̃_s^j(ω) = A_j + ω B_j and true particles x_s^k (j, k = 1..m):

    L_i(ω) = (1/m²) Σ_{j,k} ‖x̃_s^j − x_s^k‖^β − (λ/2) (1/(m(m−1))) Σ_{j≠k} ‖x̃_s^j − x̃_s^k‖^β   (paper eq. 9)

β ∈ (0, 2] is the distance exponent and λ ∈ [0, 1] the repulsion weight (β = 2, λ = 0 is the ℓ2 variant).
Because ω is shared by an item's particles, each distance is ‖u + ω v‖ and the item is described exactly by
three scalars (u·u, u·v, v·v) per particle pair: the *sufficient statistics* of §3.1. The online trainer and
transition banks both evaluate the loss from them through :func:`energy_loss_from_stats`.

The reward extension (Algorithm 4) adds γ_R · :func:`reward_loss`, −E[R(x̂_c + ωΔ, c)] on the one-step guided
clean prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Reward = Callable[[Tensor, Tensor], Tensor]
"""``R(x0 [B, ...], cond [B] or [B, ...]) -> [B]``, differentiable in x0; higher is better."""

DIST_EPS = 1e-12
"""Squared distances are clamped to at least this value so that ‖·‖^β stays differentiable at 0."""


def check_energy_params(beta: float, lam: float) -> None:
    """Raise ``ValueError`` unless β ∈ (0, 2] and λ ∈ [0, 1]."""
    if not 0.0 < beta <= 2.0:
        raise ValueError(f"--beta (β) must be in (0, 2], got {beta}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"--lam (repulsion λ) must be in [0, 1], got {lam}")


def repulsion_pairs(m: int) -> tuple[Tensor, Tensor]:
    """Index vectors ``(j, k)`` of the m(m−1)/2 unordered pairs j < k."""
    j, k = torch.triu_indices(m, m, offset=1)
    return j, k


def pair_statistics(a: Tensor, b: Tensor, x_true: Tensor) -> Tensor:
    """Sufficient statistics of items whose guided particles are A + ωB (docs/design.md §3.1).

    Args:
        a, b: affine parts of the guided particles ``[n, m, ...]``.
        x_true: true particles x_s ``[n, m, ...]``.

    Returns:
        ``[n, m² + m(m−1)/2, 3]`` float64: (u·u, u·v, v·v) for the m² attraction pairs (u = A_j − x_s^k,
        v = B_j; row-major in (j, k)) followed by the repulsion pairs j < k (u = A_j − A_k, v = B_j − B_k).
    """
    n, m = a.shape[:2]
    a, b, x = (y.reshape(n, m, -1).double() for y in (a, b, x_true))
    g_aa, g_ab, g_bb = a @ a.mT, a @ b.mT, b @ b.mT  # [n, m, m]; g_ab[j, k] = A_j · B_k
    g_ax, g_xx, g_xb = a @ x.mT, x @ x.mT, x @ b.mT
    d_aa, d_ab, d_bb, d_xx = (g.diagonal(dim1=1, dim2=2) for g in (g_aa, g_ab, g_bb, g_xx))  # [n, m]

    att_uu = d_aa[:, :, None] - 2.0 * g_ax + d_xx[:, None, :]  # [n, j, k]
    att_uv = d_ab[:, :, None] - g_xb.mT  # A_j·B_j − x_k·B_j
    att_vv = d_bb[:, :, None].expand(n, m, m)
    attraction = torch.stack([att_uu, att_uv, att_vv], dim=-1).reshape(n, m * m, 3)

    j, k = repulsion_pairs(m)
    rep_uu = d_aa[:, j] - 2.0 * g_aa[:, j, k] + d_aa[:, k]
    rep_uv = d_ab[:, j] - g_ab[:, j, k] - g_ab[:, k, j] + d_ab[:, k]
    rep_vv = d_bb[:, j] - 2.0 * g_bb[:, j, k] + d_bb[:, k]
    repulsion = torch.stack([rep_uu, rep_uv, rep_vv], dim=-1)
    return torch.cat([attraction, repulsion], dim=1)


def energy_loss_from_stats(
    stats: Tensor, omega: Tensor, m: int, beta: float = 1.75, lam: float = 1.0
) -> Tensor:
    """Per-item energy loss L_i(ω) ``[n]`` from sufficient statistics (paper eq. 9 via docs/design.md §3.1).

    ``stats``: ``[n, m² + m(m−1)/2, 3]`` from :func:`pair_statistics`; ``omega``: ``[n]`` (differentiable).
    """
    check_energy_params(beta, lam)
    if stats.shape[1] != m * m + m * (m - 1) // 2:
        raise ValueError(f"stats have {stats.shape[1]} pairs, expected {m * m + m * (m - 1) // 2} for m={m}")
    w = omega.to(stats.dtype)[:, None]
    sq = (stats[..., 0] + 2.0 * w * stats[..., 1] + w**2 * stats[..., 2]).clamp_min(DIST_EPS)
    dist = sq ** (0.5 * beta)  # [n, P]
    loss = dist[:, : m * m].mean(1)
    if lam > 0.0 and m > 1:
        loss = loss - 0.5 * lam * dist[:, m * m :].mean(1)
    return loss


def energy_loss_particles(x_guided: Tensor, x_true: Tensor, beta: float = 1.75, lam: float = 1.0) -> Tensor:
    """Per-item energy loss ``[n]`` computed directly from particles ``[n, m, ...]`` (eq. 9 as written)."""
    check_energy_params(beta, lam)
    n, m = x_guided.shape[:2]
    g, x = x_guided.reshape(n, m, -1), x_true.reshape(n, m, -1)
    att = (g[:, :, None] - x[:, None]).pow(2).sum(-1).clamp_min(DIST_EPS) ** (0.5 * beta)
    loss = att.mean((1, 2))
    if lam > 0.0 and m > 1:
        j, k = repulsion_pairs(m)
        rep = (g[:, j] - g[:, k]).pow(2).sum(-1).clamp_min(DIST_EPS) ** (0.5 * beta)
        loss = loss - 0.5 * lam * rep.mean(1)
    return loss


def marginal_energy_loss(
    x_guided: Tensor, x_true: Tensor, beta: float = 1.75, lam: float = 1.0, groups: int = 1
) -> Tensor:
    """Marginal variant (scalar): an energy loss between the pooled guided and pooled true particles of
    each of ``groups`` consecutive, equal blocks of items, averaged over the blocks.

    ``x_guided``, ``x_true``: ``[n, m, ...]`` with n divisible by ``groups``. With ``groups=1`` particles of
    different items (different x_0, c, s, t) are all compared with each other, which the paper reports as
    higher-variance than the per-item loss; with blocks of items that share (c, s, t) and differ only in
    x_0, each block compares the guided step from p(x_t | c) with p(x_s | c) — the class-conditional
    self-consistency the per-item loss only bounds.
    """
    n, m = x_guided.shape[:2]
    if groups < 1 or n % groups:
        raise ValueError(f"{n} items do not split into {groups} equal groups")
    per = n // groups * m
    return energy_loss_particles(
        x_guided.reshape(groups, per, -1), x_true.reshape(groups, per, -1), beta, lam
    ).mean()


def check_reward_weight(reward_weight: float, reward: object | None) -> None:
    """γ_R must be finite and ≥ 0, and a positive γ_R needs a reward."""
    if not math.isfinite(reward_weight) or reward_weight < 0.0:
        raise ValueError(f"reward weight --gamma (γ_R) must be a finite number >= 0, got {reward_weight}")
    if reward_weight > 0.0 and reward is None:
        raise ValueError(f"reward weight --gamma {reward_weight} > 0 needs a reward (--reward)")


@dataclass
class LossSettings:
    """The loss settings every ω fit shares, from a bank or online: the energy exponent ``beta`` β ∈ (0, 2],
    the repulsion ``lam`` λ ∈ [0, 1], the reward weight ``reward_weight`` γ_R ≥ 0 (Algorithm 4; 0 leaves the
    reward out) and the run's ``seed``."""

    beta: float = 1.75
    lam: float = 1.0
    reward_weight: float = 0.0
    seed: int = 0

    def check_loss(self, reward: object | None) -> None:
        """Raise ``ValueError`` naming the first invalid β, λ or γ_R (γ_R > 0 needs the ``reward``)."""
        check_energy_params(self.beta, self.lam)
        check_reward_weight(self.reward_weight, reward)


def reward_loss(reward: Reward, x0_cond: Tensor, delta: Tensor, omega: Tensor, cond: Tensor) -> Tensor:
    """−E[R(x̂(ω), c)] (scalar) over items and particles (Algorithm 4), x̂(ω) = x̂_c + ω Δ.

    Args:
        reward: ``R(x0 [B, ...], cond [B, ...]) -> [B]`` (higher is better; its parameters frozen).
        x0_cond: conditional clean predictions ``[n, m, ...]`` at the guided particles' x_t (constants).
        delta: guidance directions Δ = x̂_c − x̂_∅ ``[n, m, ...]`` (constants).
        omega: per-item ω ``[n]``; the only input the gradient reaches.
        cond: the items' conditions ``[n]`` or ``[n, ...]``.
    """
    n, m = x0_cond.shape[:2]
    weight = omega.reshape(n, 1, *([1] * (x0_cond.dim() - 2))).to(x0_cond.dtype)
    x0_guided = (x0_cond.detach() + weight * delta.detach()).flatten(0, 1)  # [n·m, ...]
    return -reward(x0_guided, cond.repeat_interleave(m, dim=0)).mean()
