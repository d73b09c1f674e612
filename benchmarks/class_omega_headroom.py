"""Is there room for one ω per class? The learning statistic's best constant per class (issue 14 diagnostic).

The tuned baselines share one ω between classes; a learned ω(c, s, t) need not. For one checkpoint this
samples ``--per-class`` images per class on the tuning seed (seed 1) under each constant ω of ``--policies``,
with the same seed per image under every ω (common random numbers: a class's samples depend only on its own
ω), and embeds them in the clean feature classifier's pooled features (the space ``rollout-prior`` learns in;
not a judge). Then, from those features alone, it chooses one ω per class by coordinate descent on the
statistic a fit minimises (the pooled energy distance, β = 1, against ``--data-per-class`` training images
per class): start every class at the pooled argmin, and move one class at a time to the ω of the grid that
lowers the statistic most, until no move lowers it. With ``--statistic class`` each class instead takes
the ω whose samples are closest to its own data (the class-conditional energy distance, β = 1): a statistic
that sees class membership. With ``--statistic class-confirmed`` the class-conditional choice is
regularised towards the shared optimum: every class starts at the pooled argmin and moves at most one grid
step, and only when the neighbour is closer to the class's data on this set *and* on a second, independent
set of samples (seed ``--confirm-seed``); of two confirmed neighbours it takes the one lower on both sets
together. With ``--statistic class-frechet`` the start is the argmin of the pooled Fréchet distance (the
judges' kind of statistic, in the clean features) and a class moves to the grid ω of largest lower
confidence bound on its gain in class-conditional Fréchet distance, gain − ``--z`` · bootstrap standard error
(paired: the same resampled seeds under every ω), and only where that bound is above 0. No judge is
consulted by these four. ``--statistic judge`` is the peek that bounds them: the
same coordinate descent on the held-out classifier's own FD of the tuning seed's samples (the best any
per-class choice on this grid could do, as judged on fresh evaluation sets); a ceiling, never a recipe.
With ``--family increasing-cosine`` the grid values are the ω_max of the tuned increasing shape (cosine)
instead of constants: one scale of that schedule per class.

The chosen per-class constants are then sampled and scored on RESULTS.md's evaluation sets in both
classifiers' features, next to the best tuned baseline: from ``benchmarks/learned_vs_tuned.py``'s JSON, else
from an earlier entry of this script's JSON for the checkpoint, else scored here. Writes JSON, one entry
per checkpoint, statistic and ``--per-class``, with the landscape's denoiser evaluations (the cost to set
against one 7-point constant grid). The landscape's samples are kept under ``--work``/landscapes
(safetensors) and reused by a later run with the same checkpoint, seed, ω and size.

    python benchmarks/class_omega_headroom.py --checkpoint mnist/well_trained \
        --policies 0 0.125 0.25 0.375 0.5 --out benchmarks/results/class_omega_headroom.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from final_sample_landscape import data_items, energy_distance
from learned_vs_tuned import (
    STEPS,
    best_tuned,
    evaluation_setup,
    feature_classifier,
    known_scores,
    score,
    tuned_winners,
)
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, IncreasingGuidance
from learnguide.core.metrics import feature_moments, frechet_distance, frechet_distance_from_moments
from learnguide.images.classifier import predict
from learnguide.images.evaluation import sample_set
from results_file import add_results, read_results

PER_CLASS = 64  # the landscapes' samples per class and ω (§10h)


class PerClassGuidance(GuidanceSchedule):
    """ω(c, s, t) = ``schedules[c]``'s ω(c, s, t): one schedule per class id."""

    def __init__(self, schedules: list[GuidanceSchedule]) -> None:
        self.schedules = schedules

    def omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        every = torch.stack([g.omega(cond, s, t).double() for g in self.schedules])  # [K, B]
        return every.gather(0, cond.long()[None]).squeeze(0)

    def config(self) -> dict:
        return {"type": "per-class", "schedules": [g.config() for g in self.schedules]}


FAMILIES = {  # --family: the schedule of one grid value ω (a constant, or the tuned increasing shape's ω_max)
    "constant": ConstantGuidance,
    "increasing-cosine": lambda omega: IncreasingGuidance(omega, "cosine"),
}


def per_class_schedule(family: str, omegas: list[float]) -> PerClassGuidance:
    """One schedule of ``FAMILIES[family]`` per class id c, at ``omegas[c]``."""
    return PerClassGuidance([FAMILIES[family](w) for w in omegas])


def landscape_samples(
    scorer, guidance: GuidanceSchedule, checkpoint: str, classes: int, per_class: int, seed: int, work: Path
) -> tuple[Tensor, Tensor]:
    """Class ids ``[n]`` and ``scorer``'s samples ``[n, C, H, W]`` of :func:`sample_set` (``classes``,
    ``per_class``, ``seed``) under ``guidance``: read from ``work``/landscapes when an earlier run of
    ``checkpoint`` (``<dataset>/<regime>``) drew the same ones, else drawn and kept there (safetensors)."""
    labels, seeds = sample_set(classes, per_class, seed)
    name = "-".join(str(v) for v in guidance.config().values())
    path = (
        work / "landscapes" / f"{checkpoint.replace('/', '-')}-{seed}" / f"{name}-n{len(labels)}.safetensors"
    )
    if path.is_file():
        stored = load_file(path)
        if torch.equal(stored["labels"], labels) and torch.equal(stored["seeds"], seeds):
            return labels, stored["images"]
    images = scorer.samples(guidance, labels, seeds)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"images": images.contiguous(), "labels": labels, "seeds": seeds}, path)
    return labels, images


def clean_space(dataset, work: Path, data_per_class: int) -> tuple:
    """``(classifier, data [K·m, F], data_labels [K·m])``: the clean feature classifier (not a judge) and its
    pooled features of ``data_per_class`` training images per class (the landscapes' data side)."""
    classifier = feature_classifier(dataset, work)
    images, data_labels = data_items(dataset, data_per_class)
    return classifier, predict(classifier, images)[0].double(), data_labels


def pick(choice: list[int], features: Tensor, labels: Tensor) -> Tensor:
    """``[n, F]``: each sample's features under its class's grid index ``choice[c]``; ``features [P, n, F]``
    are the samples' features under each of the P grid values, ``labels [n]``."""
    return features[torch.tensor(choice)[labels], torch.arange(len(labels))]


def pooled_statistic(choice: list[int], features: Tensor, labels: Tensor, data: Tensor) -> float:
    """The pooled energy distance (β = 1) of the samples (:func:`pick`) to ``data [m, F]``."""
    return energy_distance(pick(choice, features, labels), data, 1.0)


def coordinate_descent(
    objective: Callable[[list[int]], float], classes: int, grid: int, start: int
) -> list[int]:
    """Per-class grid indices (``grid`` values) that no single-class move lowers ``objective`` from, starting
    from every class at ``start``."""
    choice = [start] * classes
    best = objective(choice)
    moved = True
    while moved:
        moved = False
        for c in range(classes):
            for p in range(grid):
                trial = choice[:c] + [p] + choice[c + 1 :]
                value = objective(trial)
                if value < best - 1e-12:
                    choice, best, moved = trial, value, True
    return choice


def class_distances(features: Tensor, labels: Tensor, data: Tensor, data_labels: Tensor) -> Tensor:
    """``[K, P]``: per class, the energy distance (β = 1) of its samples under each grid ω (``features
    [P, n, F]``) to the class's own data (``data [m, F]``, ``data_labels [m]``)."""
    return torch.tensor([
        [energy_distance(f[labels == c], data[data_labels == c], 1.0) for f in features]
        for c in range(int(labels.max()) + 1)
    ])  # fmt: skip


def confirmed_moves(first: Tensor, second: Tensor, start: int) -> list[int]:
    """Per class, the grid index one step from ``start`` that lowers the class distance on both sample sets
    (``first``, ``second``: :func:`class_distances` ``[K, P]``), the lower of two on both together; else
    ``start``."""
    choice = []
    for a, b in zip(first, second, strict=True):
        steps = [p for p in (start - 1, start + 1) if 0 <= p < len(a) and a[p] < a[start] and b[p] < b[start]]
        choice.append(min(steps, key=lambda p: float(a[p] + b[p])) if steps else start)
    return choice


def class_frechet(own: Tensor, target: tuple[Tensor, Tensor], rows: Tensor) -> Tensor:
    """``[P]``: the Fréchet distance of one class's samples ``own[:, rows]`` (``own [P, n_c, F]``) under each
    grid ω to the class's data moments ``target`` (mean, covariance)."""
    return torch.tensor([frechet_distance_from_moments(*feature_moments(f[rows]), *target) for f in own])


def standard_error_moves(
    class_statistic: Callable[[int, Tensor], Tensor], sizes: list[int], start: int, z: float, boots: int
) -> list[int]:
    """Per class c (``sizes[c]`` samples), the grid index of largest lower confidence bound on its gain over
    grid index ``start`` in ``class_statistic(c, rows)`` (``[P]``: the statistic of the class's samples
    ``rows`` under each grid value): gain − ``z`` · its standard error over ``boots`` paired bootstrap
    resamples of the class's samples (seed 0; the same rows under every grid value); ``start`` unless some
    bound is above 0."""
    gen, choice = torch.Generator().manual_seed(0), []
    for c, size in enumerate(sizes):
        gain = class_statistic(c, torch.arange(size))
        gain = gain[start] - gain  # [P]
        resamples = torch.randint(size, (boots, size), generator=gen)
        boot = torch.stack([class_statistic(c, rows) for rows in resamples])  # [boots, P], paired
        bound = gain - z * (boot[:, start : start + 1] - boot).std(dim=0)
        choice.append(int(bound.argmax()) if bound.max() > 0 else start)
    return choice


def class_frechet_moves(
    features: Tensor, labels: Tensor, data: Tensor, data_labels: Tensor, start: int, z: float, boots: int
) -> list[int]:
    """:func:`standard_error_moves` with the class-conditional Fréchet distance of each class's samples
    (``features [P, n, F]``) to the class's own data (``data [m, F]``, ``data_labels [m]``)."""
    classes = range(int(labels.max()) + 1)
    owns = [features[:, labels == c] for c in classes]  # [P, n_c, F] each
    targets = [feature_moments(data[data_labels == c]) for c in classes]
    sizes = [own.shape[1] for own in owns]

    def statistic(c: int, rows: Tensor) -> Tensor:
        return class_frechet(owns[c], targets[c], rows)

    return standard_error_moves(statistic, sizes, start, z, boots)


def class_argmins(features: Tensor, labels: Tensor, data: Tensor, data_labels: Tensor) -> list[int]:
    """Per class, the grid index whose samples (``features [P, n, F]``) have the lowest energy distance
    (β = 1) to the class's own data (``data [m, F]``, ``data_labels [m]``)."""
    return class_distances(features, labels, data, data_labels).argmin(dim=1).tolist()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument(
        "--policies", type=float, nargs="+", required=True, help="the grid of ω (see --family)"
    )
    parser.add_argument("--family", choices=list(FAMILIES), default="constant", help="the schedule of one ω")
    parser.add_argument("--per-class", type=int, default=PER_CLASS, help="samples per class and ω")
    parser.add_argument("--data-per-class", type=int, default=256)
    statistics = ["pooled", "class", "class-confirmed", "class-frechet", "judge"]
    parser.add_argument("--statistic", choices=statistics, default="pooled")
    parser.add_argument("--confirm-seed", type=int, default=2, help="class-confirmed's second sample set")
    parser.add_argument(
        "--z", type=float, default=2.0, help="class-frechet: standard errors a move must gain"
    )
    parser.add_argument("--boots", type=int, default=200, help="class-frechet: bootstrap resamples")
    parser.add_argument("--scores", type=Path, default=Path("benchmarks/results/learned_vs_tuned.json"))
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/class_omega_headroom.json"))
    args = parser.parse_args()
    dataset_name, regime = args.checkpoint.split("/")
    dataset, _, scorer, eval_sets = evaluation_setup(dataset_name, regime, args.work)
    k = dataset.num_classes
    if args.statistic == "judge":  # the peek: the held-out classifier's own FD against its reference
        embed, judge = scorer.held_out[0], scorer.held_out[1].frechet_distance
    else:
        embed, data, data_labels = clean_space(dataset, args.work, args.data_per_class)

    def landscape(seed: int) -> tuple[Tensor, Tensor]:
        draws = [
            landscape_samples(
                scorer, FAMILIES[args.family](w), args.checkpoint, k, args.per_class, seed, args.work
            )
            for w in args.policies
        ]
        return draws[0][0], torch.stack([predict(embed, x)[0].double() for _, x in draws])  # [P, n, F]

    labels, features = landscape(1)

    def objective(choice: list[int]) -> float:  # the pooled statistic of a per-class choice
        if args.statistic == "judge":
            return judge(pick(choice, features, labels))
        if args.statistic == "class-frechet":
            return frechet_distance(pick(choice, features, labels), data)
        return pooled_statistic(choice, features, labels, data)

    pooled = [objective([p] * k) for p in range(len(features))]
    start = min(range(len(pooled)), key=pooled.__getitem__)
    if args.statistic in ("pooled", "judge"):
        choice = coordinate_descent(objective, k, len(features), start)
    elif args.statistic == "class":
        choice = class_argmins(features, labels, data, data_labels)
    elif args.statistic == "class-frechet":
        choice = class_frechet_moves(features, labels, data, data_labels, start, args.z, args.boots)
    else:
        labels_2, features_2 = landscape(args.confirm_seed)
        first = class_distances(features, labels, data, data_labels)
        choice = confirmed_moves(first, class_distances(features_2, labels_2, data, data_labels), start)
    value = objective(choice)
    omegas = [args.policies[p] for p in choice]
    print(f"{args.checkpoint}: pooled argmin ω {args.policies[start]}; per class {omegas}")
    report = read_results(args.out)
    scores = read_results(args.scores)
    earlier = [  # entries keyed <checkpoint>[:<statistic>][@<per class>]; older ones lack "baselines"
        v["baselines"]
        for key, v in report.items()
        if re.split("[:@]", key)[0] == args.checkpoint and "baselines" in v
    ]
    known = known_scores(scores, args.checkpoint) or (earlier[0] if earlier else {})
    if not known:  # neither has them: score the unguided model and the tuned winners here
        unguided = ConstantGuidance(0.0)
        known = {"unguided": score(scorer, unguided, eval_sets, f"{args.checkpoint} unguided")}
        known |= {
            label: score(scorer, g, eval_sets, f"{args.checkpoint} {label}")
            for label, g in tuned_winners(dataset_name, regime).items()
            if label != json.dumps(unguided.config())  # digits well_trained's winner is ω = 0 itself
        }
    chosen = per_class_schedule(args.family, omegas)
    per_class = score(scorer, chosen, eval_sets, f"{args.checkpoint} per-class ω")
    entry = {
        "family": args.family,
        "policies": args.policies,
        "statistic": args.statistic,  # judge: the held-out FD; class-frechet: the clean features' FD
        "constant_statistic": pooled,  # the pooled statistic of each constant of the grid
        "pooled_argmin": args.policies[start],
        "per_class_omega": omegas,
        "chosen_statistic": value,
        "scores": per_class,
        "best_tuned": {m: best_tuned(known, m) for m in ("fd", "held_out_fd")},
        "ratios": {m: per_class[m] / best_tuned(known, m)[m] for m in ("fd", "held_out_fd")},
        "baselines": known,
        "landscape_denoiser_evals": sum(  # a sample: STEPS calls, twice when guided
            len(labels) * (1 + int(args.statistic == "class-confirmed")) * STEPS * (1 if w == 0 else 2)
            for w in args.policies
        ),
    }
    print(json.dumps(entry["ratios"]))
    key = args.checkpoint + ("" if args.statistic == "pooled" else f":{args.statistic}")
    key += "" if args.family == "constant" else f"/{args.family}"
    add_results(args.out, {key + ("" if args.per_class == PER_CLASS else f"@{args.per_class}"): entry})


if __name__ == "__main__":
    main()
