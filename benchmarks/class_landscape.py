"""Would one schedule per class help? (issue 14 diagnostic for BENCHMARKS §10q's next variant)

Reads the features ``statistic_landscape.py`` saved (the line search's 640 samples, 64 per class, from the
same noise under each schedule of the shape search's grid) and draws nothing. Each item's trajectory depends
only on its own class's ω, so the samples a per-class schedule would give are these samples, each class's
taken from the schedule chosen for it. For each class the class-conditional search statistic
(``--statistic``; the class's 64 samples against the class's 256 training images, clean features) picks one
grid schedule; the per-class samples so assembled are judged (both judges' pooled Fréchet distance against the
test split, a diagnosis only) beside the pooled statistic's grid choice on the same samples, and beside §10k's
standard-error rule from that pooled choice (``class_omega_headroom.standard_error_moves``; ``--z``,
``--boots``).

    PYTHONPATH=benchmarks python benchmarks/class_landscape.py --checkpoint mnist/under_trained
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from class_omega_headroom import pick, standard_error_moves
from learned_vs_tuned import evaluation_setup
from learnguide.core.line_search import STATISTICS, common_draw, search_statistic
from statistic_landscape import JUDGES, SEARCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--statistic", default="energy+covariance", choices=STATISTICS)
    parser.add_argument("--z", type=float, default=2.0, help="standard errors a class's gain must clear")
    parser.add_argument("--boots", type=int, default=200, help="paired bootstrap resamples per class")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--features", type=Path, default=Path("runs/statistic-landscape"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_landscape.json"))
    args = parser.parse_args()
    saved = load_file(str(args.features / f"{args.checkpoint.replace('/', '-')}.safetensors"))
    dataset, _, scorer, _ = evaluation_setup(*args.checkpoint.split("/"), args.work)
    _, data_labels = common_draw(dataset.data_sampler("train", balanced=True), SEARCH)
    true, labels = saved["true"], saved["labels"]
    if not torch.equal(data_labels[: len(labels)], labels):
        raise SystemExit("the saved features were not drawn with this search's data: rerun the landscape")
    schedules = [key.removesuffix("/phi") for key in saved if key.endswith("/phi")]
    stacked = {name: torch.stack([saved[f"{s}/{name}"] for s in schedules]) for name in ("phi", *JUDGES)}
    config, classes = replace(SEARCH, statistic=args.statistic), range(int(labels.max()) + 1)
    owns = [stacked["phi"][:, labels == c] for c in classes]  # [P, n_c, F] each

    def class_statistic(c: int, rows: torch.Tensor) -> torch.Tensor:
        """``[P]``: the search statistic of class c's samples ``rows`` against its data items."""
        return torch.tensor([search_statistic(own[rows], true[data_labels == c], config) for own in owns[c]])

    sizes = [own.shape[1] for own in owns]
    per_class = torch.stack(
        [class_statistic(c, torch.arange(size)) for c, size in enumerate(sizes)]
    )  # [K, P]
    pooled = [search_statistic(own, true, config, labels) for own in stacked["phi"]]
    start = min(range(len(schedules)), key=pooled.__getitem__)
    compared = {
        "per class": per_class.argmin(1).tolist(),
        f"per class, z = {args.z:g}": standard_error_moves(class_statistic, sizes, start, args.z, args.boots),
        f"pooled: {schedules[start]}": [start] * len(sizes),
        "unguided": [schedules.index("constant 0")] * len(sizes),
    }
    references = dict(zip(JUDGES, (scorer.reference, scorer.held_out[1]), strict=True))
    judged = {
        name: {
            judge: references[judge].frechet_distance(pick(choice, stacked[judge], labels))
            for judge in JUDGES
        }
        for name, choice in compared.items()
    }
    chosen = {name: [schedules[i] for i in choice] for name, choice in compared.items()}
    print(json.dumps({"choices": chosen, "judged": judged}, indent=1))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[f"{args.checkpoint} {args.statistic}"] = {
        "choices": chosen,
        "per_class_statistic": {s: per_class[:, i].tolist() for i, s in enumerate(schedules)},
        "judged": judged,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
