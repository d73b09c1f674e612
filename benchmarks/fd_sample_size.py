"""Does FD's best constant ω depend on the sample size? Subsamples of a cached landscape (issue 14).

Reads the 25-step samples that ``class_omega_headroom.py --per-class 128`` cached for one checkpoint and a
constant grid (tuning seed 1; drawn here if they are missing), and scores disjoint subsamples of 16, 30, 64
and 128 per class in three feature spaces: the clean feature classifier's (against 256 training images per
class, as the learning statistics), the held-out judge's and the evaluation judge's (against their
test-split references). Prints and writes, per size, each space's mean FD over the disjoint subsamples
and its argmin over the grid.

    python benchmarks/fd_sample_size.py --checkpoint mnist/well_trained --policies 0 0.125 0.25 0.375 0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from class_omega_headroom import clean_space, landscape_samples
from learned_vs_tuned import evaluation_setup
from learnguide.core.guidance import ConstantGuidance
from learnguide.core.metrics import frechet_distance
from learnguide.images.classifier import predict
from results_file import add_results

CACHED_PER_CLASS = 128
SIZES = (16, 30, 64, 128)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--policies", type=float, nargs="+", required=True, help="the cached constant grid")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fd_sample_size.json"))
    args = parser.parse_args()
    dataset_name, regime = args.checkpoint.split("/")
    dataset, _, scorer, _ = evaluation_setup(dataset_name, regime, args.work)
    k = dataset.num_classes
    clean, data, _ = clean_space(dataset, args.work, 256)
    spaces = {  # name: (embedding, FD of features [n, F] against the space's reference)
        "clean": (clean, lambda f: frechet_distance(f, data)),
        "held_out": (scorer.held_out[0], scorer.held_out[1].frechet_distance),
        "evaluation": (scorer.classifier, scorer.reference.frechet_distance),
    }
    features = {name: [] for name in spaces}  # name: [P] of [K·128, F]
    for w in args.policies:
        _, x = landscape_samples(
            scorer, ConstantGuidance(w), args.checkpoint, k, CACHED_PER_CLASS, 1, args.work
        )
        for name, (embed, _) in spaces.items():
            features[name].append(predict(embed, x)[0].double())
    report = {"policies": args.policies, "sizes": {}}
    for size in SIZES:
        reps = CACHED_PER_CLASS // size  # disjoint subsamples per class
        rows = [
            torch.cat([torch.arange(c * CACHED_PER_CLASS + r * size, c * CACHED_PER_CLASS + (r + 1) * size)
                       for c in range(k)])
            for r in range(reps)
        ]  # fmt: skip
        entry = {}
        for name, (_, distance) in spaces.items():
            fd = [sum(distance(f[r]) for r in rows) / reps for f in features[name]]
            entry[name] = {"fd": fd, "argmin": args.policies[min(range(len(fd)), key=fd.__getitem__)]}
        report["sizes"][str(size)] = entry
        print(size, {name: v["argmin"] for name, v in entry.items()})
    add_results(args.out, {args.checkpoint: report})


if __name__ == "__main__":
    main()
