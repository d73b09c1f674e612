"""One schedule per class, shrunk towards the search's shared answer by its own noise (issue 14 diagnostic).

Per class, the recommended search's statistic (``--statistic``; energy distance + covariance term in the
search's features) can prefer another strength than the shared answer. From 64 samples per class that
preference is partly noise (``class_choice_agreement.py``), and taken as it is it helps one checkpoint and
hurts others. This shrinks it by the search's own estimate of that noise, an empirical-Bayes rule with no
setting to tune:

- the shared answer (family f*, ω*) is the search's (:func:`~learnguide.core.line_search.choose_schedule` on
  the pooled losses of the saved samples);
- class c's estimate ω̂_c is the vertex (:func:`~learnguide.core.line_search.parabola_minimum`) of the
  statistic of c's samples against c's data items over f*'s grid (the constants, or the shape's scales with
  ω_max = 0 first), and its noise variance σ²_c the variance of the same vertex over ``--draws`` random
  halves of c's samples and data items (a half varies about the whole as the whole about the truth,
  docs/design.md §3.5);
- the spread between classes beyond noise is τ² = max(0, var_c ω̂_c − mean_c σ²_c), each class keeps the share
  B_c = τ² / (τ² + σ²_c) of its deviation, and ω_c = max(0, ω* + B_c (ω̂_c − mean_c ω̂_c)): the shared
  answer sets the level, a class moves from it only as far as its preference stands above the noise.

With ``--consensus VARIANT`` the per-class deviations are kept instead only where a second feature space of
the same samples (that variant's features, saved by ``statistic_landscape.py --variant VARIANT``) agrees:
with d_c = ω̂_c − mean_c ω̂_c in each space over f*'s grid, a class moves by the smaller of its two
deviations when they have the same sign and not at all otherwise, ω_c = max(0, ω* + m_c) (no setting either);
with ``--shrink`` as well, by B_c · m_c.

No judge is consulted for the choice; ``--score`` scores it as RESULTS.md scores (three sets, both judges)
against the best tuned baseline recorded in ``learned_vs_tuned.json``. The samples are those
``statistic_landscape.py --variant <v> [--seed s]`` saved (the search's own: same noise, same data items).

    PYTHONPATH=benchmarks python benchmarks/class_shrinkage.py --variant batchnorm-search --score \
        --checkpoints digits/under_trained mnist/well_trained
    PYTHONPATH=benchmarks python benchmarks/class_shrinkage.py --variant batchnorm-search \
        --consensus spatial-search --score
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from safetensors.torch import load_file
from torch import Tensor

from class_choice_agreement import class_ids
from class_omega_headroom import per_class_schedule
from learned_vs_tuned import CHECKPOINTS, VARIANTS, evaluation_setup, score_against_tuned
from learnguide.core.line_search import choose_schedule, parabola_minimum, search_statistic
from results_file import add_results, read_results
from space_average_landscape import space_features
from statistic_landscape import add_saved_paths, file_stem, searched_key


def family_grid(config, family: str) -> list[tuple[float, str]]:
    """The grid of ``family`` as the search sees it, each value with its saved features' label
    (:func:`choose_schedule`: a shape's grid starts at ω_max = 0, the constant 0's samples, where the
    constants hold 0)."""
    if family == "constant":
        return [(w, f"constant {w:g}") for w in config.omegas]
    profile = family.removeprefix("increasing-")
    zero = [(0.0, "constant 0")] if 0.0 in config.omegas else []
    return zero + [(w, f"{profile} {w:g}") for w in config.scales]


def class_vertex(
    saved: dict[str, Tensor], rows: Tensor, data: Tensor, config, grid: list[tuple[float, str]]
) -> float:
    """The vertex over ``grid`` (:func:`family_grid`) of the statistic of the samples ``rows`` against the
    data items' features ``data [m, F]``."""
    losses = [search_statistic(saved[f"{g}/phi"][rows], data, config) for _, g in grid]
    return parabola_minimum([w for w, _ in grid], losses, "--scales")[0]


def shared_answer(saved: dict[str, Tensor], config) -> tuple[str, float]:
    """The search's answer (family, ω or ω_max) from the pooled losses of a landscape's saved features."""
    labels, true, true_labels = class_ids(saved)

    def pooled(label: str) -> float:  # the statistic of every sample, as the search measures it
        return search_statistic(saved[f"{label}/phi"], true, config, labels, true_labels)

    constants = [pooled(g) for _, g in family_grid(config, "constant")]
    shaped = [pooled(g) for _, g in family_grid(config, config.shape) if not g.startswith("constant ")]
    return choose_schedule(config, constants, shaped)[:2]


def class_estimates(
    saved: dict[str, Tensor], config, grid: list[tuple[float, str]], draws: int = 0, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Per class: the vertex ω̂_c over ``grid`` of the class's samples against its data items, and with
    ``draws`` its variance σ²_c over that many random halves of both (zeros without): ``([K], [K])``."""
    labels, true, true_labels = class_ids(saved)
    gen, estimates, noise = torch.Generator().manual_seed(seed), [], []
    for c in range(int(labels.max()) + 1):
        own, data = (labels == c).nonzero()[:, 0], true[true_labels == c]
        estimates.append(class_vertex(saved, own, data, config, grid))
        halves = [
            class_vertex(
                saved,
                own[torch.randperm(len(own), generator=gen)[: len(own) // 2]],
                data[torch.randperm(len(data), generator=gen)[: len(data) // 2]],
                config,
                grid,
            )
            for _ in range(draws)
        ]
        noise.append(float(torch.tensor(halves, dtype=torch.float64).var()) if halves else 0.0)
    return torch.tensor(estimates, dtype=torch.float64), torch.tensor(noise, dtype=torch.float64)


def shrunk_choice(saved: dict[str, Tensor], config, draws: int, seed: int) -> dict:
    """The shared answer, each class's vertex ω̂_c, its half-draw variance σ²_c, τ², B_c and the shrunk ω_c
    (module docstring) from a landscape's saved features."""
    family, omega = shared_answer(saved, config)
    hat, sigma2 = class_estimates(saved, config, family_grid(config, family), draws, seed)
    tau2 = max(0.0, float(hat.var()) - float(sigma2.mean()))
    share = tau2 / (tau2 + sigma2) if tau2 > 0 else torch.zeros(len(hat), dtype=torch.float64)
    shrunk = (omega + share * (hat - hat.mean())).clamp(min=0.0)
    return {
        "family": family,
        "omega": omega,
        "estimates": hat.tolist(),
        "noise_var": sigma2.tolist(),
        "tau2": tau2,
        "share": share.tolist(),
        "omegas": shrunk.tolist(),
    }


def consensus_choice(
    saved: dict[str, Tensor], other: dict[str, Tensor], config, share: list[float] | None = None
) -> dict:
    """The shared answer of ``saved`` (the search's space) and ω_c = max(0, ω* + m_c), where m_c is the
    smaller of the two spaces' deviations d_c = ω̂_c − mean_c ω̂_c when both have the same sign, else 0:
    a class moves only as far as ``other`` (a second feature space of the same samples) agrees. With
    ``share`` (:func:`shrunk_choice`'s B_c, per class) each move is scaled by it too."""
    family, omega = shared_answer(saved, config)
    grid = family_grid(config, family)
    hat, second = class_estimates(saved, config, grid)[0], class_estimates(other, config, grid)[0]
    first_dev, second_dev = hat - hat.mean(), second - second.mean()
    agree = torch.sign(first_dev) == torch.sign(second_dev)
    move = torch.where(agree, torch.sign(first_dev) * torch.minimum(first_dev.abs(), second_dev.abs()), 0.0)
    move = move * (torch.tensor(share, dtype=torch.float64) if share is not None else 1.0)
    return {
        "family": family,
        "omega": omega,
        "estimates": hat.tolist(),
        "second_estimates": second.tolist(),
        "omegas": (omega + move).clamp(min=0.0).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--variant", default="batchnorm-search", help="its saved features")
    parser.add_argument("--statistic", default="energy+covariance", help="the search statistic")
    parser.add_argument("--seed", type=int, default=0, help="the saved seed's samples (and the halves' seed)")
    parser.add_argument("--draws", type=int, default=32, help="random halves per class (the search's 32)")
    parser.add_argument(
        "--consensus",
        metavar="VARIANT",
        help="instead of shrinking by noise, move a class only as far as this variant's features of the same "
        "samples agree (consensus_choice)",
    )
    parser.add_argument(
        "--shrink", action="store_true", help="with --consensus: scale each move by the shrinkage's share B_c"
    )
    parser.add_argument("--score", action="store_true", help="score the choice as RESULTS.md scores")
    add_saved_paths(parser, "class_shrinkage.json")
    args = parser.parse_args()
    if args.draws < 2:
        parser.error(f"--draws must be >= 2, got {args.draws}")
    if args.shrink and not args.consensus:
        parser.error("--shrink scales the moves of --consensus; without it the shrinkage is the default rule")
    config = replace(VARIANTS["shape-search"].line_search, statistic=args.statistic)  # its grid and shape
    for checkpoint in args.checkpoints:
        began = time.perf_counter()
        key = searched_key(checkpoint, args.variant) + (f"@{args.seed}" if args.seed else "")
        path = args.features / f"{file_stem(key)}.safetensors"
        if not path.is_file():
            parser.error(f"{path} is missing: run statistic_landscape.py --variant {args.variant} first")
        if args.consensus:
            saved, other = space_features(
                args.features, checkpoint, [args.variant, args.consensus], args.seed
            ).values()
            share = shrunk_choice(saved, config, args.draws, args.seed)["share"] if args.shrink else None
            found = consensus_choice(saved, other, config, share) | ({"share": share} if share else {})
            print(checkpoint, f"{found['family']} {found['omega']:.3f}, consensus with {args.consensus}")
        else:
            found = shrunk_choice(load_file(str(path)), config, args.draws, args.seed)
            print(checkpoint, f"{found['family']} {found['omega']:.3f}, τ² {found['tau2']:.4g}")
        for name in ("estimates", "second_estimates", "noise_var", "share", "omegas"):
            if name in found:
                print(f"  {name}: {', '.join(f'{v:.3f}' for v in found[name])}")
        if args.score:
            guidance = per_class_schedule(found["family"], found["omegas"])
            setup = evaluation_setup(*checkpoint.split("/"), args.work)
            found["scored"] = score_against_tuned(checkpoint, guidance, "per class", setup, args.baselines)
        name = f"{key}:{args.statistic}" + (f"~{args.consensus}" if args.consensus else "")
        name += "+shrink" if args.shrink else ""
        kept = read_results(args.out).get(name, {})
        if "scored" in kept and "scored" not in found and kept.get("omegas") == found["omegas"]:
            found["scored"] = kept["scored"]  # the same choice: keep its earlier scores
        add_results(args.out, {name: found | {"seconds": time.perf_counter() - began}})


if __name__ == "__main__":
    main()
