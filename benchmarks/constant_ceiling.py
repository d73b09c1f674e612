"""What a perfect fit could reach: the constant ω at a statistic's landscape minimum, scored as learned ω is
(issue 14 diagnostic).

A fit of a statistic can at best return the ω where that statistic is lowest. For each checkpoint this scores
two constants on RESULTS.md's evaluation sets, in both classifiers' features, next to the best tuned baseline
(``benchmarks/learned_vs_tuned.py``'s winners, scores reused from its JSON):

- the argmin of the learning statistic's final-sample landscape (pooled energy distance, β = 1, in the clean
  feature classifier's pooled features; ``benchmarks/final_sample_landscape.py``, tuning seed): the ceiling
  of a fit that finds its statistic's minimum exactly, as a constant;
- the argmin of the held-out judge's own FD on the same landscape: what a constant could reach if it were
  tuned on the judge (a peek, for the diagnosis only; nothing is fitted to it).

    python benchmarks/constant_ceiling.py --out benchmarks/results/constant_ceiling.json
    python benchmarks/constant_ceiling.py --table
"""

from __future__ import annotations

import json
from pathlib import Path

from grid_ceiling import ceiling_arguments
from learned_vs_tuned import best_tuned, evaluation_setup, known_scores, score
from learnguide.core.guidance import ConstantGuidance
from results_file import add_results, read_results

LANDSCAPES = "benchmarks/results/final_landscape-{short}-{regime}-kid.json"
STATISTIC = "runs/learned-vs-tuned/{dataset}-feature-classifier:features:pooled/energy-1.0"
JUDGE = "judge/held_out_classifier_fd"
SHORT = {"digits": "digits", "mnist": "mnist", "fashion-mnist": "fashion"}


def landscape_argmins(dataset: str, regime: str) -> dict[str, float]:
    """``{"statistic": ω, "held-out judge": ω}``: the landscape's argmin of each over its constant grid."""
    path = LANDSCAPES.format(short=SHORT[dataset], regime=regime.split("_")[0])
    argmin = json.loads(Path(path).read_text())["argmin"]
    return {"statistic": argmin[STATISTIC.format(dataset=dataset)], "held-out judge": argmin[JUDGE]}


def run(checkpoint: str, known: dict, work: Path) -> dict:
    """Score each landscape argmin of ``checkpoint`` as a constant (reusing ``known`` scores of the same
    constant); returns ``{"argmins": …, "scores": {label: metrics}}``."""
    dataset_name, regime = checkpoint.split("/")
    argmins = landscape_argmins(dataset_name, regime)
    setup = None
    scores = {}
    for omega in sorted(set(argmins.values())):
        label = "unguided" if omega == 0 else json.dumps(ConstantGuidance(omega).config())
        if label not in known:
            setup = setup or evaluation_setup(dataset_name, regime, work)
            known[label] = score(setup[2], ConstantGuidance(omega), setup[3], f"{checkpoint} ω = {omega}")
        scores[str(omega)] = known[label]
    return {"argmins": argmins, "scores": scores}


def markdown_table(report: dict, tuned: dict) -> str:
    """Per checkpoint: each argmin's constant and its FD (evaluation, held-out) over the best tuned one's."""
    rows = [
        "| checkpoint | statistic's argmin ω | FD ratio eval. / held-out | held-out judge's argmin ω "
        "| FD ratio eval. / held-out |",
        "|---|---|---|---|---|",
    ]
    for checkpoint, entry in report.items():
        cells = [checkpoint]
        for which in ("statistic", "held-out judge"):
            omega = entry["argmins"][which]
            got = entry["scores"][str(omega)]
            ratios = [got[m] / best_tuned(tuned[checkpoint], m)[m] for m in ("fd", "held_out_fd")]
            cells += [f"{omega:g}", " / ".join(f"{r:.2f}" for r in ratios)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    args = ceiling_arguments(__doc__.split("\n\n")[0], "constant_ceiling.json")
    scored = json.loads(args.baselines.read_text())
    tuned = {name: known_scores(scored, name) for name in args.checkpoints}
    if args.table:
        print(markdown_table(json.loads(args.out.read_text()), tuned))
        return
    for name in args.checkpoints:
        add_results(args.out, {name: run(name, dict(tuned[name]), args.work)})
    print(markdown_table(read_results(args.out), tuned))


if __name__ == "__main__":
    main()
