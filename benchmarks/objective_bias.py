"""Where does the per-item self-consistency loss put its minimum, for a denoiser whose right ω is known?

The weakened exact denoiser x̂'_c = (1 − κ) x̂_c + κ x̂_∅ of the ring mixture becomes the exact conditional
denoiser at ω* = κ / (1 − κ) (docs/design.md §9). This script evaluates the per-item loss of §3 exactly (from
sufficient statistics of many items at fixed (s, t)) on a grid of constant ω, reports its argmin per (s, t)
and β, and also runs the 20-step sampler from the true p_t with ω = 0 and ω = ω* for the rest of the
trajectory, to show which ω the sampler actually needs there. Writes JSON.

    python benchmarks/objective_bias.py --out benchmarks/results/objective_bias.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from learnguide.core.denoisers import ExactMixtureDenoiser, WeakenedDenoiser
from learnguide.core.items import simulate_items
from learnguide.core.metrics import class_metrics, median_bandwidth
from learnguide.core.objectives import energy_loss_from_stats, pair_statistics
from learnguide.core.sampling import denoise_guided
from learnguide.core.schedules import VPCosine, step_grid
from learnguide.core.transitions import ddim_step
from learnguide.data.toy import ring_mixture


def loss_argmin(denoiser, mixture, s_val, t_val, beta, items, generator) -> dict:
    x0, c = mixture.sample_batch(items, generator)
    s = torch.full((items,), s_val, dtype=torch.float64)
    t = torch.full((items,), t_val, dtype=torch.float64)
    a, b, x_true, _, _ = simulate_items(denoiser, VPCosine(), x0, c, s, t, 4, 1.0, generator)
    stats = pair_statistics(a, b, x_true)
    omegas = torch.linspace(-1.0, 2.0, 61, dtype=torch.float64)
    losses = torch.stack(
        [
            energy_loss_from_stats(
                stats, torch.full((items,), float(w), dtype=torch.float64), 4, beta, 1.0
            ).mean()
            for w in omegas
        ]
    )
    return {
        "s": s_val,
        "t": t_val,
        "beta": beta,
        "argmin_omega": float(omegas[losses.argmin()]),
        "loss_at_0_minus_loss_at_omega_star": float(losses[20] - losses[(omegas - 2 / 3).abs().argmin()]),
    }


def rollout_from_true_marginal(denoiser, mixture, start, omega, n_per_class=2000) -> float:
    """Energy distance after sampling from exact p_t (t = grid[start]) to 0 with constant ``omega``."""
    grid, sch = step_grid(20), VPCosine()
    labels = torch.arange(4).repeat_interleave(n_per_class)
    g = torch.Generator().manual_seed(5)
    t0 = torch.full((len(labels),), float(grid[start]), dtype=torch.float64)
    x = sch.add_noise(
        mixture.sample(labels, g), t0, torch.randn(len(labels), 2, generator=g, dtype=torch.float64)
    )
    for i in range(start, 20):
        t, s = grid[i].expand(len(labels)), grid[i + 1].expand(len(labels))
        x = ddim_step(x, denoise_guided(denoiser, x, t, labels, torch.full((len(labels),), omega)), s, t, sch)
    ref = mixture.sample(labels, torch.Generator().manual_seed(123))
    return class_metrics(x, labels, ref, labels, median_bandwidth(ref), overall=False)["energy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/objective_bias.json")
    parser.add_argument("--items", type=int, default=20000)
    args = parser.parse_args()
    mixture = ring_mixture()
    denoiser = WeakenedDenoiser(ExactMixtureDenoiser(mixture, VPCosine()), kappa=0.4)
    g = torch.Generator().manual_seed(0)
    scans = [
        loss_argmin(denoiser, mixture, s, t, beta, args.items, g)
        for s, t in [(0.85, 0.95), (0.6, 0.7), (0.4, 0.5), (0.3, 0.35), (0.1, 0.15)]
        for beta in (1.0, 1.75)
    ]
    rollouts = [
        {
            "start_t": float(step_grid(20)[start]),
            "omega": w,
            "energy": rollout_from_true_marginal(denoiser, mixture, start, w),
        }
        for start in (10, 13)
        for w in (0.0, 2 / 3)
    ]
    results = {
        "kappa": 0.4,
        "omega_star": 2 / 3,
        "items": args.items,
        "loss_scans": scans,
        "rollouts": rollouts,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
