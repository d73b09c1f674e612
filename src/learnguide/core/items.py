"""Self-consistency training items (docs/design.md §3): times, class groups and particle simulation.

An item is (x_0, c, s, t) with m true particles x_s ~ p(x_s | x_0) and m guided particles x̃_s(ω) = A + ωB
taken one guided step from independent x_t ~ p(x_t | x_0). Banks (:mod:`~learnguide.core.banks`) and online
learning (:mod:`~learnguide.core.online`) both draw their items here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from learnguide.core.denoisers import Denoiser, conditional_and_null
from learnguide.core.schedules import Schedule, expand_as
from learnguide.core.transitions import ddim_step, guidance_coefficient

# (n, generator) -> (x_0 [n, ...], conditions [n] or [n, E]): where training data come from
DataSampler = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]


@dataclass
class TimeSampling:
    """How training times are drawn (docs/design.md §3): s ~ U[s_min, 1 − ζ − δ], t − s ~ U[δ, 1 − ζ − s],
    and ε (``churn``) of the step's kernel (1 = DDPM posterior, as in the paper). Banks and online learning
    configs extend it."""

    s_min: float = 0.01
    zeta: float = 0.01
    delta: float = 0.1
    churn: float = 1.0

    def check_times(self) -> None:
        """Raise ``ValueError`` unless 0 ≤ s_min < 1 − ζ − δ (so s < t ≤ 1 − ζ can be drawn), ε ∈ [0, 1]."""
        s_min, zeta, delta = self.s_min, self.zeta, self.delta
        if not 0.0 <= s_min < 1.0 - zeta - delta:
            raise ValueError(f"need 0 <= s_min < 1 - zeta - delta; got {s_min=}, {zeta=}, {delta=}")
        if not 0.0 <= self.churn <= 1.0:
            raise ValueError(f"churn must be in [0, 1], got {self.churn}")

    def draw_times(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """:func:`sample_times` with these settings: ``(s, t)``, each ``[n]`` float64."""
        return sample_times(n, self.s_min, self.zeta, self.delta, generator)


def sample_times(
    n: int, s_min: float, zeta: float, delta: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Training times ``(s, t)``, each ``[n]`` float64: s ~ U[s_min, 1 − ζ − δ], t = s + U[δ, 1 − ζ − s]."""
    u1, u2 = torch.rand(2, n, generator=generator, dtype=torch.float64)
    s = s_min + u1 * (1.0 - zeta - delta - s_min)
    gap = delta + u2 * (1.0 - zeta - s - delta)
    return s, s + gap


def class_groups(x0: Tensor, cond: Tensor, group_size: int) -> tuple[Tensor, Tensor]:
    """Reorder a batch ``x0 [n, ...]``, class ids ``cond [n]`` into consecutive groups of ``group_size``
    items of one class (items that do not fill a group are dropped): ``(x0 [g·G, ...], cond [g·G])``."""
    if cond.dim() != 1:
        raise ValueError("the class-marginal objective groups items by class id; conditions must be [n] ids")
    order = torch.argsort(cond, stable=True)
    x0, cond = x0[order], cond[order]
    first = torch.searchsorted(cond, cond)  # index of each item's class block
    count = torch.searchsorted(cond, cond, right=True) - first
    keep = (torch.arange(len(cond)) - first) < (count // group_size) * group_size
    if not bool(keep.any()):
        raise ValueError(
            f"no class has {group_size} items in a batch of {len(cond)}: raise --batch-size (batch_size)"
        )
    return x0[keep], cond[keep]


class TransitionItems(NamedTuple):
    """Particles of n self-consistency items, each ``[n, m, ...]``.

    Guided particles are ``a + ω b``; ``x_true`` are the true particles; ``x0_cond`` and ``delta`` = x̂_c − x̂_∅
    are the conditional prediction and guidance direction at each guided particle's x_t (what a reward on
    the guided clean prediction x̂_c + ω Δ needs).
    """

    a: Tensor
    b: Tensor
    x_true: Tensor
    x0_cond: Tensor
    delta: Tensor


@torch.no_grad()
def simulate_items(
    denoiser: Denoiser,
    schedule: Schedule,
    x0: Tensor,
    cond: Tensor,
    s: Tensor,
    t: Tensor,
    particles: int,
    churn: float,
    generator: torch.Generator,
    noise: Tensor | None = None,
) -> TransitionItems:
    """Particles of n self-consistency items (:class:`TransitionItems`, each field ``[n, m, ...]``).

    ``x_true`` are m draws of x_s = α_s x_0 + σ_s ε; ``A + ωB`` are m guided steps t → s from independent
    x_t = α_t x_0 + σ_t ε' (docs/design.md §2). One denoiser forward of 2·n·m items (conditional and ∅
    together).
    ``noise`` ``[3, n·m, ...]`` (ε, ε', z) replaces the draw from ``generator`` (a share of a batch's noise).
    """
    n, m = x0.shape[0], particles
    x0_rep = x0.repeat_interleave(m, dim=0)  # [n·m, ...]
    s_rep, t_rep = s.repeat_interleave(m), t.repeat_interleave(m)
    cond_rep = cond.repeat_interleave(m, dim=0)
    if noise is None:
        noise = torch.randn((3,) + x0_rep.shape, generator=generator, dtype=x0.dtype)
    noise = noise.to(x0.device)
    x_true = schedule.add_noise(x0_rep, s_rep, noise[0])
    x_t = schedule.add_noise(x0_rep, t_rep, noise[1])
    a, b, x0_cond, delta = denoised_affine_step(
        denoiser, schedule, x_t, cond_rep, s_rep, t_rep, churn, noise[2]
    )
    return TransitionItems(*(y.reshape((n, m) + x0.shape[1:]) for y in (a, b, x_true, x0_cond, delta)))


def denoised_affine_step(
    denoiser: Denoiser,
    schedule: Schedule,
    x_t: Tensor,
    cond: Tensor,
    s: Tensor,
    t: Tensor,
    churn: float,
    noise: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One denoiser forward at ``x_t [B, ...]`` (conditional and ∅ in one call; ``cond`` is moved to x_t's
    device) and the guided step t → s in affine form: ``(A, B, x̂_c, Δ)``, each ``[B, ...]``, for times
    ``s, t [B]`` float64 and the churn noise z (docs/design.md §2)."""
    x0_cond, x0_uncond = conditional_and_null(denoiser, x_t, t.to(x_t.device, x_t.dtype), cond.to(x_t.device))
    delta = x0_cond - x0_uncond
    a = ddim_step(x_t, x0_cond, s, t, schedule, churn, noise)
    return a, expand_as(guidance_coefficient(schedule, s, t, churn), x_t) * delta, x0_cond, delta


@torch.no_grad()
def on_policy_items(
    denoiser: Denoiser,
    schedule: Schedule,
    omega: Callable[[Tensor, Tensor, Tensor], Tensor],
    x0: Tensor,
    cond: Tensor,
    grid: Tensor,
    churn: float,
    generator: torch.Generator,
) -> tuple[TransitionItems, Tensor, Tensor]:
    """Self-consistency items whose starts x_t are the guided sampler's own states (docs/design.md §3.3).

    One guided trajectory per data item, from x_{t_0} ~ N(0, I) down the decreasing ``grid [N + 1]``, each
    step taken with the current ``omega(cond, s, t) -> [n]`` (no gradient flows through earlier steps).
    Step i gives one item per trajectory: the guided particle A + ωB of the step t_i → t_{i+1}, and one true
    particle α_s x_0 + σ_s ε of that trajectory's own data item ``x0 [n, ...]`` (class ``cond [n]``, on the
    ω-network's device; the denoiser runs on x0's).

    Returns:
        ``(items, s, t)``: :class:`TransitionItems` with fields ``[N·n, 1, ...]``, step-major (items i·n …
        (i + 1)·n − 1 are step i, in the order of ``x0``), and their times ``s, t [N·n]`` float64.
    """
    n, steps, device = x0.shape[0], len(grid) - 1, x0.device
    x = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(device)
    fields: list[tuple[Tensor, ...]] = []
    for i in range(steps):  # the sampler's loop: each step needs the state the previous one produced
        t, s = grid[i].expand(n).double(), grid[i + 1].expand(n).double()
        z = torch.randn((2,) + x0.shape, generator=generator, dtype=x0.dtype).to(device)
        a, b, x0_cond, delta = denoised_affine_step(denoiser, schedule, x, cond, s, t, churn, z[0])
        fields.append((a, b, schedule.add_noise(x0, s, z[1]), x0_cond, delta))
        x = a + expand_as(omega(cond, s, t), a) * b
    items = TransitionItems(*(torch.cat(f)[:, None] for f in zip(*fields, strict=True)))
    return items, grid[1:].double().repeat_interleave(n), grid[:-1].double().repeat_interleave(n)


def guided_rollout(
    denoiser: Denoiser,
    schedule: Schedule,
    omega: Callable[[Tensor, Tensor, Tensor], Tensor],
    x_t: Tensor,
    cond: Tensor,
    times: Tensor,
    churn: float,
    noise: Tensor,
) -> Tensor:
    """K guided steps from ``x_t [B, ...]`` through the decreasing ``times [K + 1, B]`` (float64; t is
    times[0], s is times[K]), each A_k + ω(c, t_{k+1}, t_k)·B_k (docs/design.md §3.4): x̃_s ``[B, ...]``.

    Differentiable in ω through every step, including through the denoiser's inputs of the later steps
    (never into the denoiser's weights); each later step's denoiser call is checkpointed (recomputed in
    the backward pass). ``noise [K, B, ...]``: z of each step's churn. K = 1 is the paper's step A + ωB.
    """
    x = x_t
    for k in range(times.shape[0] - 1):
        t, s = times[k], times[k + 1]
        w = expand_as(omega(cond, s, t), x)

        def step(x: Tensor, w: Tensor, s: Tensor = s, t: Tensor = t, z: Tensor = noise[k]) -> Tensor:
            with torch.set_grad_enabled(x.requires_grad):  # the first step's x_t carries no gradient
                a, b, _, _ = denoised_affine_step(denoiser, schedule, x, cond, s, t, churn, z)
            return a + w * b

        x = checkpoint(step, x, w, use_reentrant=False) if k > 0 else step(x, w)
    return x


def holds_class_mix(cond: Tensor, more: Tensor, times: int) -> bool:
    """Whether class ids ``more`` hold each class ``times`` times as often as ``cond`` does (always True for
    embeddings, which are not checked): a reference set of another class mix than the compared samples' adds
    that mismatch to a pooled distance."""
    if cond.dtype.is_floating_point:
        return True
    k = int(torch.cat([cond, more]).max()) + 1
    return torch.equal(torch.bincount(more, minlength=k), times * torch.bincount(cond, minlength=k))
