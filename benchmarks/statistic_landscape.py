"""Which judge-free statistic ranks constants *and* shapes as the judges do? (issue 14 diagnostic)

The shape search (``learned_vs_tuned.py --variant shape-search``) keeps the increasing cosine schedule on
Fashion-MNIST well_trained, but at ω_max = 4, beyond the judges' 2: the line search's statistic (pooled energy
distance, β = 1.75, clean feature classifier) keeps falling with late guidance that the judges' Fréchet
distance punishes. This draws the final samples of the line search (same settings and seed: 640 from the same
noise, 64 per class) once per schedule (``--constants``, the increasing cosine schedule at ``--cosine``
scales, the linear one at ``--linear``; by default the shape search's whole grid) and saves their features
(``--features``), so that any statistic can be scored later without drawing again (``--from-features``).
The same samples are scored by:

- judge-free statistics a search could minimise, in the clean feature classifier's pooled features against
  the search's 2,560 balanced training images: the pooled energy distance with β = 1.75 (the search's) and
  β = 1, the Fréchet distance, and the energy distance plus the Fréchet distance's covariance term;
- the two judges (evaluation and held-out classifier), the Fréchet distance against the test split: a
  diagnosis only, never a choice (640 samples, so their FD is higher than RESULTS.md's; its ranking is what
  matters).

Writes JSON; prints the table, each statistic's argmin and, for each search statistic on the shape search's
grid, what the search would choose from these losses (the same samples it draws).

    PYTHONPATH=benchmarks python benchmarks/statistic_landscape.py --checkpoint fashion-mnist/well_trained
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from learned_vs_tuned import VARIANTS, evaluation_setup, variant_features
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, IncreasingGuidance
from learnguide.core.line_search import common_draw, final_samples, pooled_energy
from learnguide.images.classifier import predict
from learnguide.images.evaluation import feature_moments, frechet_distance_from_moments

SEARCH = VARIANTS["shape-search"].line_search
JUDGES = ("FD eval. judge", "FD held-out judge")


def schedules(args: argparse.Namespace) -> dict[str, GuidanceSchedule]:
    """The schedules scored, keyed by a short label."""
    found: dict[str, GuidanceSchedule] = {f"constant {w:g}": ConstantGuidance(w) for w in args.constants}
    found |= {f"cosine {w:g}": IncreasingGuidance(w, "cosine") for w in args.cosine}
    found |= {f"linear {w:g}": IncreasingGuidance(w, "linear") for w in args.linear}
    return found


def draw_features(args: argparse.Namespace, setup: tuple) -> dict[str, torch.Tensor]:
    """Draw the search's samples under every schedule (``setup``: :func:`evaluation_setup`'s) and return the
    features to save: ``true`` (clean feature classifier, data side), ``labels`` and, per schedule label,
    ``<label>/phi`` and ``<label>/<judge>``."""
    dataset, denoiser, scorer, _ = setup
    spec = VARIANTS["line-search"]
    config, phi = spec.line_search, variant_features(dataset, spec, args.work)
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


def covariance_term(guided: torch.Tensor, true: torch.Tensor) -> float:
    """tr Σ + tr Σ_data − 2 tr (Σ Σ_data)^{1/2}: the Fréchet distance without its mean term."""
    mu, cov = feature_moments(guided)
    return frechet_distance_from_moments(mu, cov, mu, feature_moments(true)[1])


def table_from(saved: dict[str, torch.Tensor], scorer) -> dict[str, dict[str, float]]:
    """Every statistic and judge for every schedule of ``saved``."""
    true, labels = saved["true"], saved["labels"]
    true_moments = feature_moments(true)
    references = dict(zip(JUDGES, (scorer.reference, scorer.held_out[1]), strict=True))
    table = {}
    for label in [key.removesuffix("/phi") for key in saved if key.endswith("/phi")]:
        guided = saved[f"{label}/phi"]
        energy = pooled_energy(guided, true, SEARCH.beta, SEARCH.lam, labels)
        table[label] = {
            "L β=1.75 (search)": energy,
            "L β=1": pooled_energy(guided, true, 1.0, SEARCH.lam, labels),
            "FD clean (train)": frechet_distance_from_moments(*feature_moments(guided), *true_moments),
            "L β=1.75 + cov. term": energy + covariance_term(guided, true),
        } | {name: references[name].frechet_distance(saved[f"{label}/{name}"]) for name in JUDGES}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--constants", type=float, nargs="*", default=list(SEARCH.omegas))
    parser.add_argument("--cosine", type=float, nargs="*", default=list(SEARCH.scales))
    parser.add_argument("--linear", type=float, nargs="*", default=[])
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--features", type=Path, default=Path("runs/statistic-landscape"))
    parser.add_argument("--from-features", action="store_true", help="score the saved features, draw nothing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/statistic_landscape.json"))
    args = parser.parse_args()
    path = args.features / f"{args.checkpoint.replace('/', '-')}.safetensors"
    began, setup = time.perf_counter(), evaluation_setup(*args.checkpoint.split("/"), args.work)
    if args.from_features:
        saved = load_file(str(path))
    else:
        saved = draw_features(args, setup)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({key: value.contiguous() for key, value in saved.items()}, str(path))
    table = table_from(saved, setup[2])
    for label, row in table.items():
        print(label, {k: round(v, 5) for k, v in row.items()})
    argmins = {stat: min(table, key=lambda lab: table[lab][stat]) for stat in next(iter(table.values()))}
    print("argmin:", argmins)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.checkpoint] = {"table": table, "argmin": argmins, "seconds": time.perf_counter() - began}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
