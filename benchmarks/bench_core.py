"""Core-engine benchmarks (issue 2): sampling overhead of a learned ω, the sampler's own cost, and the cost
of learning ω in the demo. Writes JSON; the latest numbers are recorded in BENCHMARKS.md.

    python benchmarks/bench_core.py --out benchmarks/results/core.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from learnguide.apps.demo import REGIMES, DemoConfig, toy_denoiser
from learnguide.core.denoisers import PredictionAdapter
from learnguide.core.guidance import ConstantGuidance, OmegaNet
from learnguide.core.online import train_omega_online
from learnguide.core.sampling import sample
from learnguide.core.schedules import VPCosine
from learnguide.data.toy import ring_mixture


class TimedDenoiser(nn.Module):
    """Wraps a denoiser and accumulates the wall time of its forward calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def forward(self, x_t, t, cond):
        began = time.perf_counter()
        out = self.inner(x_t, t, cond)
        self.seconds += time.perf_counter() - began
        self.calls += 1
        return out

    def null_cond(self, cond):
        return self.inner.null_cond(cond)


class ConvImageNet(nn.Module):
    """A small conv denoiser on [B, 3, 32, 32] (random weights): a stand-in with an image-sized state."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes + 1, width)
        self.time = nn.Linear(1, width)
        self.inp = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(
            *[nn.Sequential(nn.SiLU(), nn.Conv2d(width, width, 3, padding=1)) for _ in range(4)]
        )
        self.out = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x_t, t, cond):
        h = self.inp(x_t) + (self.embed(cond) + self.time(t[:, None].float()))[:, :, None, None]
        return self.out(self.body(h))


def _time_sampling(denoiser, guidance, cond, shape, steps, repeats) -> dict:
    """Best-of-``repeats`` wall time of one sampling run, and the share spent inside the denoiser."""
    timed = TimedDenoiser(denoiser)
    best = None
    for _ in range(repeats):
        timed.seconds = 0.0
        began = time.perf_counter()
        sample(
            timed, VPCosine(), guidance, cond, shape, steps=steps, generator=torch.Generator().manual_seed(0)
        )
        total = time.perf_counter() - began
        if best is None or total < best["seconds"]:
            best = {"seconds": total, "denoiser_seconds": timed.seconds}
    best["outside_denoiser_share"] = 1.0 - best["denoiser_seconds"] / best["seconds"]
    return best


def sampling_benchmarks(repeats: int) -> dict:
    """Learned vs constant ω at equal steps, interleaved in one run, on the toy MLP and a conv image net."""
    torch.manual_seed(0)
    mixture = ring_mixture()
    toy, _ = toy_denoiser(REGIMES[1], mixture, DemoConfig(), Path("runs/bench"), progress=False)
    image = PredictionAdapter(ConvImageNet(), VPCosine(), "eps", null_id=10).eval()
    cases = {
        "toy_mlp_2d": (
            toy,
            torch.arange(4).repeat_interleave(2500),
            (2,),
            OmegaNet(VPCosine(), num_classes=4),
        ),
        "conv_3x32x32": (
            image,
            torch.arange(10).repeat_interleave(6),
            (3, 32, 32),
            OmegaNet(VPCosine(), num_classes=10),
        ),
    }
    out = {}
    for name, (denoiser, cond, shape, learned) in cases.items():
        constant = ConstantGuidance(1.0)  # the learned net starts at ω = 1 > 0: both run both passes
        runs = {"constant": [], "learned": []}
        for _ in range(repeats):  # interleaved, so drifts of machine load hit both alike
            runs["constant"].append(_time_sampling(denoiser, constant, cond, shape, 20, 1))
            runs["learned"].append(_time_sampling(denoiser, learned, cond, shape, 20, 1))
        best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
        out[name] = {
            "batch": int(cond.shape[0]),
            "steps": 20,
            "shape": list(shape),
            "repeats": repeats,
            "constant_seconds": best["constant"]["seconds"],
            "learned_seconds": best["learned"]["seconds"],
            "learned_over_constant": best["learned"]["seconds"] / best["constant"]["seconds"],
            "outside_denoiser_share_constant": best["constant"]["outside_denoiser_share"],
            "outside_denoiser_share_learned": best["learned"]["outside_denoiser_share"],
        }
    return out


def learning_benchmark() -> dict:
    """Time and denoiser calls of learning ω with the demo's (full) settings on the under-trained denoiser."""
    mixture = ring_mixture()
    config = DemoConfig()
    denoiser, _ = toy_denoiser(REGIMES[1], mixture, config, Path("runs/bench"), progress=False)
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=4)
    record = train_omega_online(net, denoiser, mixture.data_sampler(), config.online, progress=False)
    return {
        "iterations": config.online.iterations,
        "batch_size": config.online.batch_size,
        "particles": config.online.particles,
        "seconds": record.seconds,
        "denoiser_calls": record.denoiser_calls,
        "denoiser_evals": record.denoiser_evals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/core.json")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "processor": platform.processor(),
        },
        "sampling": sampling_benchmarks(args.repeats),
        "learning_omega": learning_benchmark(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
