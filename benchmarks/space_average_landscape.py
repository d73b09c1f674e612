"""Does the search statistic averaged over two feature spaces choose as the held-out judge does? (issue 14)

§10z named this variant: the recommended search (``batchnorm-covariance-search``: the energy distance plus
the Fréchet covariance term, the shape search's grid, 640 samples) with its statistic measured in two
differently normalised feature classifiers and averaged, ``cnn-batchnorm`` (``--spaces batchnorm-search``)
and ``cnn-spatial`` (``spatial-search``). Each space's statistic is divided by its own value at ω = 0 (the
unguided model, on every grid), so each space counts by its relative change, and one space alone gives the
answer it gives today (a positive scale does not move a vertex). The rule is fixed here, before any score.

It reads the features ``statistic_landscape.py --variant <space>`` saved of the same samples (one seed: the
same noise and data items in every space, checked on the class ids and the judges' features), and prints
per schedule each space's relative statistic, their mean and both judges' FD of the 640 samples (a
diagnosis, never a choice), then each column's shape-search answer
(:func:`~learnguide.core.line_search.choose_schedule`). With ``--score`` the averaged answer is scored as
RESULTS.md scores (three sets, 25 steps, both judges) with its ratio to the best tuned baseline recorded in
``learned_vs_tuned.json``. It draws nothing else: the averaged search costs the search's 304,000 denoiser
evaluations and a second classifier's features of its samples. Writes JSON.

    for c in mnist/under_trained mnist/well_trained fashion-mnist/under_trained ...; do
      PYTHONPATH=benchmarks python benchmarks/statistic_landscape.py --checkpoint $c --variant spatial-search
    done                                                       # the batchnorm-search features likewise
    PYTHONPATH=benchmarks python benchmarks/space_average_landscape.py                  # seconds each
    PYTHONPATH=benchmarks python benchmarks/space_average_landscape.py --score          # about 1.5 min each
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from learned_vs_tuned import CHECKPOINTS, evaluation_setup, score_against_tuned
from learnguide.core.line_search import schedule_network, search_statistic
from results_file import add_results, read_results
from statistic_landscape import (
    JUDGES,
    SEARCH,
    add_saved_paths,
    file_stem,
    judge_references,
    search_choices,
    searched_key,
)

AVERAGE = "mean of the spaces"
UNGUIDED = "constant 0"


def space_features(features: Path, checkpoint: str, spaces: list[str], seed: int) -> dict[str, dict]:
    """Each space's saved features of ``checkpoint``'s search samples (seed ``seed``), keyed by space. Exits
    naming a missing file, or a space whose samples are not the first space's (other class ids or judges'
    features)."""
    found = {}
    for space in spaces:
        key = searched_key(checkpoint, space) + (f"@{seed}" if seed else "")
        path = features / f"{file_stem(key)}.safetensors"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run statistic_landscape.py --variant {space} first")
        found[space] = load_file(str(path))
    first, *others = found.values()
    judged = f"{UNGUIDED}/{JUDGES[0]}"
    for space, saved in zip(spaces[1:], others, strict=True):
        same = torch.equal(saved["labels"], first["labels"]) and torch.allclose(saved[judged], first[judged])
        if not same:
            raise SystemExit(f"--spaces {space}: its saved samples are not {spaces[0]}'s (another draw)")
    return found


def relative_statistic(saved: dict, statistic: str) -> dict[str, float]:
    """The search's ``statistic`` for every schedule of one space's ``saved`` features, divided by its value
    at ω = 0."""
    config = replace(SEARCH, statistic=statistic)
    labels = [key.removesuffix("/phi") for key in saved if key.endswith("/phi")]
    losses = {
        label: search_statistic(saved[f"{label}/phi"], saved["true"], config, saved["labels"])
        for label in labels
    }
    return {label: loss / losses[UNGUIDED] for label, loss in losses.items()}


def landscape(spaces: dict[str, dict], statistic: str, scorer) -> dict[str, dict[str, float]]:
    """Per schedule: each space's relative statistic, their mean (``AVERAGE``) and each judge's FD of the
    samples against the test split."""
    relative = {space: relative_statistic(saved, statistic) for space, saved in spaces.items()}
    common = set.intersection(*(set(losses) for losses in relative.values()))
    first, references = next(iter(spaces.values())), judge_references(scorer)
    table = {}
    for label in sorted(common, key=lambda lab: (lab.split()[0], float(lab.split()[1]))):
        row = {space: losses[label] for space, losses in relative.items()}
        row[AVERAGE] = sum(row.values()) / len(row)
        row |= {name: references[name].frechet_distance(first[f"{label}/{name}"]) for name in JUDGES}
        table[label] = row
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--spaces", nargs="+", default=["batchnorm-search", "spatial-search"])
    parser.add_argument("--statistic", default="energy+covariance", choices=["energy", "energy+covariance"])
    parser.add_argument("--seed", type=int, default=0, help="the saved seed of the search's samples")
    parser.add_argument("--score", action="store_true", help="score the averaged answer as RESULTS.md scores")
    add_saved_paths(parser, "space_average_landscape.json")
    args = parser.parse_args()
    if len(set(args.spaces)) < 2:
        parser.error("--spaces: at least two different feature spaces to average")
    for checkpoint in args.checkpoints:
        began = time.perf_counter()
        spaces = space_features(args.features, checkpoint, args.spaces, args.seed)
        setup = evaluation_setup(*checkpoint.split("/"), args.work)
        table = landscape(spaces, args.statistic, setup[2])
        print(checkpoint)
        for label, row in table.items():
            print(f"  {label:>14}", {k: round(v, 4) for k, v in row.items()})
        choices = search_choices(table, {column: column for column in [*args.spaces, AVERAGE]})
        if not choices:
            raise SystemExit(f"{checkpoint}: the saved features do not hold the search's whole grid")
        print("  answers:", {k: f"{family} {omega:.3f}" for k, (family, omega, _) in choices.items()})
        name = f"{checkpoint}:{'+'.join(args.spaces)}:{args.statistic}" + (
            f"@{args.seed}" if args.seed else ""
        )
        entry = {"table": table, "choices": choices}
        kept = read_results(args.out).get(name, {})
        if kept.get("choices", {}).get(AVERAGE) == list(choices[AVERAGE]):  # JSON keeps tuples as lists
            entry["scored"] = kept.get("scored")
        if args.score and not entry.get("scored"):
            family, omega, _ = choices[AVERAGE]
            k = setup[0].num_classes
            network = schedule_network(setup[1].schedule, torch.arange(k), omega, k, family)
            entry["scored"] = score_against_tuned(
                checkpoint, network, f"averaged {family} {omega:.3f}", setup, args.baselines
            )
        add_results(
            args.out, {name: {k: v for k, v in entry.items() if v} | {"seconds": time.perf_counter() - began}}
        )


if __name__ == "__main__":
    main()
