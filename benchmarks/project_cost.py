"""Projected cost to learn ω for a 256×256 latent model (DiT-XL/2) on 8 GPUs, from measured per-call costs.

Measures, on this machine, the FLOPs of one denoiser call of DiT-XL/2-256 (the published configuration,
random weights; 4×32×32 latents; counted by ``torch.utils.flop_counter``) and of the ω-network fit per bank
item, then projects the wall time of each part of learning ω — the transition bank (2·m calls per item),
the fit, and the evaluation sampling — for ``--gpus`` GPUs at an assumed sustained throughput per GPU
(``--tflops``, default 400 TFLOP/s: ~40 % of an H100's dense bf16 peak) and the multi-process scaling
measured by ``bench_processes.py`` (banks shard without communication). Writes JSON.

    python benchmarks/project_cost.py --out benchmarks/results/project_cost.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from diffusers import DiTTransformer2DModel
from torch.utils.flop_counter import FlopCounterMode

from learnguide.integrations.published_configs import DIT_XL_2_256


def flops_per_item(model: torch.nn.Module, batch: int = 2) -> tuple[float, float]:
    """(FLOPs, CPU seconds) of one item through ``model`` (measured on a batch, divided by it)."""
    x = torch.randn(batch, 4, 32, 32)
    t, y = torch.full((batch,), 500), torch.arange(batch)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x, timestep=t, class_labels=y)
        began = time.perf_counter()
        model(x, timestep=t, class_labels=y)
        seconds = time.perf_counter() - began
    return counter.get_total_flops() / batch, seconds / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--tflops", type=float, default=400.0, help="assumed sustained TFLOP/s per GPU")
    parser.add_argument("--bank-items", type=int, default=65536)
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--eval-samples", type=int, default=50000, help="samples for one FID evaluation")
    parser.add_argument("--steps", type=int, default=32, help="sampling steps of the evaluation")
    parser.add_argument("--grid", type=int, default=8, help="constant ω values a grid search evaluates")
    parser.add_argument("--processes", type=Path, default=Path("benchmarks/results/processes.json"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/project_cost.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    config = {k: v for k, v in DIT_XL_2_256.items() if k != "_class_name"}
    model = DiTTransformer2DModel(**config).eval()
    params = sum(p.numel() for p in model.parameters())
    flops, cpu_seconds = flops_per_item(model)
    scaling = 1.0
    if args.processes.is_file():  # measured 1 → 2 process ratio; per-GPU efficiency = ratio / 2
        scaling = json.loads(args.processes.read_text())["scaling"] / 2.0
    throughput = args.gpus * args.tflops * 1e12 * scaling  # FLOP/s of the whole run

    def hours(calls: float) -> float:
        return calls * flops / throughput / 3600.0

    bank_calls = args.bank_items * 2 * args.particles  # conditional + ∅ for each particle
    eval_calls = args.eval_samples * args.steps * 2
    report = {
        "model": "DiT-XL/2-256 (published configuration, random weights)",
        "parameters": params,
        "flops_per_call": flops,
        "cpu_seconds_per_call_here": cpu_seconds,
        "assumptions": {
            "gpus": args.gpus,
            "sustained_tflops_per_gpu": args.tflops,
            "per_gpu_efficiency_from_measured_scaling": scaling,
        },
        "bank": {
            "items": args.bank_items,
            "particles": args.particles,
            "calls": bank_calls,
            "hours": hours(bank_calls),
        },
        "one_evaluation": {
            "samples": args.eval_samples,
            "steps": args.steps,
            "calls": eval_calls,
            "hours": hours(eval_calls),
        },
        "constant_grid_search": {"schedules": args.grid, "hours": args.grid * hours(eval_calls)},
    }
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
