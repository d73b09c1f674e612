"""Noise schedules: α_t, σ_t, log-SNR and sampling step grids (docs/design.md §1).

Time t ∈ [0, 1]; t = 0 is data, t = 1 is noise. The forward marginal is x_t = α_t x_0 + σ_t ε.
Every function takes and returns tensors of the same shape as ``t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from learnguide.core.memory import FLOAT64, check_memory

LOG_SNR_CLAMP = 20.0
"""|λ_t| is clamped to this value where a network sees it (λ is ±∞ at the ends of some schedules)."""


@dataclass(frozen=True)
class Schedule:
    """Base class of a noise schedule; subclasses define α_t, σ_t and their time derivatives."""

    name = "base"

    def alpha(self, t: Tensor) -> Tensor:
        """Signal scale α_t, same shape as ``t``."""
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        """Noise scale σ_t, same shape as ``t``."""
        raise NotImplementedError

    def d_alpha(self, t: Tensor) -> Tensor:
        """Time derivative dα/dt, same shape as ``t``."""
        raise NotImplementedError

    def d_sigma(self, t: Tensor) -> Tensor:
        """Time derivative dσ/dt, same shape as ``t``."""
        raise NotImplementedError

    def log_snr(self, t: Tensor) -> Tensor:
        """λ_t = log(α_t² / σ_t²), clamped to ±``LOG_SNR_CLAMP`` so that it stays finite at t ∈ {0, 1}."""
        a, s = self.alpha(t), self.sigma(t)
        lam = 2.0 * (torch.log(a.clamp_min(1e-20)) - torch.log(s.clamp_min(1e-20)))
        return lam.clamp(-LOG_SNR_CLAMP, LOG_SNR_CLAMP)

    def add_noise(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = α_t x_0 + σ_t ε for x0, noise ``[B, ...]`` and t ``[B]``."""
        return expand_as(self.alpha(t), x0) * x0 + expand_as(self.sigma(t), x0) * noise

    def config(self) -> dict:
        """JSON-serialisable description; :func:`get_schedule` rebuilds the schedule from it."""
        return {"name": self.name}


@dataclass(frozen=True)
class VPCosine(Schedule):
    """Variance-preserving cosine schedule: α_t = cos(πt/2), σ_t = sin(πt/2)."""

    name = "vp-cosine"

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def d_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


@dataclass(frozen=True)
class VPLinear(Schedule):
    """Variance-preserving DDPM linear-β schedule in continuous time.

    β(t) = β_min + t (β_max − β_min); α_t = exp(−½ ∫₀ᵗ β) = exp(−¼ t² (β_max − β_min) − ½ t β_min),
    σ_t = sqrt(1 − α_t²). The defaults are the continuous limit of DDPM's β ∈ [1e-4, 0.02] over 1000 steps.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    name = "vp-linear"

    def __post_init__(self) -> None:
        for value in (self.beta_min, self.beta_max):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
                raise ValueError(f"beta_min and beta_max must be finite numbers >= 0, got {value!r:.40}")

    def _log_alpha(self, t: Tensor) -> Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(self._log_alpha(t))

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt((-torch.expm1(2.0 * self._log_alpha(t))).clamp_min(0.0))

    def d_alpha(self, t: Tensor) -> Tensor:
        beta_t = self.beta_min + t * (self.beta_max - self.beta_min)
        return -0.5 * beta_t * self.alpha(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        # σ dσ/dt = −α dα/dt because α² + σ² = 1.
        return -self.alpha(t) * self.d_alpha(t) / self.sigma(t).clamp_min(1e-20)

    def config(self) -> dict:
        return {"name": self.name, "beta_min": self.beta_min, "beta_max": self.beta_max}


@dataclass(frozen=True)
class RectifiedFlow(Schedule):
    """Rectified flow / linear interpolation: α_t = 1 − t, σ_t = t."""

    name = "rectified-flow"

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t.clone()

    def d_alpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


@dataclass(frozen=True)
class DiscreteVP(Schedule):
    """A discrete-time DDPM schedule (the ``alphas_cumprod`` ᾱ_k, k = 0 … T − 1, of a diffusers scheduler)
    in continuous time.

    Timestep k sits at t = (k + 1) / T and t = 0 is clean data (ᾱ = 1), so α_t² = ᾱ_k exactly at the
    scheduler's timesteps; between them log ᾱ is interpolated linearly. The network sees the timestep
    :meth:`timestep` = t·T − 1 (fractional between grid points). σ_t = sqrt(1 − α_t²).
    """

    alphas_cumprod: tuple[float, ...] = ()
    name = "discrete-vp"

    def __post_init__(self) -> None:
        values = tuple(float(a) for a in self.alphas_cumprod)
        if not values or not all(0.0 <= a <= 1.0 for a in values):
            raise ValueError("alphas_cumprod must be a non-empty sequence of values in [0, 1]")
        if any(b > a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError("alphas_cumprod must be non-increasing (timestep 0 is the least noisy)")
        object.__setattr__(self, "alphas_cumprod", values)

    @property
    def num_timesteps(self) -> int:
        """T, the number of discrete timesteps."""
        return len(self.alphas_cumprod)

    def timestep(self, t: Tensor) -> Tensor:
        """The network's (fractional) timestep t·T − 1 for continuous times ``t``."""
        return t * self.num_timesteps - 1.0

    def _segments(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """log ᾱ at t and its slope d log ᾱ / dt, by linear interpolation over the knots j / T, j = 0 … T."""
        knots = torch.tensor((1.0,) + self.alphas_cumprod, dtype=torch.float64, device=t.device)
        knots = knots.clamp_min(1e-30).log()
        j = (t.double() * self.num_timesteps).clamp(0.0, self.num_timesteps)
        lo = j.floor().clamp(max=self.num_timesteps - 1).long()
        slope = knots[lo + 1] - knots[lo]
        log_acp = knots[lo] + (j - lo) * slope
        return log_acp.to(t.dtype), (slope * self.num_timesteps).to(t.dtype)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(0.5 * self._segments(t)[0])

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt((-torch.expm1(self._segments(t)[0])).clamp_min(0.0))

    def d_alpha(self, t: Tensor) -> Tensor:
        log_acp, slope = self._segments(t)
        return 0.5 * torch.exp(0.5 * log_acp) * slope

    def d_sigma(self, t: Tensor) -> Tensor:
        # σ² = 1 − ᾱ, so dσ/dt = −ᾱ (d log ᾱ / dt) / (2σ).
        log_acp, slope = self._segments(t)
        return -torch.exp(log_acp) * slope / (2.0 * self.sigma(t).clamp_min(1e-20))

    def config(self) -> dict:
        return {"name": self.name, "alphas_cumprod": list(self.alphas_cumprod)}


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (VPCosine, VPLinear, RectifiedFlow, DiscreteVP)
}


def get_schedule(config: str | dict) -> Schedule:
    """A schedule from its name ("vp-cosine", "vp-linear", "rectified-flow") or its config dict."""
    if isinstance(config, str):
        config = {"name": config}
    if not isinstance(config, dict):
        raise ValueError(f"a schedule is a name or a config object with a 'name', got {config!r:.40}")
    params = dict(config)
    name = params.pop("name", None)
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r:.40}; choose one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[name](**params)
    except TypeError as err:  # a parameter the schedule does not have, or a value of the wrong type
        raise ValueError(f"schedule {name!r}: {err}") from None


def step_grid(steps: int, t_max: float = 0.99, t_min: float = 0.0) -> Tensor:
    """Sampling grid t_N = t_max > … > t_0 = t_min, uniform in t, as a float64 tensor ``[steps + 1]``.

    ``t_max = 1 − ζ`` keeps the first step away from pure noise where the log-SNR is −∞.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    check_memory((steps + 1) * FLOAT64, f"a grid of {steps} steps", "the step count (--steps)")
    return torch.linspace(t_max, t_min, steps + 1, dtype=torch.float64)


def expand_as(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-item vector ``[B]`` to ``[B, 1, …, 1]`` on x's device and dtype, so that it broadcasts
    against ``x [B, ...]`` (per-step scalars stay on the CPU in float64 until they meet the data)."""
    return v.reshape(v.shape + (1,) * (x.dim() - v.dim())).to(device=x.device, dtype=x.dtype)
