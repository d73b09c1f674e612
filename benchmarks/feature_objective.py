"""Learn ω with self-consistency measured in a noisy classifier's features, and score it (issue 14).

For one image checkpoint: a time-conditioned classifier (``train-classifier --noisy``; *not* the
evaluation classifier) is trained once under ``--work``; ω is learned online with the default ω-network,
the class-marginal objective and the chosen kernel in its frozen features; then the learned ω and the
constants ω ∈ {0, 0.5} are sampled at 25 steps on the experiment's own evaluation sets (3 × 100 per class,
same seeds) and scored with the committed evaluation classifier (FD, accuracy, recall). Reports the learning
cost in denoiser evaluations against one 7-point constant grid on the experiment's tuning set. Writes JSON.

    python benchmarks/feature_objective.py --dataset mnist --checkpoint under_trained \
        --out benchmarks/results/feature_objective_mnist_under.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from learnguide.apps.comparison import evaluate_over_sets
from learnguide.apps.experiment import ExperimentConfig
from learnguide.core.guidance import ConstantGuidance, OmegaNet
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.schedules import step_grid
from learnguide.data.images import load_dataset
from learnguide.images.classifier import (
    ClassifierTrainingConfig,
    frozen_features,
    load_classifier,
    save_classifier,
    train_classifier,
)
from learnguide.images.denoisers import load_image_denoiser
from learnguide.images.evaluation import ImageScorer, classifier_reference, sample_set


def noisy_classifier(dataset, folder: Path, epochs: int, width: int):
    """The noisy classifier of ``folder``, trained first if it is not there (seed 1)."""
    if not (folder / "model.safetensors").is_file():
        config = ClassifierTrainingConfig(epochs=epochs, noisy=True, seed=1)
        model, record = train_classifier(dataset, config, width=width, progress=False)
        save_classifier(model, folder, record, config, dataset.fingerprint())
        print(f"noisy classifier: {record}")
    return load_classifier(folder, data_id=dataset.fingerprint())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--checkpoint", default="under_trained")
    parser.add_argument("--kernel", default="energy", choices=["energy", "rbf", "imq"])
    parser.add_argument("--features", default="noisy-classifier", choices=["noisy-classifier", "pixels"])
    parser.add_argument("--start", default="data", choices=["data", "on-policy"])
    parser.add_argument("--refresh", type=int, default=1)
    parser.add_argument("--rollout", type=int, default=1)
    parser.add_argument("--particles", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--work", type=Path, default=Path("runs/feature-objective"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/feature_objective.json"))
    args = parser.parse_args()
    dataset, experiment = load_dataset(args.dataset), ExperimentConfig()
    denoiser = load_image_denoiser(
        f"checkpoints/{args.dataset}/{args.checkpoint}", data_id=dataset.fingerprint()
    )
    phi = None
    if args.features == "noisy-classifier":
        classifier = noisy_classifier(dataset, args.work / f"{args.dataset}-noisy-classifier", 2, 16)
        phi = frozen_features(classifier)
    config = OnlineConfig(
        iterations=args.iterations,
        batch_size=args.batch_size,
        particles=args.particles,
        objective="class-marginal",
        group_size=args.group_size,
        kernel=args.kernel,
        lr=3e-3,
        start=args.start,
        grid_steps=args.steps,
        refresh=args.refresh,
        rollout=args.rollout,
        churn=0.0 if args.start == "on-policy" or args.rollout > 1 else 1.0,  # the evaluation sampler's DDIM
    )
    torch.manual_seed(0)
    net = OmegaNet(denoiser.schedule, num_classes=dataset.num_classes)
    began = time.perf_counter()
    record = train_omega_online(net, denoiser, dataset.data_sampler("train"), config, features=phi)
    learn_seconds = time.perf_counter() - began
    grid = step_grid(args.steps)
    table = net.omega_table(torch.arange(dataset.num_classes), grid)  # [N, K]
    k = dataset.num_classes
    n_tune = k * experiment.tune_per_class
    grid_evals = sum(n_tune * args.steps * (1 if w == 0 else 2) for w in experiment.constant_grid)
    print(f"learning: {record.denoiser_evals} denoiser evals ({learn_seconds:.0f} s); grid: {grid_evals}")
    print("ω mean over classes per step:", [round(w, 2) for w in table.mean(1).tolist()])
    classifier_dir = Path(f"checkpoints/{args.dataset}/classifier")
    evaluator = load_classifier(classifier_dir, data_id=dataset.fingerprint())
    reference = classifier_reference(dataset, evaluator, classifier_dir, args.work / "cache")
    scorer = ImageScorer(
        denoiser, evaluator, reference, dataset.image_shape, args.steps, experiment.batch_size
    )
    eval_sets = [sample_set(k, experiment.eval_per_class, 100 + j) for j in range(experiment.eval_seeds)]
    scores = {}
    for label, guidance in (
        ("learned", net),
        ("constant 0", ConstantGuidance(0.0)),
        ("constant 0.5", ConstantGuidance(0.5)),
    ):
        result = evaluate_over_sets(scorer.score, guidance, eval_sets)
        scores[label] = {key: result[key] for key in ("fd", "fd_std", "accuracy", "recall", "precision")}
        print(label, {key: round(v, 4) for key, v in scores[label].items()})
    report = {
        "dataset": args.dataset,
        "checkpoint": args.checkpoint,
        "online": {k2: v for k2, v in vars(config).items()},
        "learning": {
            "denoiser_evals": record.denoiser_evals,
            "seconds": learn_seconds,
            "warnings": record.warnings,
        },
        "constant_grid_denoiser_evals": grid_evals,
        "omega_t": grid[:-1].tolist(),
        "omega_per_class": table.T.tolist(),
        "scores": scores,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
