"""Which discrepancy of final samples puts its minimum where the judges do? (issue 14 diagnostic)

For one image checkpoint, samples ``--per-class`` images per class at 25 DDIM steps under each constant
ω₀ of ``--policies``, on the *tuning* seeds (seed 1; RESULTS.md evaluates on seeds 100–102), with the same
seed per image under every ω₀ (common random numbers, so the curves' differences are not sampling noise).
Then scores the same images:

- *candidates*, what a whole-trajectory rollout could learn from (docs/design.md §3.4): in each
  ``--feature-classifier``'s pooled features and logits (time-conditioned ones at s = 0), the
  class-conditional energy distance (averaged over classes, against ``--data-per-class`` training images of
  the class) for each β of ``--betas``, and the pooled one (all classes together, balanced) — the full
  distance 2E‖x − y‖^β − E‖x − x'‖^β − E‖y − y'‖^β — and, pooled, the Fréchet distance and KID (the
  cubic polynomial kernel's MMD²) in the same features;
- *judges*, for the diagnostic only (never learned from): FD in the evaluation classifier's and the held-out
  classifier's features against the test split, as RESULTS.md reports them, and the class-conditional
  energy distance (β = 1) in each judge's features.

A candidate is worth fitting when its argmin over ω₀ follows the judges' on every checkpoint. Writes JSON.

    python benchmarks/final_sample_landscape.py --checkpoint mnist/well_trained \
        --feature-classifier runs/feature-classifier/mnist runs/noisy-wide/mnist \
        --out benchmarks/results/final_landscape-mnist-well.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from learnguide.core.guidance import ConstantGuidance
from learnguide.core.metrics import frechet_distance
from learnguide.data.images import load_dataset
from learnguide.images.classifier import load_classifier, predict
from learnguide.images.denoisers import load_image_denoiser
from learnguide.images.evaluation import (
    ImageScorer,
    classifier_reference,
    kernel_inception_distance,
    sample_set,
)

STEPS = 25


def energy_distance(x: torch.Tensor, y: torch.Tensor, beta: float) -> float:
    """2E‖x − y‖^β − E‖x − x'‖^β − E‖y − y'‖^β of samples ``x [n, F]``, ``y [m, F]`` (U-statistics for the
    within-sample terms; the same quantity as :func:`~learnguide.core.discrepancy.kernel_loss` with the energy
    kernel, λ = 1, plus its constant, computed with ``cdist`` for large samples)."""

    def within(z: torch.Tensor) -> torch.Tensor:
        d = torch.pdist(z.double()) ** beta
        return d.mean()

    between = (torch.cdist(x.double(), y.double()) ** beta).mean()
    return float(2 * between - within(x) - within(y))


def at_zero(classifier, n: int) -> torch.Tensor | None:
    """The time s = 0 ``[n]`` for a time-conditioned classifier, None for a clean one."""
    return torch.zeros(n) if classifier.schedule is not None else None


def data_items(dataset, per_class: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` images of every class ``[K·per_class, C, H, W]`` from ``split`` of ``dataset``
    (:meth:`~learnguide.data.images.ImageDataset.split`; training images by default) and their labels, drawn
    with seed 0 (the landscapes' data side)."""
    images, labels = dataset.split(split)
    gen = torch.Generator().manual_seed(0)
    picks = torch.cat([
        (labels == c).nonzero()[:, 0][torch.randperm(int((labels == c).sum()), generator=gen)[:per_class]]
        for c in range(dataset.num_classes)
    ])  # fmt: skip
    return images[picks], labels[picks]


def candidate_scores(
    features: torch.Tensor, labels: torch.Tensor, data: torch.Tensor, data_labels: torch.Tensor, betas
) -> dict[str, float]:
    """Class-conditional (mean over classes) and pooled energy distances of ``features [n, F]`` against
    ``data [m, F]`` for every β; pooled, also the Fréchet distance and KID (the cubic-kernel MMD², all
    items in one subset) in the same features."""
    scores = {
        "pooled/fd": frechet_distance(features, data),
        "pooled/kid": kernel_inception_distance(
            features, data, subsets=1, subset_size=len(data), generator=torch.Generator().manual_seed(0)
        )[0],
    }
    classes = labels.unique()
    for beta in betas:
        per_class = [energy_distance(features[labels == c], data[data_labels == c], beta) for c in classes]
        scores[f"class/energy-{beta}"] = sum(per_class) / len(per_class)
        scores[f"pooled/energy-{beta}"] = energy_distance(features, data, beta)
    return scores


def markdown_table(paths: list[Path], columns: list[str]) -> str:
    """Per JSON of ``paths`` and ω₀, the values of the ``columns`` (row keys without the classifier folder;
    bold: each column's argmin)."""
    lines = ["| checkpoint | ω₀ | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for path in paths:
        report = json.loads(path.read_text())
        rows = [{k.split(":", 1)[-1]: v for k, v in row.items()} for row in report["rows"]]
        best = {c: min(rows, key=lambda r, c=c: r[c])["omega"] for c in columns}
        for row in rows:
            cells = [f"**{row[c]:.4g}**" if best[c] == row["omega"] else f"{row[c]:.4g}" for c in columns]
            lines.append(f"| {report['args']['checkpoint']} | {row['omega']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    if "--table" in sys.argv:  # python final_sample_landscape.py --table OUT.json ... --columns KEY ...
        table = argparse.ArgumentParser()
        table.add_argument("--table", type=Path, nargs="+")
        table.add_argument("--columns", nargs="+", required=True)
        options = table.parse_args()
        print(markdown_table(options.table, options.columns))
        return
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--feature-classifier", type=Path, nargs="+", required=True)
    parser.add_argument("--policies", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.5, 1.0, 1.75])
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--data-per-class", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--cache", type=Path, default=Path("runs/learned-vs-tuned/cache"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    began = time.perf_counter()
    dataset_name, regime = args.checkpoint.split("/")
    dataset = load_dataset(dataset_name)
    data_id = dataset.fingerprint()
    denoiser = load_image_denoiser(f"checkpoints/{args.checkpoint}", data_id=data_id)
    judges = {}
    for name in ("classifier", "held_out_classifier"):
        folder = Path(f"checkpoints/{dataset_name}/{name}")
        model = load_classifier(folder, data_id=data_id)
        judges[name] = (model, classifier_reference(dataset, model, folder, args.cache))
    scorer = ImageScorer(denoiser, *judges["classifier"], dataset.image_shape, STEPS, args.batch_size)
    phis = {str(p): load_classifier(p, data_id=data_id) for p in args.feature_classifier}
    data, data_labels = data_items(dataset, args.data_per_class)
    data_features = {p: predict(m, data, s=at_zero(m, len(data))) for p, m in phis.items()}
    judge_data = {name: predict(model, data)[0].double() for name, (model, _) in judges.items()}
    labels, seeds = sample_set(dataset.num_classes, args.per_class, seed=1)
    rows = []
    for w0 in args.policies:
        images = scorer.samples(ConstantGuidance(w0), labels, seeds)
        row = {"omega": w0}
        for name, (model, reference) in judges.items():
            features = predict(model, images)[0].double()
            row[f"judge/{name}_fd"] = reference.frechet_distance(features)
            scores = candidate_scores(features, labels, judge_data[name], data_labels, [1.0])
            row[f"judge/{name}_energy"] = scores["class/energy-1.0"]
        for p, model in phis.items():
            outputs = predict(model, images, s=at_zero(model, len(images)))
            for j, space in enumerate(("features", "logits")):
                scores = candidate_scores(
                    outputs[j].double(), labels, data_features[p][j].double(), data_labels, args.betas
                )
                row.update({f"{p}:{space}:{k}": v for k, v in scores.items()})
        rows.append(row)
        print(json.dumps({k: round(v, 5) for k, v in row.items()}), flush=True)
    argmin = {key: min(rows, key=lambda r, k=key: r[k])["omega"] for key in rows[0] if key != "omega"}
    report = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
        "argmin": argmin,
        "seconds": time.perf_counter() - began,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(argmin, indent=1))


if __name__ == "__main__":
    main()
