"""Would one schedule per class help? (issue 14 diagnostic for BENCHMARKS §10q's next variant)

Reads the features ``statistic_landscape.py`` saved (the line search's 640 samples, 64 per class, from the
same noise under each schedule of the shape search's grid) and draws nothing. Each item's trajectory depends
only on its own class's ω, so the samples a per-class schedule would give are these samples, each class's
taken from the schedule chosen for it. For each class the class-conditional search statistic
(``--statistic``; the class's 64 samples against the class's 256 training images, clean features) picks one
grid schedule; the per-class samples so assembled are judged (both judges' pooled Fréchet distance against the
test split, a diagnosis only) beside the pooled statistic's grid choice on the same samples, and beside §10k's
standard-error rule from that pooled choice (``class_omega_headroom.standard_error_moves``; ``--z``,
``--boots``). With ``--family constant`` only the grid's constants are offered: the constant line search's
own grid (``learned_vs_tuned.py --variant line-search``), its pooled choice and a per-class one on it.

With ``--score`` (§10q's named variant, fixed before scoring): where the search's answer sits at an end of
its grid (:func:`~learnguide.core.line_search.choose_schedule` warns; judge-free), the rule's per-class
schedules replace it; they are sampled and judged as RESULTS.md judges (both judges, 25 steps) on RESULTS.md's
evaluation sets and on three fresh sets (seeds ``--fresh-seeds``, never used before), beside the search's
own answer and RESULTS.md's tuned winners on the same sets. Where the answer is inside its grid the variant is
the search itself, and nothing is scored.

    PYTHONPATH=benchmarks python benchmarks/class_landscape.py --checkpoint mnist/under_trained
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from class_choice_agreement import schedule_of
from class_omega_headroom import PerClassGuidance, pick, standard_error_moves
from learned_vs_tuned import evaluation_setup, score, tuned_winners
from learnguide.core.line_search import choose_schedule, common_draw, search_statistic
from learnguide.images.evaluation import sample_set
from results_file import add_results
from statistic_landscape import JUDGES, SEARCH


def score_rule(setup: tuple, checkpoint: str, searched: str, rule: list[str], fresh_seeds: list[int]) -> dict:
    """Scores (:func:`learned_vs_tuned.score`, both judges) of the per-class ``rule`` schedules (labels, one
    per class), the search's answer ``searched`` (a label) and RESULTS.md's tuned winners of ``checkpoint``
    on ``setup``'s evaluation sets (:func:`evaluation_setup`) and on fresh sets of the same size:
    ``{"results sets" | "fresh sets": {method: scores}}``."""
    dataset, _, scorer, eval_sets = setup
    k, per_class = dataset.num_classes, len(eval_sets[0][0]) // dataset.num_classes
    methods = {
        "per-class rule": PerClassGuidance([schedule_of(label) for label in rule]),
        f"search: {searched}": schedule_of(searched),
        **tuned_winners(*checkpoint.split("/")),
    }
    fresh = [sample_set(k, per_class, seed) for seed in fresh_seeds]
    return {
        name: {label: score(scorer, g, sets, f"{name} {label}") for label, g in methods.items()}
        for name, sets in (("results sets", eval_sets), ("fresh sets", fresh))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--statistic", default="energy+covariance", choices=["energy", "energy+covariance"])
    parser.add_argument("--z", type=float, default=2.0, help="standard errors a class's gain must clear")
    parser.add_argument("--boots", type=int, default=200, help="paired bootstrap resamples per class")
    parser.add_argument(
        "--family", default="all", choices=("all", "constant"), help="the grid: every schedule, or constants"
    )
    parser.add_argument("--score", action="store_true", help="score the variant (docstring)")
    parser.add_argument("--fresh-seeds", type=int, nargs=3, default=[300, 301, 302])
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--features", type=Path, default=Path("runs/statistic-landscape"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_landscape.json"))
    args = parser.parse_args()
    saved = load_file(str(args.features / f"{args.checkpoint.replace('/', '-')}.safetensors"))
    setup = evaluation_setup(*args.checkpoint.split("/"), args.work)
    dataset, scorer = setup[0], setup[2]
    _, data_labels = common_draw(dataset.data_sampler("train", balanced=True), SEARCH)
    true, labels = saved["true"], saved["labels"]
    if not torch.equal(data_labels[: len(labels)], labels):
        raise SystemExit("the saved features were not drawn with this search's data: rerun the landscape")
    schedules = [
        key.removesuffix("/phi")
        for key in saved
        if key.endswith("/phi") and key.startswith("constant" if args.family == "constant" else "")
    ]
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
    constants = [i for i, label in enumerate(schedules) if label.startswith("constant")]
    cosines = [i for i in range(len(schedules)) if i not in constants]
    _, _, at_end = choose_schedule(config, [pooled[i] for i in constants], [pooled[i] for i in cosines])
    scored = {}
    if args.score and at_end is not None:
        rule = chosen[f"per class, z = {args.z:g}"]
        scored = score_rule(setup, args.checkpoint, schedules[start], rule, args.fresh_seeds)
    elif args.score:
        print("the search's answer is inside its grid: the variant is the search itself; nothing scored")
    family = "" if args.family == "all" else f" {args.family}"
    entry = {
        "choices": chosen,
        "per_class_statistic": {s: per_class[:, i].tolist() for i, s in enumerate(schedules)},
        "judged": judged,
        "search_at_grid_end": at_end,
        "scores": scored,
    }
    add_results(args.out, {f"{args.checkpoint} {args.statistic}{family}": entry})


if __name__ == "__main__":
    main()
