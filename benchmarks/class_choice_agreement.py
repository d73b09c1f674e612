"""Would one schedule per class, chosen in a search's features from its samples, follow the judges? (issue 14)

The landscape of the per-class variant before any fit: from the features ``statistic_landscape.py`` saved for
a search (``--variant``; the search's 640 samples, 64 per class, under every schedule of its grid, and its
2,560 balanced data items), each class c's own choice over the grid by three columns:

- the search's statistic restricted to class c (``LineSearchConfig.statistic``: the energy distance of c's
  samples to c's data items in the search's features, plus the covariance term for ``energy+covariance``);
- each judge's Fréchet distance of c's samples to c's test images (evaluation and held-out classifier): a
  diagnosis, never a choice.

Prints, per checkpoint, how often the search's per-class choice is a judge's and the correlation of their
guidance strengths (the mean ω over the sampler's steps), beside the same between the two judges: where the
judges themselves disagree class by class, 64 samples per class cannot place a class. Writes JSON.

    PYTHONPATH=benchmarks python benchmarks/class_choice_agreement.py --variant batchnorm-search \
        --checkpoints digits/under_trained mnist/well_trained          # seconds per checkpoint
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from learned_vs_tuned import CHECKPOINTS, VARIANTS, evaluation_setup
from learnguide.core.guidance import increasing_profile
from learnguide.core.line_search import search_statistic
from learnguide.core.metrics import feature_moments, frechet_distance_from_moments
from learnguide.core.schedules import step_grid
from learnguide.images.classifier import predict
from results_file import add_results
from statistic_landscape import JUDGES, file_stem, searched_key

COLUMNS = ("search", *JUDGES)


def strength(label: str, steps: int) -> float:
    """The mean ω over the sampler's ``steps`` steps of a schedule labelled ``"constant 0.5"`` or
    ``"cosine 2"`` (statistic_landscape.py's labels)."""
    family, omega = label.split()
    if family == "constant":
        return float(omega)
    return float(omega) * float(increasing_profile(step_grid(steps)[:-1], family).mean())


def class_choices(saved: dict[str, torch.Tensor], judge_test: dict, config) -> dict[str, list[str]]:
    """Each column's choice per class: the grid label of least loss for class c's samples. ``saved``: the
    landscape's features; ``judge_test``: per judge, the test images' features ``[N, F]`` and class ids."""
    labels, true = saved["labels"], saved["true"]
    k = int(labels.max()) + 1
    true_labels = torch.arange(len(true)) % k  # balanced draws: item i has class i mod K
    if not torch.equal(true_labels[: len(labels)], labels):
        raise SystemExit("the saved data items are not a balanced draw")
    grid = [key.removesuffix("/phi") for key in saved if key.endswith("/phi")]
    choices: dict[str, list[str]] = {column: [] for column in COLUMNS}
    for c in range(k):
        own, data = labels == c, true[true_labels == c]
        losses = {"search": {g: search_statistic(saved[f"{g}/phi"][own], data, config) for g in grid}}
        for name, (features, ids) in judge_test.items():
            reference = feature_moments(features[ids == c])
            losses[name] = {
                g: frechet_distance_from_moments(*feature_moments(saved[f"{g}/{name}"][own]), *reference)
                for g in grid
            }
        for column in COLUMNS:
            choices[column].append(min(grid, key=losses[column].__getitem__))
    return choices


def agreement(choices: dict[str, list[str]], steps: int) -> dict[str, float]:
    """Shares of classes where two columns choose the same schedule, and the correlation of the chosen
    schedules' strengths, for search–judge and judge–judge pairs."""
    found = {}
    strengths = {c: torch.tensor([strength(g, steps) for g in v]) for c, v in choices.items()}
    for a, b in [("search", JUDGES[0]), ("search", JUDGES[1]), JUDGES]:
        same = sum(x == y for x, y in zip(choices[a], choices[b], strict=True)) / len(choices[a])
        found[f"same {a} / {b}"] = same
        found[f"corr {a} / {b}"] = float(torch.corrcoef(torch.stack([strengths[a], strengths[b]]))[0, 1])
    return found | {f"mean strength {c}": float(s.mean()) for c, s in strengths.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--variant", default="batchnorm-search", help="its saved features")
    parser.add_argument("--statistic", default="energy+covariance", help="the search statistic, per class")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--features", type=Path, default=Path("runs/statistic-landscape"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_choice_agreement.json"))
    args = parser.parse_args()
    config = replace(VARIANTS["shape-search"].line_search, statistic=args.statistic)
    for checkpoint in args.checkpoints:
        began, key = time.perf_counter(), searched_key(checkpoint, args.variant)
        path = args.features / f"{file_stem(key)}.safetensors"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run statistic_landscape.py --variant {args.variant} first")
        dataset, _, scorer, _ = evaluation_setup(*checkpoint.split("/"), args.work)
        images, ids = dataset.split("test")
        models = (scorer.classifier, scorer.held_out[0])
        judge_test = {j: (predict(m, images)[0].double(), ids) for j, m in zip(JUDGES, models, strict=True)}
        choices = class_choices(load_file(str(path)), judge_test, config)
        found = agreement(choices, config.steps)
        print(checkpoint, {k: round(v, 3) for k, v in found.items()})
        for column, chosen in choices.items():
            print(f"  {column}: {', '.join(chosen)}")
        entry = {"statistic": args.statistic, "choices": choices, "agreement": found}
        add_results(args.out, {f"{key}:{args.statistic}": entry | {"seconds": time.perf_counter() - began}})


if __name__ == "__main__":
    main()
