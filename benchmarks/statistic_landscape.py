"""Which judge-free statistic ranks constants *and* shapes as the judges do? (issue 14 diagnostic)

The shape search (``learned_vs_tuned.py --variant shape-search``) keeps the increasing cosine schedule on
Fashion-MNIST well_trained, but at ω_max = 4, beyond the judges' 2: the line search's statistic (pooled energy
distance, β = 1.75, clean feature classifier) keeps falling with late guidance that the judges' Fréchet
distance punishes. This draws the final samples of the line search (same settings and seed: 640 from the same
noise, 64 per class) once per schedule (``--constants``, the increasing cosine schedule at ``--cosine``
scales, the linear one at ``--linear``) and scores the *same* samples by:

- judge-free statistics a search could minimise, in the clean feature classifier's pooled features against
  the search's 2,560 balanced training images: the pooled energy distance with β = 1.75 (the search's) and
  β = 1, and the Fréchet distance;
- the two judges (evaluation and held-out classifier), the Fréchet distance against the test split: a
  diagnosis only, never a choice (640 samples, so their FD is higher than RESULTS.md's; its ranking is what
  matters).

Writes JSON; prints the table and each statistic's argmin.

    PYTHONPATH=benchmarks python benchmarks/statistic_landscape.py --checkpoint fashion-mnist/well_trained \
        --constants 0 0.25 0.5 --cosine 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from learned_vs_tuned import VARIANTS, evaluation_setup, variant_features
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, IncreasingGuidance
from learnguide.core.line_search import common_draw, final_samples, pooled_energy
from learnguide.images.classifier import predict
from learnguide.images.evaluation import feature_moments, frechet_distance_from_moments


def schedules(args: argparse.Namespace) -> dict[str, GuidanceSchedule]:
    """The schedules scored, keyed by a short label."""
    found: dict[str, GuidanceSchedule] = {f"constant {w:g}": ConstantGuidance(w) for w in args.constants}
    found |= {f"cosine {w:g}": IncreasingGuidance(w, "cosine") for w in args.cosine}
    found |= {f"linear {w:g}": IncreasingGuidance(w, "linear") for w in args.linear}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--constants", type=float, nargs="*", default=[0.0, 0.25, 0.5])
    parser.add_argument("--cosine", type=float, nargs="*", default=[1.0, 2.0, 3.0, 4.0])
    parser.add_argument("--linear", type=float, nargs="*", default=[])
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/statistic_landscape.json"))
    args = parser.parse_args()
    dataset_name, regime = args.checkpoint.split("/")
    dataset, denoiser, scorer, _ = evaluation_setup(dataset_name, regime, args.work)
    spec = VARIANTS["line-search"]
    config, phi = spec.line_search, variant_features(dataset, spec, args.work)
    x0, cond = common_draw(dataset.data_sampler("train", balanced=spec.balanced), config)
    n, labels = config.samples, cond[: config.samples]
    true = phi(x0, x0.new_zeros(len(x0))).double()
    true_moments = feature_moments(true)
    judges = {"FD eval. judge": (scorer.classifier, scorer.reference), "FD held-out judge": scorer.held_out}
    found = schedules(args)
    began, table = time.perf_counter(), {}
    drawn = final_samples(
        denoiser, denoiser.schedule, list(found.values()), labels, tuple(x0.shape[1:]), config
    )
    for label, samples in zip(found, drawn, strict=True):
        guided = phi(samples, samples.new_zeros(n)).double()
        row = {
            "L β=1.75 (search)": pooled_energy(guided, true, config.beta, config.lam, labels),
            "L β=1": pooled_energy(guided, true, 1.0, config.lam, labels),
            "FD clean (train)": frechet_distance_from_moments(*feature_moments(guided), *true_moments),
        }
        for name, (model, reference) in judges.items():
            row[name] = reference.frechet_distance(predict(model, samples)[0])
        table[label] = row
        print(label, {k: round(v, 5) for k, v in row.items()})
    argmins = {stat: min(table, key=lambda lab: table[lab][stat]) for stat in next(iter(table.values()))}
    print("argmin:", argmins)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.checkpoint] = {"table": table, "argmin": argmins, "seconds": time.perf_counter() - began}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
