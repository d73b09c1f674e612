"""Does online learning recover the known ω* of a weakened exact denoiser along the whole trajectory?

The exact ring-mixture denoiser weakened to x̂' = 0.6 x̂_c + 0.4 x̂_∅ is made exact by ω* = 0.4/0.6 at every
t (docs/design.md §9). Learns ω online (identity output, 600 iterations of 256 items) with each objective and
reports the learned ω, averaged over classes, for steps (t − 0.1 → t). Writes JSON.

    python benchmarks/objective_recovery.py --out benchmarks/results/objective_recovery.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from learnguide.core.denoisers import ExactMixtureDenoiser, WeakenedDenoiser
from learnguide.core.guidance import OmegaNet
from learnguide.core.online import OBJECTIVES, OnlineConfig, train_omega_online
from learnguide.core.schedules import VPCosine
from learnguide.data.toy import ring_mixture

TIMES = (0.95, 0.8, 0.7, 0.5, 0.35, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/objective_recovery.json"))
    args = parser.parse_args()
    mixture = ring_mixture()
    weakened = WeakenedDenoiser(ExactMixtureDenoiser(mixture, VPCosine()), 0.4)
    report: dict = {"omega_star": 0.4 / 0.6, "t": list(TIMES), "objectives": {}}
    for objective in OBJECTIVES:
        torch.manual_seed(0)
        net = OmegaNet(VPCosine(), num_classes=4, output="identity")
        config = OnlineConfig(
            iterations=args.iterations, batch_size=256, objective=objective, group_size=args.group_size
        )
        began = time.perf_counter()
        train_omega_online(net, weakened, mixture.data_sampler(), config, progress=False)
        t = torch.tensor(TIMES, dtype=torch.float64).repeat_interleave(4)
        with torch.no_grad():
            omega = net(torch.arange(4).repeat(len(TIMES)), t - 0.1, t).reshape(len(TIMES), 4).mean(1)
        report["objectives"][objective] = {"omega": omega.tolist(), "seconds": time.perf_counter() - began}
        print(objective, " ".join(f"t={tv}: {w:.2f}" for tv, w in zip(TIMES, omega.tolist(), strict=True)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
