"""Does the unbiased fit's own statistic move its minimum with the fit's data side? (issue 14 diagnostic)

BENCHMARKS §10l found the clean feature classifier's *Fréchet distance* on MNIST well_trained lowest at
ω = 0.125 against training images and at the judges' 0.25 against the test split. ``rollout-prior`` does not
learn that statistic: it learns the pooled energy distance (β = 1, pairs weighted by class) in the same
classifier's pooled features. This scores the 25-step landscape that ``class_omega_headroom.py`` cached
(``--per-class`` samples per class under each constant ω of ``--policies``, tuning seed 1, common random
numbers; drawn if missing) in both statistics (the energy distance with ``--beta``), against
``--data-per-class`` images per class of each data side a fit may be given:

- ``train``: the training split (what ``rollout-prior`` learns from);
- ``test-half``: the first half of ``learned_vs_tuned.test_halves`` (``rollout-prior-test-half``'s data);
- ``test``: the whole test split (the judges' reference; a diagnosis, no fit may use it).

Each argmin comes with its share of ``--boots`` subsamples: half of each class's samples (without
replacement, the same rows under every ω) against half of each class's data images, so that both the
samples' and the data side's noise show. Nothing is fitted, and no judge is consulted. Writes JSON.

    PYTHONPATH=benchmarks python benchmarks/reference_landscape.py --checkpoint mnist/well_trained \
        --policies 0 0.125 0.25 0.375 0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from class_omega_headroom import landscape_samples
from feature_ensemble_landscape import argmin
from final_sample_landscape import data_items, energy_distance
from learned_vs_tuned import evaluation_setup, feature_classifier, test_halves
from learnguide.core.guidance import ConstantGuidance
from learnguide.core.metrics import feature_moments, frechet_distance_from_moments
from learnguide.images.classifier import predict
from results_file import add_results


def data_sides(dataset) -> dict:
    """``(dataset, split)`` of each data side: ``train``, ``test-half`` and ``test``."""
    return {
        "train": (dataset, "train"),
        "test-half": (test_halves(dataset)[0], "train"),
        "test": (dataset, "test"),
    }


def statistics(features: list[Tensor], rows: Tensor, data: Tensor, beta: float) -> dict[str, list[float]]:
    """Both statistics over the grid for the samples ``rows``: ``features`` holds one ``[n, F]`` per grid
    value, ``data [m, F]`` is the data side's features, ``beta`` the energy distance's exponent."""
    moments = feature_moments(data)
    return {
        f"energy (β = {beta:g})": [energy_distance(f[rows], data, beta) for f in features],
        "frechet": [frechet_distance_from_moments(*feature_moments(f[rows]), *moments) for f in features],
    }


def half_per_class(labels: Tensor, num_classes: int, gen: torch.Generator) -> Tensor:
    """Row indices of a random half of each class's rows of ``labels [n]``, drawn without replacement."""
    return torch.cat([
        own[torch.randperm(len(own), generator=gen)[: len(own) // 2]]
        for own in (torch.nonzero(labels == c)[:, 0] for c in range(num_classes))
    ])  # fmt: skip


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--policies", type=float, nargs="+", required=True, help="the grid of constant ω")
    parser.add_argument("--per-class", type=int, default=128, help="the landscape's samples per class and ω")
    parser.add_argument(
        "--data-per-class",
        type=int,
        default=440,
        help="data images per class and side (MNIST: ~all of a test half)",
    )
    parser.add_argument("--beta", type=float, default=1.0, help="the energy distance's β (the fit's: 1)")
    parser.add_argument(
        "--boots", type=int, default=200, help="subsamples: half of each class's samples and data images"
    )
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reference_landscape.json"))
    args = parser.parse_args()
    dataset_name, regime = args.checkpoint.split("/")
    dataset, _, scorer, _ = evaluation_setup(dataset_name, regime, args.work)
    classifier = feature_classifier(dataset, args.work)
    draws = [
        landscape_samples(
            scorer, ConstantGuidance(w), args.checkpoint, dataset.num_classes, args.per_class, 1, args.work
        )
        for w in args.policies
    ]
    labels, features = draws[0][0], [predict(classifier, x)[0].double() for _, x in draws]
    every, num_classes = torch.arange(len(labels)), dataset.num_classes
    gen, report = torch.Generator().manual_seed(0), {}
    for side, (data, split) in data_sides(dataset).items():
        images, data_labels = data_items(data, args.data_per_class, split)
        reference = predict(classifier, images)[0].double()
        curves = statistics(features, every, reference, args.beta)
        wins = {name: [0] * len(args.policies) for name in curves}
        for _ in range(args.boots):  # half of each class's samples (the same rows under every ω) and data
            rows, data_rows = (half_per_class(own, num_classes, gen) for own in (labels, data_labels))
            for name, curve in statistics(features, rows, reference[data_rows], args.beta).items():
                wins[name][args.policies.index(argmin(args.policies, curve))] += 1
        for name, curve in curves.items():
            entry = {
                "curve": curve,
                "argmin": argmin(args.policies, curve),
                "share": [w / args.boots for w in wins[name]],
            }
            report[f"{name} vs {side}"] = entry
            values, shares = (" ".join(f"{v:.4g}" for v in entry[key]) for key in ("curve", "share"))
            print(f"{name} vs {side}: argmin {entry['argmin']}  {values}  (share {shares})")
    entry = {
        "policies": args.policies,
        "per_class": args.per_class,
        "curves": report,
    }
    add_results(args.out, {f"{args.checkpoint} β={args.beta:g}": entry})


if __name__ == "__main__":
    main()
