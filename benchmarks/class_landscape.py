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
from learnguide.core.line_search import STATISTICS, LineSearchConfig, common_draw, search_statistic
from statistic_landscape import JUDGES, SEARCH


def class_statistics(
    saved: dict[str, torch.Tensor],
    data_labels: torch.Tensor,
    config: LineSearchConfig,
    picks: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``{schedule: [K]}``: the search statistic per class, each class's samples against its data items;
    ``picks [K, m]`` (a bootstrap resample) indexes each class's samples, all of them by default."""
    labels, true = saved["labels"], saved["true"]
    classes = labels.unique()

    def statistic(features: torch.Tensor, k: int, c: torch.Tensor) -> float:
        own = features[labels == c]
        return search_statistic(own if picks is None else own[picks[k]], true[data_labels == c], config)

    return {
        key.removesuffix("/phi"): torch.tensor([statistic(saved[key], k, c) for k, c in enumerate(classes)])
        for key in saved
        if key.endswith("/phi")
    }


def standard_error_choice(
    saved: dict[str, torch.Tensor],
    data_labels: torch.Tensor,
    config: LineSearchConfig,
    start: str,
    z: float = 2.0,
    resamples: int = 200,
) -> list[str]:
    """§10k's rule from ``start``: per class, each schedule's gain (the drop of the class statistic from
    ``start``'s), its standard error from ``resamples`` paired bootstrap resamples of the class's samples (the
    same picks under every schedule: common random numbers); the class moves to the schedule of largest
    gain − z·SE where that bound is above 0, and otherwise keeps ``start``."""
    labels = saved["labels"]
    counts = labels.unique(return_counts=True)[1]
    if not bool((counts == counts[0]).all()):
        raise SystemExit("the standard-error rule here needs the same number of samples in every class")
    full, k, m = class_statistics(saved, data_labels, config), len(counts), int(counts[0])
    schedules, generator = list(full), torch.Generator().manual_seed(config.seed)
    gains = torch.stack([full[start] - full[s] for s in schedules])  # [S, K]
    resampled = []
    for _ in range(resamples):
        boot = class_statistics(saved, data_labels, config, torch.randint(m, (k, m), generator=generator))
        resampled.append(torch.stack([boot[start] - boot[s] for s in schedules]))
    bound = gains - z * torch.stack(resampled).std(0)  # [S, K]
    best = bound.argmax(0).tolist()
    return [schedules[i] if bound[i, c] > 0 else start for c, i in enumerate(best)]


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
    parser.add_argument("--z", type=float, default=2.0, help="standard errors a class's gain must clear")
    parser.add_argument("--resamples", type=int, default=200, help="paired bootstrap resamples per class")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--features", type=Path, default=Path("runs/statistic-landscape"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_landscape.json"))
    args = parser.parse_args()
    saved = load_file(str(args.features / f"{args.checkpoint.replace('/', '-')}.safetensors"))
    dataset, _, scorer, _ = evaluation_setup(*args.checkpoint.split("/"), args.work)
    _, data_labels = common_draw(dataset.data_sampler("train", balanced=True), SEARCH)
    if not torch.equal(data_labels[: len(saved["labels"])], saved["labels"]):
        raise SystemExit("the saved features were not drawn with this search's data: rerun the landscape")
    config = replace(SEARCH, statistic=args.statistic)
    per_class = class_statistics(saved, data_labels, config)
    schedules = list(per_class)
    stacked = torch.stack([per_class[s] for s in schedules])  # [schedules, K]
    class_choice = [schedules[i] for i in stacked.argmin(0).tolist()]
    true, labels = saved["true"], saved["labels"]
    pooled = {s: search_statistic(saved[f"{s}/phi"], true, config, labels) for s in schedules}
    pooled_choice = min(pooled, key=pooled.__getitem__)
    rule_choice = standard_error_choice(saved, data_labels, config, pooled_choice, args.z, args.resamples)
    references = dict(zip(JUDGES, (scorer.reference, scorer.held_out[1]), strict=True))
    compared = {
        "per class": class_choice,
        f"per class, z = {args.z:g}": rule_choice,
        f"pooled: {pooled_choice}": [pooled_choice] * len(class_choice),
    }
    compared |= {"unguided": ["constant 0"] * len(class_choice)}
    judged = {
        name: {judge: references[judge].frechet_distance(assembled(saved, choice, judge)) for judge in JUDGES}
        for name, choice in compared.items()
    }
    print("per-class choice:", class_choice)
    print(f"per-class choice, z = {args.z:g} rule:", rule_choice)
    print("pooled choice:", pooled_choice)
    print(json.dumps(judged, indent=1))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[f"{args.checkpoint} {args.statistic}"] = {
        "per_class_choice": class_choice,
        "rule_choice": rule_choice,
        "pooled_choice": pooled_choice,
        "per_class_statistic": {s: per_class[s].tolist() for s in schedules},
        "judged": judged,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
