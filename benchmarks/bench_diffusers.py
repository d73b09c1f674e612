"""Wall time per sampling step: learnguide's sampler vs diffusers' own loop with its guider (issue 5).

Same model (a class-conditional UNet2DModel built here with random weights), same batch, same scheduler
(DDIM), interleaved repeats in one run; best-of-repeats seconds per step. Cases: constant ω > 0 (both run
the conditional and unconditional pass: learnguide batches them into one forward, the diffusers loop runs
them as two), and ω = 0 (learnguide skips the unconditional pass; diffusers' CFG guider at scale 1 does too).
Writes JSON; the latest numbers are recorded in BENCHMARKS.md.

    python benchmarks/bench_diffusers.py --out benchmarks/results/diffusers.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DModel
from diffusers.guiders import ClassifierFreeGuidance

from learnguide.core.guidance import ConstantGuidance, omega_to_scale
from learnguide.core.sampling import sample
from learnguide.integrations.diffusers_models import DiffusersDenoiser, scheduler_grid


def build_model(size: int, width: int, classes: int) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(width, 2 * width, 2 * width),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        num_class_embeds=classes + 1,
    ).eval()


@torch.no_grad()
def diffusers_loop(model, scheduler, labels, null, latents, steps, scale) -> torch.Tensor:
    """The guider-driven loop as diffusers' modular pipelines run it: one forward per prepared condition."""
    guider = ClassifierFreeGuidance(guidance_scale=scale)
    scheduler.set_timesteps(steps)
    x = latents
    for i, timestep in enumerate(scheduler.timesteps):
        guider.set_state(step=i, num_inference_steps=steps, timestep=timestep)
        pred_cond = model(x, timestep, class_labels=labels).sample
        pred_uncond = model(x, timestep, class_labels=null).sample if guider.num_conditions == 2 else None
        x = scheduler.step(guider.forward(pred_cond, pred_uncond).pred, timestep, x).prev_sample
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/diffusers.json"))
    args = parser.parse_args()

    classes = 10
    model = build_model(args.size, args.width, classes)
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    denoiser = DiffusersDenoiser(model, scheduler, null_class=classes)
    grid = scheduler_grid(scheduler, args.steps)
    labels = torch.arange(args.batch) % classes
    null = torch.full_like(labels, classes)
    shape = (3, args.size, args.size)
    latents = torch.randn(args.batch, *shape, generator=torch.Generator().manual_seed(0))
    report: dict = {
        "model": f"UNet2DModel {args.size}x{args.size}, width {args.width}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cases": {},
    }
    for omega in (1.0, 0.0):
        seconds: dict[str, list[float]] = {"learnguide": [], "diffusers": []}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
            began = time.perf_counter()
            ours = sample(
                denoiser,
                denoiser.schedule,
                ConstantGuidance(omega),
                labels,
                shape,
                grid=grid,
                generator=torch.Generator().manual_seed(0),
            )
            seconds["learnguide"].append(time.perf_counter() - began)
            began = time.perf_counter()
            theirs = diffusers_loop(
                model, scheduler, labels, null, latents, args.steps, omega_to_scale(omega)
            )
            seconds["diffusers"].append(time.perf_counter() - began)
        per_step = {k: min(v) / args.steps for k, v in seconds.items()}
        report["cases"][f"omega={omega}"] = {
            "seconds_per_step": per_step,
            "learnguide_over_diffusers": per_step["learnguide"] / per_step["diffusers"],
            "max_relative_difference": float((ours - theirs).norm() / theirs.norm()),
        }
        print(
            f"ω = {omega}: {per_step} ratio {per_step['learnguide'] / per_step['diffusers']:.3f}", flush=True
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
