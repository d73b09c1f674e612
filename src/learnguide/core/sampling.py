"""Guided DDIM-family sampling with a per-step, per-item guidance weight (docs/design.md §5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from learnguide.core.denoisers import Denoiser, conditional_and_null
from learnguide.core.guidance import GuidanceSchedule
from learnguide.core.schedules import Schedule, step_grid
from learnguide.core.transitions import ddim_step, guided_x0


def per_sample_noise(seeds: Sequence[int] | Tensor, shape: tuple[int, ...], draws: int) -> Tensor:
    """``draws`` standard normal tensors per sample, each from that sample's own seed: ``[draws, B, *shape]``.

    Sample i's noise depends only on ``seeds[i]``, so a sample does not depend on the batch it is drawn in.
    """
    seeds = [int(s) for s in seeds]
    noise = torch.empty(len(seeds), draws, *shape)
    for i, seed in enumerate(seeds):  # setup only: one call per sample, never per step
        noise[i] = torch.randn(draws, *shape, generator=torch.Generator().manual_seed(seed))
    return noise.transpose(0, 1)


def denoise_guided(denoiser: Denoiser, x_t: Tensor, t: Tensor, cond: Tensor, omega: Tensor) -> Tensor:
    """Guided x̂(x_t, c; ω) ``[B, ...]`` with the conditional and unconditional passes in one forward call.

    The unconditional pass is skipped when ω = 0 for every item of the batch.
    """
    if not bool(omega.any()):
        return denoiser(x_t, t, cond)
    x0_cond, x0_uncond = conditional_and_null(denoiser, x_t, t, cond)
    return guided_x0(x0_cond, x0_uncond, omega.to(x_t.dtype))


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    schedule: Schedule,
    guidance: GuidanceSchedule,
    cond: Tensor,
    shape: tuple[int, ...],
    steps: int = 20,
    churn: float = 0.0,
    seeds: Sequence[int] | Tensor | None = None,
    generator: torch.Generator | None = None,
    t_max: float = 0.99,
    grid: Tensor | None = None,
    progress: bool = False,
    bar: tqdm | None = None,
) -> Tensor:
    """Draw samples with guided DDIM over ``steps`` steps from t_N = ``t_max`` to t_0 = 0.

    Args:
        denoiser: the x̂ denoiser (see :mod:`learnguide.core.denoisers`).
        schedule: its noise schedule.
        guidance: any :class:`~.guidance.GuidanceSchedule`; ω is evaluated for every (step, item)
            once, before the loop, in the paper convention (ω = 0 is the conditional model).
        cond: conditions ``[B]`` (class ids) or ``[B, E]`` (embeddings), on the denoiser's device (the
            samples are made there; noise is drawn on the CPU from the seeds and moved).
        shape: shape of one sample (e.g. ``(2,)`` or ``(C, H, W)``).
        steps: number of denoiser steps N ≥ 1 (each costs one forward of 2B items, or B where ω = 0).
        churn: ε ∈ [0, 1] of the DDIM family; 0 is deterministic DDIM.
        seeds: one seed per sample ``[B]``; makes every sample independent of its batch. Without seeds,
            all noise is drawn from ``generator``.
        generator: random source when ``seeds`` is None.
        t_max: start time 1 − ζ.
        grid: an explicit decreasing time grid ``[N + 1]`` (e.g. a diffusers scheduler's, see
            :func:`~learnguide.integrations.diffusers_models.scheduler_grid`); replaces steps and t_max.
        progress: show a progress bar over the steps.
        bar: an open progress bar to advance by one per step instead (e.g. one over the steps of several
            batches); ``progress`` is then ignored.

    Returns:
        samples ``[B, *shape]`` at t = 0.
    """
    batch, device = cond.shape[0], cond.device
    if grid is not None:
        if grid.dim() != 1 or len(grid) < 2 or not bool((grid[1:] < grid[:-1]).all()):
            raise ValueError("grid must be a strictly decreasing 1-d tensor of at least 2 times")
        steps = len(grid) - 1
    else:
        grid = step_grid(steps, t_max)
    draws = steps + 1 if churn > 0 else 1
    if seeds is not None:
        if len(seeds) != batch:
            raise ValueError(f"got {len(seeds)} seeds for {batch} conditions")
        noise = per_sample_noise(seeds, shape, draws)
    else:
        noise = torch.randn(draws, batch, *shape, generator=generator)
    noise = noise.to(device)  # drawn on the CPU from the seeds: the same samples on every device
    omegas = guidance.omega_table(cond, grid).to(device)  # [N, B]
    x = noise[0]
    steps_bar = (
        bar if bar is not None else tqdm(total=steps, desc="sample", disable=not progress, leave=False)
    )
    for i in range(steps):
        t, s = grid[i : i + 1], grid[i + 1 : i + 2]  # [1]: the kernel's scalars broadcast over the batch
        x0_hat = denoise_guided(denoiser, x, t.float().expand(batch).to(device), cond, omegas[i])
        x = ddim_step(x, x0_hat, s, t, schedule, churn, noise[i + 1] if churn > 0 else None)
        steps_bar.update()
    if bar is None:
        steps_bar.close()
    return x
