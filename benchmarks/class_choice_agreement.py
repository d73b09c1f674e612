"""Would one schedule per class, chosen in a search's features from its samples, follow the judges? (issue 14)

The landscape of the per-class variant before any fit: from the features ``statistic_landscape.py`` saved for
a search (``--variant``; the search's 640 samples, 64 per class, under every schedule of its grid, and its
2,560 balanced data items), each class c's own choice over the grid by three columns:

- the search's statistic restricted to class c (``LineSearchConfig.statistic``: the energy distance of c's
  samples to c's data items in the search's features, plus the covariance term for ``energy+covariance``);
- each judge's Fréchet distance of c's samples to c's test images (evaluation and held-out classifier): a
  diagnosis, never a choice.

Prints, per checkpoint, how often the search's per-class choice is a judge's and the correlation of their
guidance strengths (the mean ω over the sampler's steps), beside the same between the two judges: where the
judges themselves disagree class by class, 64 samples per class cannot place a class. Writes JSON.

With ``--seeds`` every saved seed of the search's samples (``statistic_landscape.py --seed``) is taken
together, and ``--sizes`` splits them into disjoint chunks of n samples per class: whether a column's
per-class preference is noise (its reliability, chunk against chunk, is low) or a preference of its own (it
is reliable, yet far from a judge's), and whether more samples per class bring the search closer to the
held-out judge. Preferences are measured both as the grid choice's strength and as the vertex over the
constants (continuous, less rounded).

With ``--spaces`` each class's preferred constant is also measured in other variants' feature spaces of the
same samples (``statistic_landscape.py --variant v`` saved them): whether independent spaces agree. With
``--score`` the search's per-class choice (each class its least-loss schedule of the grid) is scored as
RESULTS.md scores, against the best tuned baseline recorded in ``learned_vs_tuned.json``. A later run whose
choices are the same keeps what an earlier one measured of them.

    PYTHONPATH=benchmarks python benchmarks/class_choice_agreement.py --variant batchnorm-search \
        --checkpoints digits/under_trained mnist/well_trained          # seconds per checkpoint
    PYTHONPATH=benchmarks python benchmarks/class_choice_agreement.py --variant batchnorm-search \
        --checkpoints digits/under_trained --seeds --sizes 64 128 256   # after seeds 1-3 are drawn
    PYTHONPATH=benchmarks python benchmarks/class_choice_agreement.py --variant batchnorm-search \
        --checkpoints mnist/well_trained --spaces line-search spatial-search --score
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from class_omega_headroom import PerClassGuidance
from learned_vs_tuned import CHECKPOINTS, VARIANTS, evaluation_setup, score_against_tuned
from learnguide.core.guidance import (
    ConstantGuidance,
    GuidanceSchedule,
    IncreasingGuidance,
    increasing_profile,
)
from learnguide.core.line_search import parabola_minimum, search_statistic
from learnguide.core.metrics import feature_moments, frechet_distance_from_moments
from learnguide.core.schedules import step_grid
from learnguide.images.classifier import predict
from results_file import add_results, read_results
from space_average_landscape import space_features
from statistic_landscape import JUDGES, add_saved_paths, file_stem, joined_seeds, searched_key

COLUMNS = ("search", *JUDGES)
PAIRS = [("search", JUDGES[0]), ("search", JUDGES[1]), JUDGES]  # the columns compared


def strength(label: str, steps: int) -> float:
    """The mean ω over the sampler's ``steps`` steps of a schedule labelled ``"constant 0.5"`` or
    ``"cosine 2"`` (statistic_landscape.py's labels)."""
    family, omega = label.split()
    if family == "constant":
        return float(omega)
    return float(omega) * float(increasing_profile(step_grid(steps)[:-1], family).mean())


def class_ids(saved: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A landscape's samples' class ids ``[n]``, its data items' features ``[m, F]`` and their class ids
    ``[m]`` (balanced draws: item i has class i mod K, the samples' conditions being the first n items')."""
    labels, true = saved["labels"], saved["true"]
    true_labels = torch.arange(len(true)) % (int(labels.max()) + 1)
    if not torch.equal(true_labels[: len(labels)], labels):
        raise SystemExit("the saved data items are not a balanced draw")
    return labels, true, true_labels


def class_losses(
    saved: dict[str, torch.Tensor], judge_test: dict, config, per_class: int | None = None, chunk: int = 0
) -> dict[str, list[dict[str, float]]]:
    """Each column's loss of every grid label, per class (a list over classes). ``saved``: the landscape's
    features; ``judge_test``: per judge, the test images' features ``[N, F]`` and class ids. With
    ``per_class``, only chunk ``chunk`` of each class's samples (rows ``chunk·per_class`` … in the class's
    order, the same rows under every schedule) is used; the data items are all of the class's."""
    labels, true, true_labels = class_ids(saved)
    k = int(labels.max()) + 1
    grid = [key.removesuffix("/phi") for key in saved if key.endswith("/phi")]
    found: dict[str, list[dict[str, float]]] = {column: [] for column in COLUMNS}
    for c in range(k):
        own, data = (labels == c).nonzero().squeeze(1), true[true_labels == c]
        if per_class is not None:
            own = own[chunk * per_class : (chunk + 1) * per_class]
        found["search"].append({g: search_statistic(saved[f"{g}/phi"][own], data, config) for g in grid})
        for name, (features, ids) in judge_test.items():
            reference = feature_moments(features[ids == c])
            found[name].append(
                {
                    g: frechet_distance_from_moments(*feature_moments(saved[f"{g}/{name}"][own]), *reference)
                    for g in grid
                }
            )
    return found


def class_choices(losses: dict[str, list[dict[str, float]]]) -> dict[str, list[str]]:
    """Each column's choice per class: the grid label of least loss (:func:`class_losses`' ``losses``)."""
    return {column: [min(row, key=row.__getitem__) for row in rows] for column, rows in losses.items()}


def class_vertices(losses: dict[str, list[dict[str, float]]]) -> dict[str, torch.Tensor]:
    """Each column's preferred constant per class ``[K]``: the vertex over the grid's constants
    (:func:`parabola_minimum`), a continuous strength that a 5-point argmin rounds."""
    found = {}
    for column, rows in losses.items():
        constants = sorted((float(g.split()[1]), g) for g in rows[0] if g.startswith("constant "))
        omegas = [w for w, _ in constants]
        found[column] = torch.tensor(
            [parabola_minimum(omegas, [row[g] for _, g in constants])[0] for row in rows]
        )
    return found


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two ``[K]`` vectors; 0 where either is constant."""
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def agreement(choices: dict[str, list[str]], steps: int) -> dict[str, float]:
    """Shares of classes where two columns choose the same schedule, and the correlation of the chosen
    schedules' strengths, for search–judge and judge–judge pairs."""
    found = {}
    strengths = {c: torch.tensor([strength(g, steps) for g in v]) for c, v in choices.items()}
    for a, b in PAIRS:
        same = sum(x == y for x, y in zip(choices[a], choices[b], strict=True)) / len(choices[a])
        found[f"same {a} / {b}"] = same
        found[f"corr {a} / {b}"] = correlation(strengths[a], strengths[b])
    return found | {f"mean strength {c}": float(s.mean()) for c, s in strengths.items()}


def reliability(
    saved: dict[str, torch.Tensor], judge_test: dict, config, sizes: list[int]
) -> dict[int, dict[str, float]]:
    """For each size n of ``sizes`` (samples per class), from the disjoint chunks of n samples per class:
    each column's reliability, the correlation over classes of what it prefers in two chunks, averaged over
    every pair of chunks (how much of its per-class preference is noise), and the correlation between
    columns, averaged over chunks (how far apart their preferences are). Both for the grid choice's strength
    (:func:`class_choices`, ``choice``) and the constants' vertex (:func:`class_vertices`, ``vertex``)."""
    total = int((saved["labels"] == 0).sum())
    found = {}
    for n in sizes:
        losses = [class_losses(saved, judge_test, config, n, j) for j in range(total // n)]
        measures = {
            "choice": [
                {c: torch.tensor([strength(g, config.steps) for g in v]) for c, v in class_choices(x).items()}
                for x in losses
            ],
            "vertex": [class_vertices(x) for x in losses],
        }
        entry: dict[str, float] = {"chunks": len(losses)}
        for measure, chunks in measures.items():
            pairs = list(itertools.combinations(chunks, 2))
            for column in COLUMNS if pairs else ():
                corr = [correlation(a[column], b[column]) for a, b in pairs]
                entry[f"{measure} reliability {column}"] = sum(corr) / len(corr)
            for a, b in PAIRS:
                corr = [correlation(x[a], x[b]) for x in chunks]
                entry[f"{measure} corr {a} / {b}"] = sum(corr) / len(corr)
            for column in COLUMNS:
                entry[f"{measure} mean {column}"] = float(sum(x[column].mean() for x in chunks) / len(chunks))
        found[n] = entry
    return found


def space_vertices(spaces: dict[str, dict[str, torch.Tensor]], config) -> dict[str, list[float]]:
    """Per feature space (``spaces``: a variant's saved features of the same samples), each class's vertex
    over the constants of the search's statistic restricted to the class: whether independent feature spaces
    agree on a class's preferred strength."""
    found = {}
    for variant, saved in spaces.items():
        losses = class_losses(saved, {}, config)
        found[variant] = class_vertices({"search": losses["search"]})["search"].tolist()
    return found


def print_spaces(vertices: dict[str, list[float]]) -> None:
    """Print :func:`space_vertices`' per-class vertices of each space and each pair's correlation."""
    names = list(vertices)
    for i, a in enumerate(names):
        print(f"  {a}: {', '.join(f'{w:.2f}' for w in vertices[a])}")
        for b in names[i + 1 :]:
            print(
                f"    corr {a} / {b}: {correlation(torch.tensor(vertices[a]), torch.tensor(vertices[b])):.2f}"
            )


def schedule_of(label: str) -> GuidanceSchedule:
    """The schedule of a grid label ``"constant 0.5"`` or ``"cosine 2"``."""
    family, omega = label.split()
    return (
        ConstantGuidance(float(omega)) if family == "constant" else IncreasingGuidance(float(omega), family)
    )


def score_choice(checkpoint: str, chosen: list[str], setup: tuple, baselines_from: Path) -> dict:
    """:func:`~learned_vs_tuned.score_against_tuned` of one schedule per class (``chosen``, grid labels by
    class id)."""
    guidance = PerClassGuidance([schedule_of(g) for g in chosen])
    return score_against_tuned(checkpoint, guidance, "per class", setup, baselines_from)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--variant", default="batchnorm-search", help="its saved features")
    parser.add_argument("--statistic", default="energy+covariance", help="the search statistic, per class")
    parser.add_argument(
        "--seeds", action="store_true", help="all saved seeds of the search's samples taken together"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[],
        help="with --seeds: also each column's split-half reliability from disjoint chunks of this many "
        "samples per class",
    )
    parser.add_argument(
        "--score",
        action="store_true",
        help="score the search's per-class choice (each class its least-loss schedule) as RESULTS.md scores",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="without --seeds: the saved seed's samples to use"
    )
    parser.add_argument(
        "--spaces",
        nargs="*",
        default=[],
        help="other variants whose features of the same samples were saved: each class's preferred constant "
        "in every space, and how the spaces agree",
    )
    add_saved_paths(parser, "class_choice_agreement.json")
    args = parser.parse_args()
    if args.seeds and args.seed:
        parser.error("--seed names one saved seed; --seeds takes them all")
    if args.sizes and not args.seeds:
        parser.error("--sizes needs --seeds")
    if any(n < 2 for n in args.sizes):
        parser.error("--sizes: at least 2 samples per class")
    config = replace(VARIANTS["shape-search"].line_search, statistic=args.statistic)
    for checkpoint in args.checkpoints:
        began, key = time.perf_counter(), searched_key(checkpoint, args.variant)
        one = key + (f"@{args.seed}" if args.seed else "")
        path = args.features / f"{file_stem(one)}.safetensors"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run statistic_landscape.py --variant {args.variant} first")
        saved, seeds = joined_seeds(args.features, key) if args.seeds else (load_file(str(path)), 1)
        setup = evaluation_setup(*checkpoint.split("/"), args.work)
        dataset, scorer = setup[0], setup[2]
        images, ids = dataset.split("test")
        models = (scorer.classifier, scorer.held_out[0])
        judge_test = {j: (predict(m, images)[0].double(), ids) for j, m in zip(JUDGES, models, strict=True)}
        choices = class_choices(class_losses(saved, judge_test, config))
        found = agreement(choices, config.steps)
        print(checkpoint, f"{seeds} seed(s)", {k: round(v, 3) for k, v in found.items()})
        for column, chosen in choices.items():
            print(f"  {column}: {', '.join(chosen)}")
        by_size = reliability(saved, judge_test, config, args.sizes)
        for n, row in by_size.items():
            print(f"  {n} per class:", {k: round(v, 3) for k, v in row.items()})
        entry = {"statistic": args.statistic, "seeds": seeds, "choices": choices, "agreement": found}
        entry |= {"by_size": by_size} if by_size else {}
        if args.spaces:  # the same samples' features in other spaces (checked), beside the search's own
            others = space_features(args.features, checkpoint, [args.variant, *args.spaces], args.seed)
            entry["spaces"] = space_vertices(others | {args.variant: saved}, config)
            print_spaces(entry["spaces"])
        if args.score:
            entry["scored"] = score_choice(checkpoint, choices["search"], setup, args.baselines)
        name = f"{one}:{args.statistic}" + (f"@{seeds}seeds" if args.seeds else "")
        kept = read_results(args.out).get(name, {})
        if kept.get("choices") == choices:  # the same choices: keep what an earlier run measured of them
            entry = {part: kept[part] for part in ("by_size", "spaces", "scored") if part in kept} | entry
        add_results(args.out, {name: entry | {"seconds": time.perf_counter() - began}})


if __name__ == "__main__":
    main()
