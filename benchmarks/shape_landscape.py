"""Does the line search's statistic rank the tuned schedule shapes as the judges do? (issue 14 diagnostic)

``learned_vs_tuned.py --variant line-search`` picks one constant ω by the pooled energy distance (β = 1.75) of
final samples in the clean feature classifier's features, against balanced training images. No constant can
reach the issue's second target (BENCHMARKS §10i): that needs a schedule shape. This measures, by the *same*
statistic with the same settings and seed (so on the same noise, conditions and data items), the constants of
the line search's grid, RESULTS.md's tuned winners (interval and increasing schedules) and the winners'
shapes at other scales (``--scales``). A schedule below the lowest constant is one a search over shapes would
pick. No judge is consulted; writes JSON.

    PYTHONPATH=benchmarks python benchmarks/shape_landscape.py --checkpoint fashion-mnist/well_trained
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from learned_vs_tuned import VARIANTS, tuned_winners, variant_features
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, guidance_from_config
from learnguide.core.line_search import guidance_features, statistic_losses
from learnguide.data.images import load_dataset
from learnguide.images.denoisers import load_image_denoiser
from results_file import add_results


def scaled(guidance: GuidanceSchedule, factor: float) -> GuidanceSchedule:
    """``guidance`` (interval or increasing) with its ω scale multiplied by ``factor``."""
    config = dict(guidance.config())
    key = "omega_max" if config["type"] == "increasing" else "omega"
    return guidance_from_config({**config, key: config[key] * factor})


def candidates(checkpoint: str, constants: list[float], scales: list[float]) -> dict[str, GuidanceSchedule]:
    """The schedules measured, keyed by their JSON config: ``constants``, then the tuned winners (constant
    winners as they are, shaped winners at each of ``scales`` × their own scale, 1 included)."""
    found = {json.dumps(ConstantGuidance(w).config()): ConstantGuidance(w) for w in constants}
    for g in tuned_winners(*checkpoint.split("/")).values():
        for g2 in [g] if g.config()["type"] == "constant" else [scaled(g, f) for f in sorted({1.0, *scales})]:
            found.setdefault(json.dumps(g2.config()), g2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--constants", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    parser.add_argument("--scales", type=float, nargs="*", default=[0.5, 1.5], help="of the shaped winners")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shape_landscape.json"))
    args = parser.parse_args()
    dataset_name, _ = args.checkpoint.split("/")
    spec = VARIANTS["line-search"]
    dataset = load_dataset(dataset_name)
    denoiser = load_image_denoiser(f"checkpoints/{args.checkpoint}", data_id=dataset.fingerprint())
    phi = variant_features(dataset, spec, args.work)
    schedules = candidates(args.checkpoint, args.constants, args.scales)
    data = dataset.data_sampler("train", balanced=spec.balanced)
    began = time.perf_counter()
    drawn = guidance_features(
        denoiser, denoiser.schedule, data, list(schedules.values()), spec.line_search, phi
    )
    losses = statistic_losses(*drawn, spec.line_search)
    entry = dict(zip(schedules, losses, strict=True))
    for label, value in sorted(entry.items(), key=lambda kv: kv[1]):
        print(f"{value:.6f}  {label}")
    add_results(args.out, {args.checkpoint: {"losses": entry, "seconds": time.perf_counter() - began}})


if __name__ == "__main__":
    main()
