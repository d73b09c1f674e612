"""Does the line search's statistic rank the tuned schedule shapes as the judges do? (issue 14 diagnostic)

``learned_vs_tuned.py --variant line-search`` picks one constant ω by the pooled energy distance (β = 1.75) of
final samples in the clean feature classifier's features, against balanced training images. No constant can
reach the issue's second target (BENCHMARKS §10i): that needs a schedule shape. This measures the tuned
winners of RESULTS.md (interval and increasing schedules; a constant winner too) by the *same* statistic, on
the same noise, conditions and data items as the line search of ``--checkpoint`` (same settings and seed), so
their losses line up with the line search's own curve, read from its ``learning.json`` under ``--work``. A
schedule below the line search's lowest constant is one a search over shapes would pick. No judge is
consulted; writes JSON.

    PYTHONPATH=benchmarks python benchmarks/shape_landscape.py --checkpoint fashion-mnist/well_trained
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from learned_vs_tuned import VARIANTS, tuned_winners, variant_features
from learnguide.core.line_search import guidance_losses
from learnguide.data.images import load_dataset
from learnguide.images.denoisers import load_image_denoiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shape_landscape.json"))
    args = parser.parse_args()
    dataset_name, regime = args.checkpoint.split("/")
    found = args.work / f"{dataset_name}-{regime}-line-search" / "learning.json"
    if not found.is_file():
        raise SystemExit(f"{found} is missing: run learned_vs_tuned.py --variant line-search on it first")
    search = json.loads(found.read_text())["line_search"]
    spec = VARIANTS["line-search"]
    dataset = load_dataset(dataset_name)
    denoiser = load_image_denoiser(f"checkpoints/{args.checkpoint}", data_id=dataset.fingerprint())
    phi = variant_features(dataset, spec, args.work)
    winners = tuned_winners(dataset_name, regime)  # a constant winner on the grid checks the line-up
    data = dataset.data_sampler("train", balanced=spec.balanced)
    losses = guidance_losses(denoiser, denoiser.schedule, data, list(winners.values()), spec.line_search, phi)
    curve = {f"constant {w:g}": v for w, v in zip(search["omegas"], search["losses"], strict=True)}
    entry = {**curve, **dict(zip(winners, losses, strict=True))}
    for label, g in winners.items():  # the same constant on the same noise and data: the same loss
        on_grid = f"constant {g.config().get('omega', 0.0):g}"
        if g.config()["type"] == "constant" and on_grid in curve:
            print(f"line-up check: {label} {entry[label]:.6f}, the line search's {curve[on_grid]:.6f}")
    for label, value in sorted(entry.items(), key=lambda kv: kv[1]):
        print(f"{value:.6f}  {label}")
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.checkpoint] = {"losses": entry, "line_search_omega": search["omega"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
