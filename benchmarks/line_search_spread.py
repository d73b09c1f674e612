"""How far another seed moves the recommended line search's answer on the image checkpoints (issue 14).

For each checkpoint, runs ``VARIANTS["line-search"]`` of ``learned_vs_tuned.py`` (5 constants × 640 samples
at 25 steps, pooled energy distance with β = 1.75 in the clean feature classifier's pooled features) once
per ``--seeds`` value (other noise, other data items), and records each answer with the search's own
half-sample estimate of its spread (``LineSearchRecord.omega_spread``) and the share of halves that guide at
all (``guided_share``). The table compares the standard deviation of the answers over seeds with the mean
estimate, and shows each seed's share of halves choosing no guidance. No judge is consulted.

    PYTHONPATH=benchmarks python benchmarks/line_search_spread.py --checkpoints digits/under_trained \
      mnist/well_trained --seeds 0 1 2

Writes ``benchmarks/results/line_search_spread.json`` (one entry per checkpoint and seed, skipped when
there) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from learned_vs_tuned import (
    CHECKPOINTS,
    VARIANTS,
    best_tuned,
    evaluation_setup,
    judged_against,
    known_scores,
    score,
    score_with_baselines,
    tuned_winners,
    variant_features,
)
from learnguide.core.guidance import ConstantGuidance
from learnguide.core.line_search import line_search_omega
from learnguide.data.images import load_dataset
from learnguide.images.denoisers import load_image_denoiser
from results_file import add_results, read_results


def spread_over_seeds(name: str, seeds: list[int], work: Path, out: Path) -> None:
    """The line search of ``VARIANTS["line-search"]`` on checkpoint ``name`` once per seed of ``seeds`` (the
    checkpoint, its data and φ loaded once), each record added to ``out``; seeds already there are skipped."""
    todo = [seed for seed in seeds if f"{name}@{seed}" not in read_results(out)]
    if not todo:
        return
    spec = VARIANTS["line-search"]
    dataset = load_dataset(name.split("/")[0])
    denoiser = load_image_denoiser(f"checkpoints/{name}", data_id=dataset.fingerprint())
    data = dataset.data_sampler("train", balanced=spec.balanced)
    phi = variant_features(dataset, spec, work)
    for seed in todo:
        config = replace(spec.line_search, seed=seed)
        found = line_search_omega(denoiser, denoiser.schedule, data, config, phi)
        print(
            f"{name} seed {seed}: ω = {found.omega:.4f}, half-sample spread {found.omega_spread:.4f}, "
            f"halves guiding {found.guided_share:.2f}"
        )
        record = {**found.found(), "seconds": found.seconds, "denoiser_evals": found.denoiser_evals}
        add_results(out, {f"{name}@{seed}": record})


def score_answers(name: str, work: Path, out: Path, baselines_from: Path) -> None:
    """Score each seed's constant answer of ``name`` recorded in ``out`` on RESULTS.md's evaluation sets in
    both judges' features, beside the tuned winners (taken from ``baselines_from``'s entries judged against
    the test split when there, else sampled) and ω = 0; kept in ``out`` under ``<name>@scores``."""
    report = read_results(out)
    answers = {k.split("@")[1]: v for k, v in report.items() if k.startswith(f"{name}@") and "omega" in v}
    done = report.get(f"{name}@scores", {"baselines": {}, "answers": {}})
    todo = [
        seed
        for seed, found in answers.items()
        if found["shape"] == "constant" and seed not in done["answers"]
    ]
    if not todo:
        return
    dataset_name, regime = name.split("/")
    _, _, scorer, eval_sets = evaluation_setup(dataset_name, regime, work)
    if not done["baselines"]:
        tested = judged_against(read_results(baselines_from), "test")
        winners = tuned_winners(dataset_name, regime)
        known = {k: v for k, v in known_scores(tested, name).items() if k in winners or k == "unguided"}
        done["baselines"] = score_with_baselines(scorer, None, winners, eval_sets, known, name)
    for seed in todo:
        omega = answers[seed]["omega"]
        done["answers"][seed] = score(
            scorer, ConstantGuidance(omega), eval_sets, f"{name} seed {seed}: ω = {omega:.4f}"
        )
        add_results(out, {f"{name}@scores": done})


def scores_table(report: dict) -> str:
    """Per checkpoint scored: each seed's answer's FD over the best tuned baseline's, in the evaluation and
    held-out judges' features."""
    rows = ["| checkpoint | seed | ω | FD ratio to best tuned (eval. / held-out) |", "|---|---|---|---|"]
    for key, entry in report.items():
        if not key.endswith("@scores"):
            continue
        name = key.split("@")[0]
        for seed, scored in entry["answers"].items():
            ratios = [scored[m] / best_tuned(entry["baselines"], m)[m] for m in ("fd", "held_out_fd")]
            omega = report[f"{name}@{seed}"]["omega"]
            rows.append(f"| {name} | {seed} | {omega:.3f} | {ratios[0]:.2f} / {ratios[1]:.2f} |")
    return "\n".join(rows)


def markdown_table(report: dict) -> str:
    """Per checkpoint: the answer at each seed, their standard deviation, the mean half-sample estimate and
    each seed's share of halves choosing no guidance (– for records made before it was kept)."""
    rows = [
        "| checkpoint | ω by seed | std over seeds | half-sample estimate (mean) | halves unguided by seed |",
        "|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(key.split("@")[0] for key in report):
        found = [v for k, v in report.items() if k.split("@")[0] == name and "omega" in v]
        omegas = [f["omega"] for f in found]
        spread = statistics.stdev(omegas) if len(omegas) > 1 else float("nan")
        estimate = statistics.mean(f["omega_spread"] for f in found)
        unguided = [f"{1 - f['guided_share']:.2f}" if "guided_share" in f else "–" for f in found]
        rows.append(
            f"| {name} | {' / '.join(f'{w:.3f}' for w in omegas)} | {spread:.3f} | {estimate:.3f} | "
            f"{' / '.join(unguided)} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/line_search_spread.json"))
    parser.add_argument(
        "--score",
        action="store_true",
        help="also score each seed's answer as RESULTS.md scores (both judges)",
    )
    parser.add_argument(
        "--baselines-from",
        type=Path,
        default=Path("benchmarks/results/learned_vs_tuned.json"),
        help="with --score: reuse the tuned winners' scores of this learned_vs_tuned.py output",
    )
    args = parser.parse_args()
    known = [f"{d}/{r}" for d, r in CHECKPOINTS]
    for name in args.checkpoints:
        if name not in known:
            raise SystemExit(f"--checkpoints: unknown checkpoint {name!r}; known: {known}")
    for name in args.checkpoints:
        spread_over_seeds(name, args.seeds, args.work, args.out)
    for name in args.checkpoints if args.score else []:
        score_answers(name, args.work, args.out, args.baselines_from)
    print(markdown_table(read_results(args.out)))
    if args.score:
        print(scores_table(read_results(args.out)))


if __name__ == "__main__":
    main()
