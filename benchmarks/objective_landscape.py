"""Where do the self-consistency objectives put their minimum on real images? Loss against constant ω per t.

For one image checkpoint, at each start time t (step t → s = t − 0.1), draws ``--per-class`` training images
of every class and simulates one guided DDPM step with ``--particles`` particles each. The guided particles
are A + ωB, so one simulation gives the loss at every ω of the grid (common random numbers across ω). Per t it
reports, averaged over classes and ``--repeats`` fresh draws:

- the per-item energy loss (each item against q(x_s | x_0), what the bank fits);
- the class-marginal energy loss (all particles of a class pooled: the guided step from p(x_t | c) against
  p(x_s | c));

and the ω of the grid that minimises each. If a loss is lowest at ω = 0 for every t, a learned ω ≥ 0 is ≡ 0
by construction, whatever the optimiser does. Writes JSON.

    python benchmarks/objective_landscape.py --checkpoint checkpoints/fashion-mnist/under_trained \
        --dataset fashion-mnist --out benchmarks/results/objective_landscape-fashion-under.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from learnguide.core.items import simulate_items
from learnguide.core.objectives import energy_loss_particles
from learnguide.data.images import load_dataset
from learnguide.images.denoisers import load_image_denoiser

TIMES = (0.95, 0.8, 0.65, 0.5, 0.35, 0.2)
OMEGAS = (-0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--per-class", type=int, default=32, help="items per class and t")
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--beta", type=float, default=1.75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    denoiser = load_image_denoiser(args.checkpoint, data_id=dataset.fingerprint())
    omegas = torch.tensor(OMEGAS, dtype=torch.float32)
    gen = torch.Generator().manual_seed(args.seed)
    began, evals = time.perf_counter(), 0
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "omegas": list(OMEGAS), "t": {}}
    for t_value in TIMES:
        item_curve = torch.zeros(len(OMEGAS), dtype=torch.float64)
        class_curve = torch.zeros(len(OMEGAS), dtype=torch.float64)
        for _ in range(args.repeats):
            for k in range(dataset.num_classes):
                pool = dataset.train_images[dataset.train_labels == k]
                x0 = pool[torch.randint(len(pool), (args.per_class,), generator=gen)]
                cond = torch.full((args.per_class,), k)
                t = torch.full((args.per_class,), t_value, dtype=torch.float64)
                items = simulate_items(
                    denoiser, denoiser.schedule, x0, cond, t - 0.1, t, args.particles, 1.0, gen
                )
                evals += 2 * args.per_class * args.particles
                guided = items.a[None] + omegas.view(-1, 1, 1, 1, 1, 1) * items.b[None]  # [W, n, m, C, H, W]
                for w in range(len(OMEGAS)):
                    item_curve[w] += energy_loss_particles(guided[w], items.x_true, args.beta).mean().item()
                    pooled = guided[w].reshape(1, -1, *x0.shape[1:])
                    true = items.x_true.reshape(1, -1, *x0.shape[1:])
                    class_curve[w] += energy_loss_particles(pooled, true, args.beta).item()
        norm = args.repeats * dataset.num_classes
        item_curve, class_curve = item_curve / norm, class_curve / norm
        row = {
            "per_item": item_curve.tolist(),
            "class_marginal": class_curve.tolist(),
            "argmin_per_item": OMEGAS[int(item_curve.argmin())],
            "argmin_class_marginal": OMEGAS[int(class_curve.argmin())],
        }
        report["t"][str(t_value)] = row
        print(
            f"t={t_value}: argmin ω per-item {row['argmin_per_item']}, class-marginal "
            f"{row['argmin_class_marginal']}; class-marginal L(ω) − L(0): "
            + " ".join(
                f"{w}:{c:+.4f}"
                for w, c in zip(OMEGAS, (class_curve - class_curve[OMEGAS.index(0.0)]).tolist(), strict=True)
            ),
            flush=True,
        )
    report["seconds"], report["denoiser_evals"] = time.perf_counter() - began, evals
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({report['seconds']:.0f} s, {evals} evaluations)")


if __name__ == "__main__":
    main()
