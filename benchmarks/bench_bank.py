"""Bank vs online learning of ω on the demo's under-trained toy denoiser (issue 3).

Online training (Algorithm 1) is run for several seeds and scored along the way (resuming its checkpoint, so
the trajectory is the uninterrupted one); the bank path (generate once, fit) for several seeds and bank
sizes. Every ω is scored the same way: 20 DDIM steps, 4,000 samples per class, mean energy distance over
classes to exact samples. Writes JSON; results go to BENCHMARKS.md.

    python benchmarks/bench_bank.py --out benchmarks/results/bank.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from learnguide.apps.demo import REGIMES, DemoConfig, toy_denoiser
from learnguide.core.banks import BankConfig, FitConfig, fit_omega_on_bank, generate_bank, load_bank
from learnguide.core.guidance import OmegaNet
from learnguide.core.metrics import class_metrics, median_bandwidth
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.sampling import sample
from learnguide.data.toy import ring_mixture


def make_scorer(mixture, denoiser, per_class: int = 4000):
    labels = torch.arange(mixture.num_classes).repeat_interleave(per_class)
    reference = mixture.sample(labels, torch.Generator().manual_seed(777)).float()
    bandwidth = median_bandwidth(reference)

    def score(guidance) -> float:
        x = sample(
            denoiser,
            denoiser.schedule,
            guidance,
            labels,
            (mixture.dim,),
            steps=20,
            generator=torch.Generator().manual_seed(778),
        )
        return class_metrics(x, labels, reference, labels, bandwidth, overall=False)["energy"]

    return score


def online_runs(mixture, denoiser, score, seeds, checkpoints) -> list[dict]:
    runs = []
    for seed in seeds:
        torch.manual_seed(seed)
        net = OmegaNet(denoiser.schedule, num_classes=mixture.num_classes)
        trace = []
        with tempfile.TemporaryDirectory() as tmp:
            for iterations in checkpoints:  # resumes the same run: the trajectory is the uninterrupted one
                record = train_omega_online(
                    net,
                    denoiser,
                    mixture.data_sampler(),
                    OnlineConfig(iterations=iterations, seed=seed),
                    tmp,
                    progress=False,
                )
                trace.append(
                    {
                        "iterations": iterations,
                        "denoiser_evals": record.denoiser_evals,
                        "seconds": record.seconds,
                        "energy": score(net),
                    }
                )
        runs.append({"seed": seed, "trace": trace})
    return runs


def bank_runs(mixture, denoiser, score, seeds, sizes) -> list[dict]:
    runs = []
    for items in sizes:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                made = generate_bank(
                    denoiser,
                    denoiser.schedule,
                    mixture.data_sampler(),
                    tmp,
                    BankConfig(items=items, seed=seed),
                    progress=False,
                )
                size = sum(f.stat().st_size for f in Path(tmp).glob("shard_*.safetensors"))
                began = time.perf_counter()
                bank = load_bank(tmp)
                load_seconds = time.perf_counter() - began
            torch.manual_seed(seed)
            net = OmegaNet(denoiser.schedule, num_classes=mixture.num_classes)
            fit = fit_omega_on_bank(net, bank, FitConfig(seed=seed), progress=False)
            runs.append(
                {
                    "items": items,
                    "seed": seed,
                    "denoiser_evals": made.denoiser_evals,
                    "bank_seconds": made.seconds,
                    "load_seconds": load_seconds,
                    "fit_seconds": fit.seconds,
                    "fit_items_per_second": fit.items_seen / fit.seconds,
                    "epochs": len(fit.val_losses),
                    "bytes_per_item": size / items,
                    "energy": score(net),
                }
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/bank.json")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    mixture = ring_mixture()
    denoiser, _ = toy_denoiser(REGIMES[1], mixture, DemoConfig(), Path("runs/bench"), progress=False)
    score = make_scorer(mixture, denoiser)
    seeds = list(range(args.seeds))
    results = {
        "regime": REGIMES[1].name,
        "online": online_runs(mixture, denoiser, score, seeds, (250, 500, 1000, 2000, 3000)),
        "bank": bank_runs(mixture, denoiser, score, seeds, (4096, 16384, 65536)),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
