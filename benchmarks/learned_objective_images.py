"""Which learning objective makes the learned ω competitive on images? (issue 4, "what changes it")

Learns ω for one image checkpoint with several objectives and evaluates each ω-network exactly as
``learnguide experiment`` evaluates its learned ω (same evaluation seed sets, same classifier FD), so the
numbers sit next to the experiment's table. Variants:

- ``bank``: the transition bank + per-item energy fit (the experiment's default);
- ``online-energy``: Algorithm 1 with the per-item energy loss (eq. 9);
- ``online-marginal``: Algorithm 1 with the marginal variant (one energy distance across the batch);
- ``online-class-marginal``: Algorithm 1, pooled over groups of items that share (c, s, t).

    python benchmarks/learned_objective_images.py --dataset digits \
        --checkpoint checkpoints/digits/under_trained --classifier checkpoints/digits/classifier \
        --variants online-energy online-class-marginal --batch-size 256 --iterations 500 --particles 2 \
        --out benchmarks/results/learned_objective_digits.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from learnguide.apps.comparison import evaluate_over_sets
from learnguide.apps.experiment import ExperimentConfig
from learnguide.core.banks import BankConfig
from learnguide.core.denoisers import CountingDenoiser
from learnguide.core.learn import learn_omega
from learnguide.core.online import OnlineConfig
from learnguide.core.schedules import step_grid
from learnguide.data.images import load_dataset
from learnguide.images.classifier import load_classifier
from learnguide.images.denoisers import load_image_denoiser
from learnguide.images.evaluation import ImageScorer, classifier_reference, sample_set

VARIANTS = ("bank", "online-energy", "online-marginal", "online-class-marginal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--classifier", required=True, type=Path)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--eval-per-class", type=int, default=100)
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2000, help="online iterations")
    parser.add_argument("--batch-size", type=int, default=64, help="online items per iteration")
    parser.add_argument("--particles", type=int, default=4, help="online particles m per item")
    parser.add_argument("--group-size", type=int, default=8, help="items per class-marginal group")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-objective"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learned_objective.json"))
    args = parser.parse_args()

    config = ExperimentConfig(eval_per_class=args.eval_per_class, eval_seeds=args.eval_seeds)
    dataset = load_dataset(args.dataset)
    model = load_image_denoiser(args.checkpoint, data_id=dataset.fingerprint())
    denoiser = CountingDenoiser(model)
    classifier = load_classifier(args.classifier, data_id=dataset.fingerprint())
    reference = classifier_reference(dataset, classifier, args.classifier, args.work / "cache")
    k = dataset.num_classes
    eval_sets = [sample_set(k, config.eval_per_class, 100 + j) for j in range(config.eval_seeds)]  # as seed 0
    grid = step_grid(max(args.steps))
    report: dict = {
        "dataset": dataset.name,
        "checkpoint": str(args.checkpoint),
        "eval_n": len(eval_sets[0][0]),
        "eval_seeds": config.eval_seeds,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "variants": {},
    }
    for variant in args.variants:
        method, _, objective = variant.partition("-")
        online = OnlineConfig(
            iterations=args.iterations,
            batch_size=args.batch_size,
            particles=args.particles,
            group_size=args.group_size,
            objective=objective or "energy",
        )
        began = time.perf_counter()
        omega_net, learning = learn_omega(
            denoiser,
            model.schedule,
            dataset.data_sampler("train"),
            k,
            args.work / variant,
            method=method,
            bank=BankConfig(items=8192, shard_size=2048, batch_size=256),
            online=online,
        )
        learning["wall_seconds"] = time.perf_counter() - began
        table = omega_net.omega_table(torch.arange(k), grid)  # [N, K]
        entry: dict = {
            "learning": learning,
            "omega_t": grid[:-1].tolist(),
            "omega_mean_over_classes": table.mean(1).tolist(),
            "by_steps": {},
        }
        for steps in args.steps:
            scorer = ImageScorer(
                denoiser, classifier, reference, dataset.image_shape, steps, config.batch_size
            )
            entry["by_steps"][str(steps)] = evaluate_over_sets(scorer.score, omega_net, eval_sets)
            print(f"{variant}, {steps} steps: FD {entry['by_steps'][str(steps)]['fd']:.3f}", flush=True)
        report["variants"][variant] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
