"""How far another seed moves the recommended line search's answer on the image checkpoints (issue 14).

For each checkpoint, runs a line-search variant of ``learned_vs_tuned.py`` (``--variant``; default
``line-search``: 5 constants × 640 samples at 25 steps, pooled energy distance with β = 1.75 in the clean
feature classifier's pooled features; ``batchnorm-covariance-search``: the recommended shape search) once
per ``--seeds`` value (other noise, other data items), and records each answer with the search's own
half-sample estimate of its spread (``LineSearchRecord.omega_spread``) and the share of halves that guide at
all (``guided_share``). The table compares the standard deviation of the answers over seeds with the mean
estimate, and shows each seed's share of halves choosing no guidance. No judge is consulted, except with
``--score``, which scores each answer (a constant or a shape's schedule) as RESULTS.md scores.

    PYTHONPATH=benchmarks python benchmarks/line_search_spread.py --checkpoints digits/under_trained \
      mnist/well_trained --seeds 0 1 2
    PYTHONPATH=benchmarks python benchmarks/line_search_spread.py --variant batchnorm-covariance-search \
      --checkpoints mnist/under_trained --seeds 1 2 --score

Writes ``benchmarks/results/line_search_spread.json`` (one entry per checkpoint and seed, skipped when
there; keyed ``<checkpoint>@<seed>``, or ``<checkpoint>#<variant>@<seed>`` for another variant) and prints
a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from learned_vs_tuned import (
    CHECKPOINTS,
    VARIANTS,
    best_tuned,
    evaluation_setup,
    recorded_baselines,
    score,
    score_with_baselines,
    tuned_winners,
    variant_features,
)
from learnguide.core.line_search import line_search_omega, schedule_network
from learnguide.data.images import load_dataset
from learnguide.images.denoisers import load_image_denoiser
from results_file import add_results, read_results
from statistic_landscape import searched_key


def spread_over_seeds(name: str, variant: str, seeds: list[int], work: Path, out: Path) -> None:
    """The line search of ``VARIANTS[variant]`` on checkpoint ``name`` once per seed of ``seeds`` (the
    checkpoint, its data and φ loaded once), each record added to ``out``; seeds already there are skipped."""
    key = searched_key(name, variant)
    todo = [seed for seed in seeds if f"{key}@{seed}" not in read_results(out)]
    if not todo:
        return
    spec = VARIANTS[variant]
    dataset = load_dataset(name.split("/")[0])
    denoiser = load_image_denoiser(f"checkpoints/{name}", data_id=dataset.fingerprint())
    data = dataset.data_sampler("train", balanced=spec.balanced)
    phi = variant_features(dataset, spec, work)
    for seed in todo:
        config = replace(spec.line_search, seed=seed)
        found = line_search_omega(denoiser, denoiser.schedule, data, config, phi)
        print(
            f"{key} seed {seed}: {found.shape} ω = {found.omega:.4f}, half-sample spread "
            f"{found.omega_spread:.4f}, halves guiding {found.guided_share:.2f}"
        )
        record = {**found.found(), "seconds": found.seconds, "denoiser_evals": found.denoiser_evals}
        add_results(out, {f"{key}@{seed}": record})


def score_answers(name: str, variant: str, work: Path, out: Path, baselines_from: Path) -> None:
    """Score each seed's answer (a constant, or ω_max of a shape) of ``name`` under ``variant`` recorded in
    ``out`` on RESULTS.md's evaluation sets in both judges' features, beside the tuned winners (taken from
    ``baselines_from``'s entries judged against the test split when there, else sampled) and ω = 0; kept in
    ``out`` under ``<key>@scores``."""
    report, key = read_results(out), searched_key(name, variant)
    answers = {k.split("@")[1]: v for k, v in report.items() if k.startswith(f"{key}@") and "omega" in v}
    done = report.get(f"{key}@scores", {"baselines": {}, "answers": {}})
    todo = [seed for seed in answers if seed not in done["answers"]]
    if not todo:
        return
    dataset_name, regime = name.split("/")
    dataset, denoiser, scorer, eval_sets = evaluation_setup(dataset_name, regime, work)
    if not done["baselines"]:
        known = recorded_baselines(read_results(baselines_from), name)
        winners = tuned_winners(dataset_name, regime)
        done["baselines"] = score_with_baselines(scorer, None, winners, eval_sets, known, name)
    k = dataset.num_classes
    for seed in todo:
        omega, shape = answers[seed]["omega"], answers[seed]["shape"]
        answer = schedule_network(denoiser.schedule, torch.arange(k), omega, k, shape)
        label = f"{key} seed {seed}: {shape} ω = {omega:.4f}"
        done["answers"][seed] = score(scorer, answer, eval_sets, label)
        add_results(out, {f"{key}@scores": done})


def answer_label(found: dict) -> str:
    """A search's answer in a few characters: the constant ω, or the shape and its ω_max."""
    shape = "" if found["shape"] == "constant" else found["shape"].removeprefix("increasing-") + " "
    return f"{shape}{found['omega']:.3f}"


def scores_table(report: dict) -> str:
    """Per checkpoint scored: each seed's answer's FD over the best tuned baseline's, in the evaluation and
    held-out judges' features."""
    rows = ["| checkpoint | seed | answer | FD ratio to best tuned (eval. / held-out) |", "|---|---|---|---|"]
    for key, entry in report.items():
        if not key.endswith("@scores"):
            continue
        name = key.split("@")[0]
        for seed, scored in entry["answers"].items():
            ratios = [scored[m] / best_tuned(entry["baselines"], m)[m] for m in ("fd", "held_out_fd")]
            answer = answer_label(report[f"{name}@{seed}"])
            rows.append(f"| {name} | {seed} | {answer} | {ratios[0]:.3f} / {ratios[1]:.3f} |")
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
            f"| {name} | {' / '.join(answer_label(f) for f in found)} | {spread:.3f} | {estimate:.3f} | "
            f"{' / '.join(unguided)} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variant", default="line-search", help="a line-search VARIANTS key")
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
    searches = [name for name, spec in VARIANTS.items() if spec.line_search is not None]
    if args.variant not in searches:
        parser.error(f"--variant: {args.variant!r} is not a line-search variant; known: {searches}")
    known = [f"{d}/{r}" for d, r in CHECKPOINTS]
    for name in args.checkpoints:
        if name not in known:
            parser.error(f"--checkpoints: unknown checkpoint {name!r}; known: {known}")
    for name in args.checkpoints:
        spread_over_seeds(name, args.variant, args.seeds, args.work, args.out)
    for name in args.checkpoints if args.score else []:
        score_answers(name, args.variant, args.work, args.out, args.baselines_from)
    print(markdown_table(read_results(args.out)))
    if args.score:
        print(scores_table(read_results(args.out)))


if __name__ == "__main__":
    main()
