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

With ``--trajectory`` it maps the trajectory-aware variants instead (issue 14), in every feature map
(pixels; the noisy classifier of ``--noisy-classifier``) and kernel (energy, rbf): for each constant policy
ω₀ of ``POLICIES`` it runs ``--per-class`` guided 25-step trajectories per class (DDIM) and reports

- on-policy (docs/design.md §3.3): per step, the ω that minimises that step's class-marginal loss from
  the policy's own states (averaged over bands of t); a policy is self-consistent where it equals ω₀;
- rollout over the whole trajectory (§3.4, K = 25): the class-marginal loss of the final samples against
  the class's data, as a function of ω₀; its argmin is what a full rollout fit aims at.

Compare both with the FD-optimal constant ω of RESULTS.md (0.5 on MNIST under_trained).

    python benchmarks/objective_landscape.py --trajectory --checkpoint checkpoints/mnist/under_trained \
        --dataset mnist --noisy-classifier runs/learned-vs-tuned/mnist-noisy-classifier \
        --out benchmarks/results/trajectory_landscape-mnist-under.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from learnguide.core.discrepancy import KernelConfig, kernel_loss
from learnguide.core.items import on_policy_items, simulate_items
from learnguide.core.objectives import energy_loss_particles
from learnguide.core.schedules import step_grid
from learnguide.data.images import load_dataset
from learnguide.images.classifier import frozen_features, load_classifier
from learnguide.images.denoisers import load_image_denoiser

TIMES = (0.95, 0.8, 0.65, 0.5, 0.35, 0.2)
OMEGAS = (-0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
POLICIES = (0.0, 0.25, 0.5, 1.0, 1.5)
BANDS = ((0.99, 0.7), (0.7, 0.4), (0.4, 0.0))  # bands of t for the on-policy argmin


def trajectory_landscape(args: argparse.Namespace, dataset, denoiser) -> dict:
    """The on-policy and full-rollout landscapes of the module docstring, per feature map and kernel."""
    grid, n = step_grid(25), args.per_class
    spaces = {"pixels": lambda x, s: x.flatten(1)}
    if args.noisy_classifier:
        spaces["noisy-classifier"] = frozen_features(load_classifier(args.noisy_classifier))
    kernels = {"energy": KernelConfig("energy", args.beta), "rbf": KernelConfig("rbf")}
    gen = torch.Generator().manual_seed(args.seed)
    report: dict = {"policies": list(POLICIES), "omegas": list(OMEGAS), "bands": BANDS, "spaces": {}}
    losses = {(f, k): {"rollout": [], "on_policy": []} for f in spaces for k in kernels}
    for w0 in POLICIES:
        step_curves = {key: torch.zeros(25, len(OMEGAS), dtype=torch.float64) for key in losses}
        final = {key: 0.0 for key in losses}
        for c in range(dataset.num_classes):
            pool = dataset.train_images[dataset.train_labels == c]
            x0 = pool[torch.randint(len(pool), (n,), generator=gen)]
            cond = torch.full((n,), c)

            def policy(c_, s_, t_, w0=w0):
                return torch.full((len(c_),), w0)

            items, s, _ = on_policy_items(denoiser, denoiser.schedule, policy, x0, cond, grid, 0.0, gen)
            a, b, y = (v[:, 0].reshape(25, n, *x0.shape[1:]) for v in items[:3])
            for (f, k), curve in step_curves.items():
                phi, kernel = spaces[f], kernels[k]
                with torch.no_grad():
                    true = torch.stack([phi(y[i], s[i * n : (i + 1) * n]) for i in range(25)])  # [25, n, F]
                    for j, w in enumerate(OMEGAS):
                        guided = torch.stack(
                            [phi(a[i] + w * b[i], s[i * n : (i + 1) * n]) for i in range(25)]
                        )
                        curve[:, j] += kernel_loss(guided, true, kernel).double()
                    last = torch.stack([phi(a[-1] + w0 * b[-1], s[-n:])])
                    final[(f, k)] += float(kernel_loss(last, true[-1:], kernel))
        for key in losses:
            t = grid[:-1]
            bands = [step_curves[key][(t <= hi) & (t > lo)].mean(0) for hi, lo in BANDS]
            losses[key]["on_policy"].append([OMEGAS[int(curve.argmin())] for curve in bands])
            losses[key]["rollout"].append(final[key] / dataset.num_classes)
        print(f"policy ω₀ = {w0}: " + "; ".join(
            f"{f}/{k}: on-policy argmin per band {losses[(f, k)]['on_policy'][-1]}, final loss "
            f"{losses[(f, k)]['rollout'][-1]:.4f}" for f, k in losses
        ), flush=True)  # fmt: skip
    for (f, k), rows in losses.items():
        rows["rollout_argmin"] = POLICIES[min(range(len(POLICIES)), key=rows["rollout"].__getitem__)]
        report["spaces"][f"{f}/{k}"] = rows
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--per-class", type=int, default=32, help="items per class and t")
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--beta", type=float, default=1.75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trajectory", action="store_true", help="map the on-policy and rollout variants")
    parser.add_argument("--noisy-classifier", type=Path, help="with --trajectory: also this feature map")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    denoiser = load_image_denoiser(args.checkpoint, data_id=dataset.fingerprint())
    if args.trajectory:
        began = time.perf_counter()
        report = {
            "args": {k: str(v) for k, v in vars(args).items()},
            **trajectory_landscape(args, dataset, denoiser),
        }
        report["seconds"] = time.perf_counter() - began
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        return
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
