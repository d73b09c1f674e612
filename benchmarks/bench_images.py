"""Image benchmarks (issue 4): sampling images/s with the learned ω vs a constant ω (interleaved, one run),
and the denoiser evaluations and time to learn ω vs to tune one baseline family by grid search, read from an
experiment's ``results.json``. Writes JSON; the latest numbers are recorded in BENCHMARKS.md.

    python benchmarks/bench_images.py --experiment runs/experiment-digits --checkpoints checkpoints/digits \
        --out benchmarks/results/images.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from learnguide.core.guidance import ConstantGuidance, OmegaNet
from learnguide.core.sampling import sample
from learnguide.images.denoisers import load_image_denoiser


def sampling_rates(checkpoint: Path, omega_dir: Path, steps: int, batch: int, repeats: int) -> dict:
    """Best-of-``repeats`` images/s of learned vs constant ω (both > 0: both run both passes)."""
    model = load_image_denoiser(checkpoint)
    learned = OmegaNet.load(omega_dir, model.schedule)
    num_classes = model.null_id
    cond = torch.arange(num_classes).repeat_interleave(batch // num_classes)
    shape = model.net.image_shape
    seconds = {"constant": [], "learned": []}
    for _ in range(repeats):  # interleaved, so drifts of machine load hit both alike
        for name, guidance in (("constant", ConstantGuidance(1.0)), ("learned", learned)):
            began = time.perf_counter()
            sample(
                model,
                model.schedule,
                guidance,
                cond,
                shape,
                steps,
                generator=torch.Generator().manual_seed(0),
            )
            seconds[name].append(time.perf_counter() - began)
    best = {k: min(v) for k, v in seconds.items()}
    return {
        "batch": int(cond.shape[0]),
        "steps": steps,
        "repeats": repeats,
        "constant_images_per_second": cond.shape[0] / best["constant"],
        "learned_images_per_second": cond.shape[0] / best["learned"],
        "learned_over_constant_time": best["learned"] / best["constant"],
    }


def learning_vs_tuning(results: dict, name: str) -> dict:
    """Cost of learning ω against tuning each baseline family, per step count, from results.json."""
    learning = results[name]["learning"]
    out = {
        "learning_denoiser_evals": learning["denoiser_evals"],
        "learning_seconds": learning["wall_seconds"],
        "by_steps": {},
    }
    for steps, entry in results[name]["by_steps"].items():
        families = {fam: c["denoiser_evals"] for fam, c in entry["tuning_cost"].items()}
        out["by_steps"][steps] = {
            "tuning_denoiser_evals": families,
            "tuning_seconds_all_families": next(iter(entry["tuning_cost"].values()))["seconds_all_families"],
            "learning_over_constant_grid_evals": learning["denoiser_evals"] / families["constant"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", required=True, help="an experiment's output folder")
    parser.add_argument("--checkpoints", required=True, help="folder with the experiment's checkpoints")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/images.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    experiment = Path(args.experiment)
    results = json.loads((experiment / "results.json").read_text())
    names = [k for k in results if k != "meta"]
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "dataset": results["meta"]["dataset"],
        "sampling": {
            name: sampling_rates(
                Path(args.checkpoints) / name,
                experiment / name / "omega_net",
                args.steps,
                args.batch,
                args.repeats,
            )
            for name in names
        },
        "learning_vs_tuning": {name: learning_vs_tuning(results, name) for name in names},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
