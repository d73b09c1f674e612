"""Peak memory of learning ω (bank + fit) vs plain guided inference, same denoiser and forward batch.

Each measurement runs in a fresh process; the peak resident set size (ru_maxrss) above the process's own
baseline after imports and model construction is reported. The denoiser is the conv stand-in of
bench_core.py on 3×32×32 (random weights); both jobs push 128 inputs through each forward call (sampling:
64 items × cond/uncond; bank: 16 items × 4 particles × cond/uncond).

    python benchmarks/bench_memory.py --out benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _child(job: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_core import ConvImageNet
    from learnguide.core.banks import BankConfig, FitConfig, fit_omega_on_bank, generate_bank, load_bank
    from learnguide.core.denoisers import PredictionAdapter
    from learnguide.core.guidance import ConstantGuidance, OmegaNet
    from learnguide.core.sampling import sample
    from learnguide.core.schedules import VPCosine

    torch.manual_seed(0)
    denoiser = PredictionAdapter(ConvImageNet(), VPCosine(), "eps", null_id=10).eval()
    with torch.no_grad():  # warm up allocator and kernels so that both jobs start from the same state
        denoiser(torch.randn(128, 3, 32, 32), torch.rand(128), torch.zeros(128, dtype=torch.long))
    baseline = _peak_kib()
    if job == "inference":
        cond = torch.arange(64) % 10
        sample(
            denoiser,
            VPCosine(),
            ConstantGuidance(1.0),
            cond,
            (3, 32, 32),
            steps=20,
            generator=torch.Generator().manual_seed(0),
        )
    else:

        def data(n: int, gen: torch.Generator):
            return torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)

        with tempfile.TemporaryDirectory() as tmp:
            generate_bank(
                denoiser,
                VPCosine(),
                data,
                tmp,
                BankConfig(items=1280, shard_size=640, batch_size=16),
                progress=False,
            )
            net = OmegaNet(VPCosine(), num_classes=10)
            fit_omega_on_bank(net, load_bank(tmp), FitConfig(epochs=5), progress=False)
    print(
        json.dumps(
            {
                "job": job,
                "baseline_kib": baseline,
                "peak_kib": _peak_kib(),
                "increase_kib": _peak_kib() - baseline,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/memory.json")
    parser.add_argument("--child", choices=["inference", "learn"])
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    results = {}
    for job in ("inference", "learn"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", job], check=True, capture_output=True, text=True
        )
        results[job] = json.loads(out.stdout.strip().splitlines()[-1])
    results["peak_ratio_learn_over_inference"] = (
        results["learn"]["peak_kib"] / results["inference"]["peak_kib"]
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
