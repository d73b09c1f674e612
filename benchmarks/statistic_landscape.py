"""Which judge-free statistic ranks constants *and* shapes as the judges do? (issue 14 diagnostic)

The shape search (``learned_vs_tuned.py --variant shape-search``) keeps the increasing cosine schedule on
Fashion-MNIST well_trained, but at ω_max = 4, beyond the judges' 2: the line search's statistic (pooled energy
distance, β = 1.75, clean feature classifier) keeps falling with late guidance that the judges' Fréchet
distance punishes. This draws the final samples of the line search (same settings and seed: 640 from the same
noise, 64 per class) once per schedule (``--constants``, the increasing cosine schedule at ``--cosine``
scales, the linear one at ``--linear``, guidance on the window ``--interval`` at ``--interval-omegas``; by
default the shape search's whole grid) and saves their features
(``--features``), so that any statistic can be scored later without drawing again (``--from-features``).
The same samples are scored by:

- judge-free statistics a search could minimise, in the clean feature classifier's pooled features against
  the search's 2,560 balanced training images: the pooled energy distance with β = 1.75 (the search's) and
  β = 1, the Fréchet distance, and the energy distance plus the Fréchet distance's covariance term;
- the two judges (evaluation and held-out classifier), the Fréchet distance against the test split: a
  diagnosis only, never a choice (640 samples, so their FD is higher than RESULTS.md's; its ranking is what
  matters).

Writes JSON; prints the table, each statistic's argmin and, for each search statistic (``--statistic``
values of :class:`~learnguide.core.line_search.LineSearchConfig`), what the shape search would choose from
these losses (:func:`~learnguide.core.line_search.choose_schedule`; the same samples it draws, so the same
answer as ``learned_vs_tuned.py --variant shape-search`` or ``covariance-search``). With ``--score`` each
choice is also scored as RESULTS.md scores (three sets, both judges).

With ``--variant`` the search statistics and "FD clean" are measured in that line-search variant's feature
classifier instead (``spatial-search``: the cnn-spatial one; ``batchnorm-search``: the cnn-batchnorm one;
same samples, saved and keyed apart).

With ``--seed`` the search's samples and data items of another seed are drawn (the search with
``LineSearchConfig.seed``). Each column's vertex over the constants (:func:`parabola_minimum`) is recorded,
and ``--seeds-table`` prints them for every seed recorded, and for all saved seeds' samples taken together:
whether a seed that moves the search's answer moves the judges' too (sample noise both would see) or only the
search's statistics (its feature space). It also gives each judge's vertex from random subsets of
``--judge-sizes`` samples of them: whether a judge's preference holds as its FD's small-sample bias shrinks.

    PYTHONPATH=benchmarks python benchmarks/statistic_landscape.py --checkpoint fashion-mnist/well_trained
    PYTHONPATH=benchmarks python benchmarks/statistic_landscape.py --checkpoint fashion-mnist/well_trained \
        --from-features --score energy+covariance
    PYTHONPATH=benchmarks python benchmarks/statistic_landscape.py --checkpoint mnist/well_trained --cosine \
        --seed 2 --seeds-table
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from learned_vs_tuned import VARIANTS, evaluation_setup, score, variant_features
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, IncreasingGuidance, IntervalGuidance
from learnguide.core.line_search import (
    choose_schedule,
    common_draw,
    final_samples,
    parabola_minimum,
    schedule_network,
    search_statistic,
)
from learnguide.core.metrics import feature_moments, frechet_distance_from_moments
from learnguide.images.classifier import predict
from results_file import add_results, read_results

SEARCH = VARIANTS["shape-search"].line_search
COLUMNS = {"energy": "L β=1.75 (search)", "energy+covariance": "L β=1.75 + cov. term"}  # search statistics
JUDGES = ("FD eval. judge", "FD held-out judge")
CONSTANTS = [f"constant {w:g}" for w in SEARCH.omegas]  # the labels of the search's constants


def add_saved_paths(parser: argparse.ArgumentParser, out: str, baselines: bool = True) -> None:
    """The paths of a benchmark that reads these saved features: ``--work`` (the feature classifiers),
    ``--features``, ``--baselines`` (the tuned baselines' recorded scores; only if ``baselines``) and
    ``--out`` (default ``benchmarks/results/<out>``)."""
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--features", type=Path, default=Path("runs/statistic-landscape"))
    if baselines:
        recorded = Path("benchmarks/results/learned_vs_tuned.json")
        parser.add_argument("--baselines", type=Path, default=recorded)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results") / out)


def judge_references(scorer) -> dict:
    """Each judge's reference statistics (test split), keyed as ``JUDGES``."""
    return dict(zip(JUDGES, (scorer.reference, scorer.held_out[1]), strict=True))


def schedules(args: argparse.Namespace) -> dict[str, GuidanceSchedule]:
    """The schedules scored, keyed by a short label."""
    found: dict[str, GuidanceSchedule] = {f"constant {w:g}": ConstantGuidance(w) for w in args.constants}
    found |= {f"cosine {w:g}": IncreasingGuidance(w, "cosine") for w in args.cosine}
    found |= {f"linear {w:g}": IncreasingGuidance(w, "linear") for w in args.linear}
    if args.interval_omegas:
        lo, hi = args.interval
        found |= {f"interval {w:g}": IntervalGuidance(w, lo, hi) for w in args.interval_omegas}
    return found


def draw_features(args: argparse.Namespace, setup: tuple) -> dict[str, torch.Tensor]:
    """Draw the search's samples under every schedule (``setup``: :func:`evaluation_setup`'s) and return the
    features to save: ``true`` (clean feature classifier, data side), ``labels`` and, per schedule label,
    ``<label>/phi`` and ``<label>/<judge>``."""
    dataset, denoiser, scorer, _ = setup
    spec = VARIANTS[args.variant]
    config, phi = replace(spec.line_search, seed=args.seed), variant_features(dataset, spec, args.work)
    x0, cond = common_draw(dataset.data_sampler("train", balanced=spec.balanced), config)
    n, labels = config.samples, cond[: config.samples]
    saved = {"true": phi(x0, x0.new_zeros(len(x0))).double(), "labels": labels}
    judges = dict(zip(JUDGES, (scorer.classifier, scorer.held_out[0]), strict=True))
    found = schedules(args)
    drawn = final_samples(
        denoiser, denoiser.schedule, list(found.values()), labels, tuple(x0.shape[1:]), config
    )
    for label, samples in zip(found, drawn, strict=True):
        saved[f"{label}/phi"] = phi(samples, samples.new_zeros(n)).double()
        for name, model in judges.items():
            saved[f"{label}/{name}"] = predict(model, samples)[0].double()
    return saved


def beta_column(stat: str, beta: float) -> str:
    """The column of :func:`table_from`'s table holding search statistic ``stat`` at ``beta``."""
    return f"L β={beta:g}" + (" + cov. term" if stat == "energy+covariance" else "")


def beta_columns(betas: Sequence[float]) -> dict[str, str]:
    """For each of ``betas``: the search statistics at that β, named ``<statistic>@<β>``, -> their column."""
    return {f"{stat}@{b:g}": beta_column(stat, b) for b in betas for stat in COLUMNS}


def table_from(
    saved: dict[str, torch.Tensor], scorer, betas: Sequence[float] = (1.0,)
) -> dict[str, dict[str, float]]:
    """Every statistic (the search's, and both at each of ``betas``: :func:`beta_columns`) and judge for
    every schedule of ``saved``."""
    true, labels = saved["true"], saved["labels"]
    true_moments = feature_moments(true)
    references = judge_references(scorer)
    table = {}
    for label in [key.removesuffix("/phi") for key in saved if key.endswith("/phi")]:
        guided = saved[f"{label}/phi"]
        searched = {
            COLUMNS[stat]: search_statistic(guided, true, replace(SEARCH, statistic=stat), labels)
            for stat in COLUMNS
        }
        searched |= {
            beta_column(stat, b): searched[COLUMNS[stat]]
            if b == SEARCH.beta
            else search_statistic(guided, true, replace(SEARCH, statistic=stat, beta=b), labels)
            for b in betas
            for stat in COLUMNS
        }
        table[label] = (
            searched
            | {"FD clean (train)": frechet_distance_from_moments(*feature_moments(guided), *true_moments)}
            | {name: references[name].frechet_distance(saved[f"{label}/{name}"]) for name in JUDGES}
        )
    return table


def constant_vertices(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """For every column of ``table``: the vertex over the search's constants (:func:`parabola_minimum`), when
    ``table`` holds them all."""
    if not all(label in table for label in CONSTANTS):
        return {}
    columns = next(iter(table.values()))
    return {c: parabola_minimum(list(SEARCH.omegas), [table[k][c] for k in CONSTANTS])[0] for c in columns}


def searched_key(checkpoint: str, variant: str) -> str:
    """The JSON key (and features file stem, :func:`file_stem`) of a search's samples on ``checkpoint`` in
    ``variant``'s features: ``<checkpoint>``, or ``<checkpoint>#<variant>`` for another than "line-search"."""
    return checkpoint + (f"#{variant}" if variant != "line-search" else "")


def file_stem(key: str) -> str:
    """The features file name (without suffix) of a JSON key ``<checkpoint>[#<variant>][@<seed>]``."""
    return key.replace("/", "-").replace("#", "-").replace("@", "-seed")


def joined_seeds(features: Path, searched: str) -> tuple[dict[str, torch.Tensor], int]:
    """The samples' and data items' features of every seed of ``searched`` (``<checkpoint>[#<variant>]``)
    saved in ``features``, taken together (the schedules all of them drew), and the number of seeds."""
    stem = file_stem(searched)
    paths = sorted(features.glob(f"{stem}.safetensors")) + sorted(features.glob(f"{stem}-seed*.safetensors"))
    saved = [load_file(str(path)) for path in paths]
    common = set.intersection(*(set(s) for s in saved))
    return {key: torch.cat([s[key] for s in saved]) for key in common}, len(saved)


def judge_vertices_by_size(
    joined: dict[str, torch.Tensor], scorer, sizes: list[int], draws: int = 12
) -> dict[str, dict[int, float]]:
    """Each judge's vertex over the constants of its FD averaged over ``draws`` random subsets of each size of
    ``sizes`` of ``joined``'s samples (the same rows for every ω: common noise kept), and at all of them."""
    total, found = len(joined["labels"]), {}
    for name, reference in judge_references(scorer).items():
        found[name] = {}
        for size in [*sizes, total]:
            gen, fds = torch.Generator().manual_seed(0), [0.0] * len(CONSTANTS)
            subsets = [
                torch.randperm(total, generator=gen)[:size] for _ in range(draws if size < total else 1)
            ]
            for rows in subsets:
                for i, label in enumerate(CONSTANTS):
                    fds[i] += reference.frechet_distance(joined[f"{label}/{name}"][rows]) / len(subsets)
            found[name][size] = parabola_minimum(list(SEARCH.omegas), fds)[0]
    return found


def seeds_table(results: dict, checkpoint: str) -> str:
    """Markdown: each column's vertex over the constants for every seed of ``checkpoint`` in ``results``."""
    runs = {
        key: entry
        for key, entry in results.items()
        if key.split("@")[0] == checkpoint and entry.get("vertices")
    }
    if not runs:
        return f"no seeds of {checkpoint} with the constants' grid recorded"
    runs = dict(sorted(runs.items(), key=lambda item: "seeds" in item[1]))  # the seeds together last
    names = [
        f"{entry['seeds']} seeds together" if "seeds" in entry else f"seed {key.partition('@')[2] or 0}"
        for key, entry in runs.items()
    ]
    runs = {key: entry["vertices"] for key, entry in runs.items()}
    rows = [f"| statistic | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for column in next(iter(runs.values())):
        rows.append(f"| {column} | {' | '.join(f'{v[column]:.3f}' for v in runs.values())} |")
    return "\n".join(rows)


def search_choices(
    table: dict[str, dict[str, float]], columns: dict[str, str] = COLUMNS
) -> dict[str, tuple[str, float, str | None]]:
    """For each of ``columns`` (name -> ``table``'s column; by default the search statistics): the shape
    search's answer (family, ω or ω_max, warning) from ``table``'s losses, when it holds the whole grid."""
    cosines = [f"cosine {w:g}" for w in SEARCH.scales]
    if not all(label in table for label in CONSTANTS + cosines):
        return {}
    return {
        stat: choose_schedule(
            SEARCH, [table[c][column] for c in CONSTANTS], [table[c][column] for c in cosines]
        )
        for stat, column in columns.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--constants", type=float, nargs="*", default=list(SEARCH.omegas))
    parser.add_argument("--cosine", type=float, nargs="*", default=list(SEARCH.scales))
    parser.add_argument("--linear", type=float, nargs="*", default=[])
    parser.add_argument(
        "--interval-omegas", type=float, nargs="*", default=[], help="ω of interval schedules on --interval"
    )
    parser.add_argument(
        "--interval",
        type=float,
        nargs=2,
        default=[0.3, 0.8],
        metavar=("T_LO", "T_HI"),
        help="the window of t (where a step starts) the interval schedules guide in",
    )
    add_saved_paths(parser, "statistic_landscape.json", baselines=False)
    parser.add_argument("--from-features", action="store_true", help="score the saved features, draw nothing")
    parser.add_argument(
        "--betas",
        type=float,
        nargs="*",
        default=[1.0],
        help="also both search statistics at these β (columns 'L β=B', 'L β=B + cov. term'; choices "
        "'energy@B', 'energy+covariance@B')",
    )
    parser.add_argument(
        "--score", nargs="*", default=[], help="score these choices: a --statistic name, or one at --betas"
    )
    parser.add_argument("--seed", type=int, default=0, help="the search's seed (samples and data items)")
    parser.add_argument(
        "--variant",
        default="line-search",
        choices=[name for name, spec in VARIANTS.items() if spec.line_search is not None],
        help="whose feature classifier the search's statistics are measured in (its samples are the same)",
    )
    parser.add_argument("--seeds-table", action="store_true", help="print every recorded seed's vertices")
    parser.add_argument(
        "--judge-sizes",
        type=int,
        nargs="*",
        default=[300, 640],
        help="with --seeds-table: the judges' vertices from random subsets of all seeds' samples of these "
        "sizes (FD's small-sample bias), and from all",
    )
    args = parser.parse_args()
    if not 0.0 <= args.interval[0] < args.interval[1] <= 1.0:
        parser.error(f"--interval needs 0 <= T_LO < T_HI <= 1, got {args.interval}")
    if not all(0.0 < b < 2.0 for b in args.betas):
        parser.error(f"--betas needs 0 < β < 2 (the energy distance's range), got {args.betas}")
    columns = COLUMNS | beta_columns(args.betas)
    if unknown := [stat for stat in args.score if stat not in columns]:
        parser.error(f"--score {' '.join(unknown)}: not one of {', '.join(columns)}")
    searched = searched_key(args.checkpoint, args.variant)
    key = searched + (f"@{args.seed}" if args.seed else "")
    path = args.features / f"{file_stem(key)}.safetensors"
    began, setup = time.perf_counter(), evaluation_setup(*args.checkpoint.split("/"), args.work)
    if args.from_features:
        saved = load_file(str(path))
    else:
        saved = draw_features(args, setup)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({key: value.contiguous() for key, value in saved.items()}, str(path))
    table = table_from(saved, setup[2], args.betas)
    for label, row in table.items():
        print(label, {k: round(v, 5) for k, v in row.items()})
    argmins = {stat: min(table, key=lambda lab: table[lab][stat]) for stat in next(iter(table.values()))}
    print("argmin:", argmins)
    choices, scores = search_choices(table, columns), {}
    print("search choices:", choices)
    dataset, denoiser, scorer, eval_sets = setup
    for stat in args.score:
        shape, omega, _ = choices[stat]
        k = dataset.num_classes
        network = schedule_network(denoiser.schedule, torch.arange(k), omega, k, shape)
        scores[stat] = score(scorer, network, eval_sets, f"{stat}: {shape} {omega:.4g}")
    vertices = constant_vertices(table)
    print("vertices over the constants:", {k: round(v, 3) for k, v in vertices.items()})
    entry = {"table": table, "argmin": argmins, "choices": choices, "scores": scores, "vertices": vertices}
    add_results(args.out, {key: entry | {"seconds": time.perf_counter() - began}})
    if args.seeds_table:
        joined, count = joined_seeds(args.features, searched)
        together = constant_vertices(table_from(joined, setup[2]))
        by_size = judge_vertices_by_size(joined, setup[2], args.judge_sizes)
        entry = {"vertices": together, "seeds": count, "judge_vertices_by_size": by_size}
        add_results(args.out, {f"{searched}@together": entry})
        print(seeds_table(read_results(args.out), searched))
        print("judges' vertices by samples per set:", by_size)


if __name__ == "__main__":
    main()
