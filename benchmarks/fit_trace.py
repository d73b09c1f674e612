"""How a learned_vs_tuned variant's fit moves: ω(t) and the loss after each optimiser step (issue 14).

Fits ``--variant`` of ``benchmarks/learned_vs_tuned.py`` on one checkpoint, optionally with its ω-network's
output map, start, learning rate, decay or iterate averaging replaced (``--output``, ``--init-omega``,
``--lr``, ``--lr-decay``, ``--average``), and records after each step the loss and the learned ω on the
25-step grid (class 0; a ``shared`` variant has one curve for all classes), and the ω the fit returns
(``returned``: the last step's, or the average of the last steps' weights with ``OnlineConfig.average``).
Answers "did the fit settle, or stop wherever its last step left it?" before any sample is scored. Writes
JSON (one entry per run, keyed by its settings).

    python benchmarks/fit_trace.py --checkpoint digits/well_trained --variant rollout-shared \
        --out benchmarks/results/fit_trace.json
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from learned_vs_tuned import STEPS, VARIANTS, variant_features, variant_network
from learnguide.core.guidance import OUTPUT_MAPS
from learnguide.core.online import train_omega_online
from learnguide.core.schedules import step_grid
from learnguide.data.images import load_dataset
from learnguide.images.denoisers import load_image_denoiser
from results_file import add_results


def trace(checkpoint: str, variant: str, work: Path, overrides: dict) -> dict:
    """Fit ``variant`` (with ``overrides`` of its output map, start, lr, decay and averaging) on
    ``checkpoint``; returns ``{"losses": [iterations], "omega": [iterations][25], "omega_t": [25],
    "warnings": [...]}``."""
    dataset = load_dataset(checkpoint.split("/")[0])
    denoiser = load_image_denoiser(f"checkpoints/{checkpoint}", data_id=dataset.fingerprint())
    spec = VARIANTS[variant]
    online = {k: v for k, v in overrides.items() if k in ("lr", "lr_decay", "average")}
    spec = replace(spec, online=replace(spec.online, **online))
    spec = replace(spec, **{k: v for k, v in overrides.items() if k in ("output", "init_omega")})
    net, grid = variant_network(dataset, denoiser, spec), step_grid(STEPS)
    omegas: list[list[float]] = []

    def curve() -> list[float]:  # the network's ω on the grid now (class 0)
        with torch.no_grad():
            return net.omega_table(torch.zeros(1, dtype=torch.long), grid)[:, 0].tolist()

    def on_step(iteration: int, loss: float) -> None:
        omegas.append(curve())
        first, last = omegas[-1][0], omegas[-1][-1]
        print(f"{iteration:3d} loss {loss:.4f} ω at t = 0.99 {first:.3f}, on the last step {last:.3f}")

    phi = variant_features(dataset, spec, work)
    data = dataset.data_sampler("train", balanced=spec.balanced)
    record = train_omega_online(
        net, denoiser, data, spec.online, progress=False, features=phi, on_step=on_step
    )
    final = curve()  # what the fit returns: the last step's weights, or their average (config.average)
    print(f"returned: ω at t = 0.99 {final[0]:.3f}, on the last step {final[-1]:.3f}")
    return {
        "losses": record.losses,
        "omega": omegas,
        "returned": final,
        "omega_t": grid[:-1].tolist(),
        "warnings": record.warnings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--output", choices=OUTPUT_MAPS)
    parser.add_argument("--init-omega", type=float)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lr-decay", choices=["constant", "cosine"])
    parser.add_argument("--average", type=float, help="fraction of the last steps whose weights are averaged")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_trace.json"))
    args = parser.parse_args()
    names = ("output", "init_omega", "lr", "lr_decay", "average")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    key = ":".join([args.checkpoint, args.variant, *(f"{k}={v}" for k, v in sorted(overrides.items()))])
    add_results(args.out, {key: trace(args.checkpoint, args.variant, args.work, overrides)})


if __name__ == "__main__":
    main()
