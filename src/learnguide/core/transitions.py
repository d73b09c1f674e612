"""The DDIM-family transition kernel with churn ε and the guided step in its affine form (docs/design.md §2).

With ε̂ = (x_t − α_t x̂_0)/σ_t and r = (α_t σ_s)/(α_s σ_t):

    k   = 1 − ε² (1 − r)
    x_s = α_s x̂_0 + σ_s (k ε̂ + sqrt(1 − k²) z),   z ~ N(0, I)

ε = 0 is deterministic DDIM (an Euler step for rectified flow); ε = 1 is the DDPM posterior q(x_s | x_t, x_0).
All functions take times ``s, t`` as per-item vectors ``[B]`` with s < t, and states ``[B, ...]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from learnguide.core.schedules import Schedule, expand_as


def guided_x0(x0_cond: Tensor, x0_uncond: Tensor, omega: Tensor) -> Tensor:
    """Guided clean prediction x̂(x_t, c; ω) = x̂_c + ω (x̂_c − x̂_∅)  (paper eq. 7; ω = 0 is conditional).

    ``x0_cond``, ``x0_uncond``: ``[B, ...]``; ``omega``: ``[B]`` in the paper convention (scale w = 1 + ω).
    """
    return x0_cond + expand_as(omega, x0_cond) * (x0_cond - x0_uncond)


def kernel_coefficients(schedule: Schedule, s: Tensor, t: Tensor, churn: float) -> tuple[Tensor, ...]:
    """Per-item scalars ``(α_s, σ_s, α_t, σ_t, k)`` of the step t → s, each ``[B]`` (float64)."""
    if not 0.0 <= churn <= 1.0:
        raise ValueError(f"churn must be in [0, 1], got {churn}")
    s64, t64 = s.double(), t.double()
    if bool((s64 >= t64).any()):
        raise ValueError("every step needs s < t (we denoise from t down to s)")
    a_s, sig_s = schedule.alpha(s64), schedule.sigma(s64)
    a_t, sig_t = schedule.alpha(t64), schedule.sigma(t64)
    r = (a_t * sig_s) / (a_s * sig_t)
    k = 1.0 - churn**2 * (1.0 - r)
    return a_s, sig_s, a_t, sig_t, k


def ddim_step(
    x_t: Tensor,
    x0_hat: Tensor,
    s: Tensor,
    t: Tensor,
    schedule: Schedule,
    churn: float = 0.0,
    noise: Tensor | None = None,
) -> Tensor:
    """One DDIM-family step from t to s given the clean prediction x̂_0 (docs/design.md §2).

    Args:
        x_t: current state ``[B, ...]``.
        x0_hat: clean-data prediction at (x_t, t) ``[B, ...]`` (already guided if guidance is wanted).
        s, t: target and current times ``[B]``, s < t.
        schedule: the noise schedule.
        churn: ε ∈ [0, 1]; 0 is deterministic DDIM, 1 is the DDPM posterior.
        noise: z ``[B, ...]``; required when ``churn > 0``.

    Returns:
        x_s ``[B, ...]``.
    """
    a_s, sig_s, a_t, sig_t, k = kernel_coefficients(schedule, s, t, churn)
    eps_hat = (x_t - expand_as(a_t, x_t) * x0_hat) / expand_as(sig_t, x_t)
    x_s = expand_as(a_s, x_t) * x0_hat + expand_as(sig_s * k, x_t) * eps_hat
    if churn > 0.0:
        if noise is None:
            raise ValueError("churn > 0 needs noise")
        x_s = x_s + expand_as(sig_s * torch.sqrt((1.0 - k**2).clamp_min(0.0)), x_t) * noise
    return x_s


def guidance_coefficient(schedule: Schedule, s: Tensor, t: Tensor, churn: float) -> Tensor:
    """b(s, t) ``[B]`` (float64) of the guided step written as x_s(ω) = A + ω b Δ (docs/design.md §2).

    A is :func:`ddim_step` on the conditional prediction x̂_c, Δ = x̂_c − x̂_∅ and b = α_s − k α_t σ_s/σ_t, for
    times s < t ``[B]`` and churn ε ∈ [0, 1].
    """
    a_s, sig_s, a_t, sig_t, k = kernel_coefficients(schedule, s, t, churn)
    return a_s - k * a_t * sig_s / sig_t
