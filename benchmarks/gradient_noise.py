"""How noisy a variant's gradient in ω is, and how much a larger data reference takes away (issue 14).

For a learned_vs_tuned ``--variant`` (a rollout) on one checkpoint, draws ``--batches`` independent batches
of rollouts at each constant ``--omega`` and differentiates the variant's loss in that constant. Each batch
is drawn once with the largest ``--references`` r, so every smaller reference compares the *same* samples
with the first r·n of its data items (:func:`~learnguide.core.online.rollout_batch`): the rows differ only
in the data side. Reports per (ω, r) the gradient's mean, standard deviation and signal-to-noise ratio
|mean| / std; ``--both-pairs`` reads each r with the guided set's pairs weighted plainly and by class
(OnlineConfig.class_strata) on the same batches. Writes JSON (one entry per checkpoint, variant,
``--split`` of the data and ``--both-pairs``).

    python benchmarks/gradient_noise.py --checkpoint mnist/well_trained --variant rollout-reference \
        --omega 0.25 0.5 --batches 8 --references 1 10
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from learned_vs_tuned import VARIANTS, variant_features
from learnguide.core.online import Discrepancy, rollout_batch
from learnguide.data.images import load_dataset
from learnguide.images.denoisers import load_image_denoiser
from results_file import add_results


def gradient_spread(checkpoint: str, variant: str, omegas: list[float], batches: int, references: list[int],
                    work: Path, split: str = "train", both_pairs: bool = False) -> dict:  # fmt: skip
    """``{"<ω>": {"<row>": {"mean", "std", "snr", "grads"}}}`` of the loss's derivative in a constant ω, with
    the data drawn from ``split`` (a fit draws "train"; "test" asks whether the split moves the answer). A row
    is a reference r (``"<r>"``, the variant's pair weighting) or, with ``both_pairs``, r with the guided
    set's pairs weighted plainly and by class (``"<r> plain"``, ``"<r> by-class"``; OnlineConfig.class_strata)
    on the same batches."""
    dataset = load_dataset(checkpoint.split("/")[0])
    denoiser = load_image_denoiser(f"checkpoints/{checkpoint}", data_id=dataset.fingerprint())
    spec = VARIANTS[variant]
    phi, data = variant_features(dataset, spec, work), dataset.data_sampler(split, balanced=spec.balanced)
    config = replace(spec.online, reference=max(references))
    strata = {"plain": False, "by-class": True} if both_pairs else {"": config.class_strata}
    readings = {  # row -> (r, the discrepancy it is read with)
        f"{r} {name}".strip(): (r, Discrepancy(replace(config, class_strata=flag), phi))
        for r in references
        for name, flag in strata.items()
    }
    report = {}
    for value in omegas:
        omega = torch.tensor(value, requires_grad=True)

        def constant(c, s, t, omega=omega):
            return omega.expand(len(c))

        grads: dict[str, list[float]] = {row: [] for row in readings}
        for seed in range(batches):
            guided, true, cond, s, _ = rollout_batch(
                denoiser, denoiser.schedule, constant, data, config,
                torch.Generator().manual_seed(seed),
            )  # fmt: skip
            for row, (r, discrepancy) in readings.items():
                loss = discrepancy(guided, true[: r * guided.shape[0]], s, cond)  # the first r·n data items
                grads[row].append(torch.autograd.grad(loss, omega, retain_graph=True)[0].item())
            print(
                f"ω {value} batch {seed}: " + ", ".join(f"r={row} {g[-1]:+.5f}" for row, g in grads.items())
            )
        report[str(value)] = {}
        for row, g in grads.items():
            t = torch.tensor(g, dtype=torch.float64)
            mean, std = t.mean().item(), t.std().item()
            report[str(value)][row] = {"mean": mean, "std": std, "snr": abs(mean) / std, "grads": g}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="rollout-reference")
    parser.add_argument("--omega", type=float, nargs="+", default=[0.5])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--references", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--split", choices=["train", "test"], default="train", help="where the data come from"
    )
    parser.add_argument(
        "--both-pairs",
        action="store_true",
        help="read each reference with the guided set's pairs weighted plainly and by class",
    )
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gradient_noise.json"))
    args = parser.parse_args()
    if args.batches < 2:
        parser.error(f"--batches must be >= 2 (a standard deviation needs two), got {args.batches}")
    spread = gradient_spread(
        args.checkpoint, args.variant, args.omega, args.batches, args.references, args.work, args.split,
        args.both_pairs,
    )  # fmt: skip
    key = [args.checkpoint, args.variant, *(["test"] if args.split == "test" else [])]
    for value, rows in spread.items():
        for r, row in rows.items():
            print(f"ω {value} r {r}: mean {row['mean']:+.5f} std {row['std']:.5f} snr {row['snr']:.2f}")
    add_results(args.out, {":".join(key + (["both-pairs"] if args.both_pairs else [])): spread})


if __name__ == "__main__":
    main()
