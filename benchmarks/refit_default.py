"""Re-learn ω with the default ω-network on every committed image checkpoint (issue 17).

For each checkpoint: the experiment's transition bank (8,192 items, m = 4, seed 0; made once under
``--work`` and reused), then ``fit_omega_on_bank`` with ``OmegaNet(schedule, num_classes=K)`` and
``FitConfig()`` as ``learnguide experiment`` does. Reports the learned ω over (class, step) on the 25-step
grid, the unconstrained value before the clamp, the fit's warnings and its best epoch, and the FD at 25
steps of the learned ω and of ω = 0 on the experiment's own evaluation sets (3 sets of 100 per class on
digits, 30 on MNIST and Fashion-MNIST, as in RESULTS.md; the same seeds, classifier and reference
statistics). Writes JSON (adds to an existing file).

    python benchmarks/refit_default.py --out benchmarks/results/refit_default.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from learnguide.apps.comparison import evaluate_over_sets
from learnguide.apps.experiment import ExperimentConfig
from learnguide.core.banks import FitConfig, fit_omega_on_bank, load_bank
from learnguide.core.guidance import ConstantGuidance, OmegaNet
from learnguide.core.schedules import get_schedule, step_grid
from learnguide.data.images import load_dataset
from learnguide.images.classifier import load_classifier
from learnguide.images.denoisers import load_image_denoiser
from learnguide.images.evaluation import ImageScorer, classifier_reference, sample_set
from results_file import add_results

CHECKPOINTS = [
    (d, c) for d in ("digits", "mnist", "fashion-mnist") for c in ("under_trained", "well_trained")
]


def fd_check(dataset_name: str, name: str, net: OmegaNet, steps: int, work: Path, per_class: int) -> dict:
    """FD (mean ± std over the experiment's 3 evaluation sets of ``per_class`` per class) of the learned ω
    and of ω = 0."""
    config, dataset = ExperimentConfig(eval_per_class=per_class), load_dataset(dataset_name)
    classifier_dir = Path(f"checkpoints/{dataset_name}/classifier")
    classifier = load_classifier(classifier_dir, data_id=dataset.fingerprint())
    reference = classifier_reference(dataset, classifier, classifier_dir, work / "cache")
    denoiser = load_image_denoiser(f"checkpoints/{dataset_name}/{name}", data_id=dataset.fingerprint())
    scorer = ImageScorer(denoiser, classifier, reference, dataset.image_shape, steps, config.batch_size)
    k, base = dataset.num_classes, config.seed * 1000
    eval_sets = [sample_set(k, config.eval_per_class, base + 100 + j) for j in range(config.eval_seeds)]
    out = {}
    for label, guidance in (("learned", net), ("unguided", ConstantGuidance(0.0))):
        scores = evaluate_over_sets(scorer.score, guidance, eval_sets)
        out[label] = {"fd": scores["fd"], "fd_std": scores["fd_std"], "accuracy": scores["accuracy"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/refit-default"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/refit_default.json"))
    parser.add_argument("--steps", type=int, default=25, help="sampling steps of the FD check (default: 25)")
    parser.add_argument(
        "--eval-per-class",
        nargs=2,
        type=int,
        default=(100, 30),
        metavar=("DIGITS", "OTHERS"),
        help="evaluation samples per class for digits and for MNIST / Fashion-MNIST, as RESULTS.md used "
        "(default: 100 30)",
    )
    parser.add_argument("--only", nargs="+", help="dataset/checkpoint names to run (default: all six)")
    args = parser.parse_args()
    for dataset, name in CHECKPOINTS:
        if args.only and f"{dataset}/{name}" not in args.only:
            continue
        bank_dir = args.work / f"{dataset}-{name}" / "bank"
        began = time.perf_counter()
        bank_cmd = [
            sys.executable,
            "-m",
            "learnguide.apps.cli",
            "bank",
            "--denoiser",
            f"checkpoints/{dataset}/{name}",
        ]
        bank_cmd += ["--dataset", dataset, "--out", str(bank_dir), "--items", "8192", "--shard-size", "2048"]
        subprocess.run([*bank_cmd, "--batch-size", "256", "--no-progress"], check=True)
        bank = load_bank(bank_dir)
        schedule = get_schedule(bank.manifest["schedule"])
        torch.manual_seed(0)
        net = OmegaNet(schedule, num_classes=int(bank.cond.max()) + 1)
        record = fit_omega_on_bank(net, bank, FitConfig(), progress=False)
        grid = step_grid(25)
        classes = torch.arange(net.hparams["num_classes"])
        with torch.no_grad():
            used = net.omega_table(classes, grid)  # [N, K]
            t, s = grid[:-1].repeat_interleave(len(classes)), grid[1:].repeat_interleave(len(classes))
            raw = net.raw(classes.repeat(len(grid) - 1), s, t).reshape(len(grid) - 1, -1)
        entry = {
            "omega_min": used.min().item(),
            "omega_max": used.max().item(),
            "omega_mean": used.mean().item(),
            "raw_min": raw.min().item(),
            "raw_max": raw.max().item(),
            "omega_mean_per_step": used.mean(1).tolist(),
            "t": grid[:-1].tolist(),
            "best_epoch": record.best_epoch + 1,
            "epochs": len(record.val_losses),
            "warnings": record.warnings,
            "seconds": time.perf_counter() - began,
        }
        per_class = args.eval_per_class[0] if dataset == "digits" else args.eval_per_class[1]
        entry["fd"] = fd_check(dataset, name, net, args.steps, args.work, per_class)
        entry["eval_per_class"] = per_class
        print(dataset, name, {k: v for k, v in entry.items() if not isinstance(v, list)}, record.warnings)
        add_results(args.out, {f"{dataset}/{name}": entry})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
