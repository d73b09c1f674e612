"""Would one schedule per class help? (issue 14 diagnostic for BENCHMARKS §10q's next variant)

Reads the features ``statistic_landscape.py`` saved (the line search's 640 samples, 64 per class, from the
same noise under each schedule of the shape search's grid) and draws nothing. Each item's trajectory depends
only on its own class's ω, so the samples a per-class schedule would give are these samples, each class's
taken from the schedule chosen for it. For each class the class-conditional search statistic
(``--statistic``; the class's 64 samples against the class's 256 training images, clean features) picks one
grid schedule; the per-class samples so assembled are judged (both judges' pooled Fréchet distance against the
test split, a diagnosis only) beside the pooled statistic's grid choice on the same samples.

    PYTHONPATH=benchmarks python benchmarks/class_landscape.py --checkpoint mnist/under_trained
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from learned_vs_tuned import evaluation_setup
from learnguide.core.line_search import STATISTICS, common_draw, search_statistic
from statistic_landscape import JUDGES, SEARCH


def class_statistics(saved: dict[str, torch.Tensor], data_labels: torch.Tensor, statistic: str) -> dict:
    """``{schedule: [K]}``: the search statistic per class, each class's samples against its data items."""
    config, labels, true = replace(SEARCH, statistic=statistic), saved["labels"], saved["true"]
    classes = labels.unique()
    return {
        key.removesuffix("/phi"): torch.tensor(
            [search_statistic(saved[key][labels == c], true[data_labels == c], config) for c in classes]
        )
        for key in saved
        if key.endswith("/phi")
    }


def assembled(saved: dict[str, torch.Tensor], choice: list[str], judge: str) -> torch.Tensor:
    """A judge's features ``[n, F]`` of the samples where class k's items come from schedule ``choice[k]``."""
    labels = saved["labels"]
    out = torch.empty_like(saved[f"{choice[0]}/{judge}"])
    for c, label in zip(labels.unique(), choice, strict=True):
        out[labels == c] = saved[f"{label}/{judge}"][labels == c]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--statistic", default="energy+covariance", choices=STATISTICS)
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--features", type=Path, default=Path("runs/statistic-landscape"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_landscape.json"))
    args = parser.parse_args()
    saved = load_file(str(args.features / f"{args.checkpoint.replace('/', '-')}.safetensors"))
    dataset, _, scorer, _ = evaluation_setup(*args.checkpoint.split("/"), args.work)
    _, data_labels = common_draw(dataset.data_sampler("train", balanced=True), SEARCH)
    if not torch.equal(data_labels[: len(saved["labels"])], saved["labels"]):
        raise SystemExit("the saved features were not drawn with this search's data: rerun the landscape")
    per_class = class_statistics(saved, data_labels, args.statistic)
    schedules = list(per_class)
    stacked = torch.stack([per_class[s] for s in schedules])  # [schedules, K]
    class_choice = [schedules[i] for i in stacked.argmin(0).tolist()]
    config = replace(SEARCH, statistic=args.statistic)
    true, labels = saved["true"], saved["labels"]
    pooled = {s: search_statistic(saved[f"{s}/phi"], true, config, labels) for s in schedules}
    pooled_choice = min(pooled, key=pooled.__getitem__)
    references = dict(zip(JUDGES, (scorer.reference, scorer.held_out[1]), strict=True))
    compared = {"per class": class_choice, f"pooled: {pooled_choice}": [pooled_choice] * len(class_choice)}
    compared |= {"unguided": ["constant 0"] * len(class_choice)}
    judged = {
        name: {judge: references[judge].frechet_distance(assembled(saved, choice, judge)) for judge in JUDGES}
        for name, choice in compared.items()
    }
    print("per-class choice:", class_choice)
    print("pooled choice:", pooled_choice)
    print(json.dumps(judged, indent=1))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[f"{args.checkpoint} {args.statistic}"] = {
        "per_class_choice": class_choice,
        "pooled_choice": pooled_choice,
        "per_class_statistic": {s: per_class[s].tolist() for s in schedules},
        "judged": judged,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
