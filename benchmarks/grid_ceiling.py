"""What any statistic could reach by choosing from the recommended search's grid (issue 14 diagnostic).

The shape search (``learned_vs_tuned.py --variant batchnorm-covariance-search``) returns a schedule of its own
grid's families: a constant ω of ``--omegas`` or the increasing cosine schedule at a ``--scales`` ω_max (the
vertex between grid points). Whatever statistic it minimises, its answer can be no better than the best of
those schedules in a judge's eyes (up to the vertex's step between grid points). This scores every schedule of
the grid on RESULTS.md's evaluation sets in both classifiers' features, as learned ω is scored, with each
one's ratio to the best tuned baseline (the tuned winners' scores recorded by ``learned_vs_tuned.py``; a grid
schedule that is a tuned winner or ω = 0 reuses its recorded score). The best grid schedule per judge is a
peek, a ceiling for the diagnosis only: nothing is chosen by it.

    PYTHONPATH=benchmarks python benchmarks/grid_ceiling.py --checkpoints digits/under_trained \\
        mnist/well_trained fashion-mnist/well_trained
    PYTHONPATH=benchmarks python benchmarks/grid_ceiling.py --table
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from learned_vs_tuned import (
    CHECKPOINTS,
    VARIANTS,
    best_tuned,
    evaluation_setup,
    recorded_baselines,
    score,
)
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, IncreasingGuidance
from results_file import add_results, read_results

SEARCH = VARIANTS["batchnorm-covariance-search"].line_search
METRICS = {"fd": "eval.", "held_out_fd": "held-out"}


def grid_schedules() -> dict[str, GuidanceSchedule]:
    """The search's grid (``LineSearchConfig.schedules``), keyed by a short label."""
    return {
        (f"cosine {g.omega_max:g}" if isinstance(g, IncreasingGuidance) else f"constant {g.value:g}"): g
        for g in SEARCH.schedules()
    }


def run(checkpoint: str, work: Path, baselines: Path) -> dict:
    """Each grid schedule's scores and ratios to the best tuned baseline on ``checkpoint``:
    ``{label: {"scores", "ratios", "recorded"}}`` (``recorded``: reused from ``baselines``)."""
    tuned = recorded_baselines(read_results(baselines), checkpoint)
    if "unguided" not in tuned:
        raise SystemExit(f"{baselines} has no scores of {checkpoint}: run learned_vs_tuned.py first")
    best = {m: best_tuned(tuned, m)[m] for m in METRICS}
    setup, found = None, {}
    for label, guidance in grid_schedules().items():
        unguided = guidance.config() == ConstantGuidance(0.0).config()
        key = "unguided" if unguided else json.dumps(guidance.config())
        if key in tuned:
            scores = tuned[key]
        else:
            setup = setup or evaluation_setup(*checkpoint.split("/"), work)
            scores = score(setup[2], guidance, setup[3], f"{checkpoint} {label}")
        ratios = {m: scores[m] / best[m] for m in METRICS}
        print(
            f"{checkpoint} {label}: ratio to best tuned (eval. / held-out)",
            {m: round(r, 3) for m, r in ratios.items()},
        )
        found[label] = {"scores": scores, "ratios": ratios, "recorded": key in tuned}
    return found


def markdown_table(report: dict) -> str:
    """Per checkpoint: every grid schedule's FD ratio (evaluation / held-out) to the best tuned baseline,
    and each judge's best grid schedule."""
    labels = list(grid_schedules())
    rows = [
        "| checkpoint | " + " | ".join(labels) + " | best for eval. | best for held-out |",
        "|---|" + "---|" * (len(labels) + 2),
    ]
    for checkpoint, entry in report.items():
        cells = [f"{entry[a]['ratios']['fd']:.2f} / {entry[a]['ratios']['held_out_fd']:.2f}" for a in labels]
        best = [min(labels, key=lambda a, m=m: entry[a]["ratios"][m]) for m in METRICS]
        cells += [f"{a} ({entry[a]['ratios'][m]:.3f})" for a, m in zip(best, METRICS, strict=True)]
        rows.append(f"| {checkpoint} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ceiling_arguments(description: str, out: str) -> argparse.Namespace:
    """The parsed flags of a ceiling diagnostic: ``--checkpoints``, ``--baselines`` (the tuned winners'
    recorded scores), ``--work``, ``--out`` (default ``benchmarks/results/<out>``) and ``--table``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--baselines", type=Path, default=Path("benchmarks/results/learned_vs_tuned.json"))
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results") / out)
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args()
    if unknown := [c for c in args.checkpoints if tuple(c.split("/")) not in CHECKPOINTS]:
        parser.error(f"--checkpoints {' '.join(unknown)}: not one of RESULTS.md's six")
    return args


def main() -> None:
    args = ceiling_arguments(__doc__.split("\n\n")[0], "grid_ceiling.json")
    if not args.table:
        for checkpoint in args.checkpoints:
            began = time.perf_counter()
            found = run(checkpoint, args.work, args.baselines)
            add_results(args.out, {checkpoint: found | {"seconds": time.perf_counter() - began}})
    report = read_results(args.out)
    print(markdown_table({k: {a: v for a, v in e.items() if a != "seconds"} for k, e in report.items()}))


if __name__ == "__main__":
    main()
