"""A search's answer and RESULTS.md's tuned winners scored on evaluation sets no table has used (issue 14).

Where a search's held-out ratio to the best tuned baseline is within a few per cent of 1 on RESULTS.md's three
evaluation sets, another three sets of the same size (seeds ``--seeds``) say whether "≤" holds beyond those
sets. The answer is read from ``statistic_landscape.py``'s JSON (the shape search's choice by ``--statistic``
in the entry ``--entry``, e.g. ``mnist/well_trained#batchnorm-search``); nothing is searched again. Writes
JSON; prints each method's FD in both judges' features and the answer's ratio to the best tuned one.

    PYTHONPATH=benchmarks python benchmarks/fresh_sets.py --entry fashion-mnist/well_trained#batchnorm-search

With ``--per-class KEY`` it scores instead a per-class schedule recorded by ``class_shrinkage.py`` (its JSON
key), reusing the baselines' scores that an earlier run of the checkpoint on the same sets recorded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from class_omega_headroom import per_class_schedule
from learned_vs_tuned import CHECKPOINTS, best_tuned, evaluation_setup, score_with_baselines, tuned_winners
from learnguide.core.line_search import schedule_network
from learnguide.images.evaluation import sample_set
from results_file import add_results, read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entry", help="statistic_landscape.py's key: <checkpoint>#<variant>")
    parser.add_argument(
        "--per-class",
        metavar="KEY",
        help="instead of --entry, score this class_shrinkage.py entry's per-class schedule (its key there)",
    )
    parser.add_argument("--rules", type=Path, default=Path("benchmarks/results/class_shrinkage.json"))
    parser.add_argument("--statistic", default="energy+covariance", help="whose choice in that entry")
    parser.add_argument("--seeds", type=int, nargs=3, default=[400, 401, 402], help="the fresh sets' seeds")
    parser.add_argument("--landscape", type=Path, default=Path("benchmarks/results/statistic_landscape.json"))
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fresh_sets.json"))
    args = parser.parse_args()
    if (args.entry is None) == (args.per_class is None):
        parser.error("name one of --entry and --per-class")
    checkpoint = (args.entry or args.per_class).split("#")[0]
    dataset_name, regime = checkpoint.split("/")
    dataset, denoiser, scorer, _ = evaluation_setup(dataset_name, regime, args.work)
    k, per_class = dataset.num_classes, CHECKPOINTS[(dataset_name, regime)][0]
    if args.entry:
        name = f"{args.entry}:{args.statistic}"
        shape, omega, _ = read_results(args.landscape)[args.entry]["choices"][args.statistic]
        answer, described = (
            schedule_network(denoiser.schedule, torch.arange(k), omega, k, shape),
            [shape, omega],
        )
    else:
        name, rule = args.per_class, read_results(args.rules).get(args.per_class)
        if rule is None:
            parser.error(f"--per-class {args.per_class}: no such entry in {args.rules}")
        answer = per_class_schedule(rule["family"], rule["omegas"])
        described = [rule["family"], rule["omegas"]]
    sets = [sample_set(k, per_class, seed) for seed in args.seeds]
    earlier = read_results(args.out)
    known = next(  # the baselines already scored on these sets, for another answer of the checkpoint
        (
            {m: v for m, v in e["scores"].items() if m != "learned"}
            for key, e in earlier.items()
            if key.split("#")[0] == checkpoint and e["seeds"] == args.seeds
        ),
        None,
    )
    winners = tuned_winners(dataset_name, regime)
    scores = score_with_baselines(scorer, answer, winners, sets, known, name=checkpoint)
    ratios = {m: scores["learned"][m] / best_tuned(scores, m)[m] for m in ("fd", "held_out_fd")}
    print(f"{name}: {described}; ratio to the best tuned", ratios)
    entry = {"answer": described, "seeds": args.seeds, "scores": scores, "ratios": ratios}
    add_results(args.out, {name: entry})
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
