"""The line search on the toy demo (issue 14): which statistic finds the toy's best constant ω.

For each demo regime (its denoisers reloaded from a demo folder), runs ``line_search_omega`` on the demo's
20-step DDIM grid with the demo's search settings (4,096 points per ω of {0, 0.5, 1, 1.5, 2}, balanced
classes, 4× as many data points, the points' own coordinates as features) for each statistic (pooled
``energy``, ``class-energy``) and energy exponent β, and for the images' recommended search
(``energy+covariance`` with the increasing cosine shape beside the constants), and scores each answer on the
demo's evaluation sets (5 sets of 4,000 per class; the mean over classes of the energy distance to exact
samples). The demo's own tuned baselines are read from that folder's ``results.json`` for the table.

    PYTHONPATH=benchmarks python benchmarks/toy_line_search.py --demo runs/demo-line-search-class \
        [--variants "energy+covariance, cosine shape (the image recommendation)"]

Writes ``benchmarks/results/toy_line_search.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from learnguide.apps.comparison import evaluate_over_sets
from learnguide.apps.demo import REGIMES, DemoConfig, demo_scoring, toy_denoiser
from learnguide.core.line_search import line_search_omega, schedule_network
from learnguide.data.toy import ring_mixture
from results_file import add_results, read_results

VARIANTS = {  # label: the demo search's settings changed
    "energy, β = 1.75 (the image default)": {"statistic": "energy"},
    "class-energy, β = 1.75": {"statistic": "class-energy"},
    "energy, β = 1": {"statistic": "energy", "beta": 1.0},
    "class-energy, β = 1": {"statistic": "class-energy", "beta": 1.0},
    "energy+covariance, cosine shape (the image recommendation)": {
        "statistic": "energy+covariance", "shape": "increasing-cosine",
    },
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="a full `learnguide demo` output folder")
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/toy_line_search.json"))
    args = parser.parse_args()
    demo = json.loads((args.demo / "results.json").read_text())
    if demo["meta"]["quick"]:
        raise SystemExit(f"{args.demo} holds a --quick demo: give a full one")
    config, mixture = DemoConfig(seed=demo["meta"]["seed"]), ring_mixture()
    entries = {}
    for regime in REGIMES:
        model, _ = toy_denoiser(regime, mixture, config, args.demo, progress=False)
        scorer, _, eval_sets = demo_scoring(model, mixture, config)
        rows, data = {}, mixture.data_sampler(balanced=True)
        for label in args.variants:
            search = replace(config.line_search, **VARIANTS[label], seed=config.seed)
            found = line_search_omega(model, model.schedule, data, search, progress=False)
            k = mixture.num_classes
            answer = schedule_network(model.schedule, torch.arange(k), found.omega, k, found.shape)
            scores = evaluate_over_sets(scorer.score, answer, eval_sets)
            rows[label] = {"found": found.found(), "denoiser_evals": found.denoiser_evals, **scores}
        tuned = {m: demo[regime.name][m] for m in ("unguided", "constant", "interval", "increasing")}
        entries[regime.name] = {"searches": rows, "demo": {m: e["energy"] for m, e in tuned.items()}}
        best = min(e["energy"] for e in tuned.values())
        baselines = ", ".join(f"{m} {e:.4f}" for m, e in entries[regime.name]["demo"].items())
        print(f"\n{regime.name} (best tuned {best:.4f}; {baselines})")
        print("| statistic | answer | energy distance | ratio to best tuned |\n|---|---|---|---|")
        for label, row in rows.items():
            chosen = f"{row['found']['shape']} {row['found']['omega']:.3f}"
            energy = f"{row['energy']:.4f} ± {row['energy_std']:.4f}"
            print(f"| {label} | {chosen} | {energy} | {row['energy'] / best:.2f} |")
    previous = read_results(args.out)  # a --variants subset keeps the other variants' rows
    for regime, entry in entries.items():
        entry["searches"] = previous.get(regime, {}).get("searches", {}) | entry["searches"]
    add_results(args.out, entries)


if __name__ == "__main__":
    main()
