"""Bank items/s with 1 and 2 processes (``accelerate launch --cpu``) on this machine, and the scaling ratio.

Makes the same bank (digits under_trained UNet) once with one process and once with two, each process with
one thread, checks the two banks are identical, and writes JSON.

    python benchmarks/bench_processes.py --out benchmarks/results/processes.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEARNGUIDE = [sys.executable, "-m", "learnguide.apps.cli"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1"]
ACCELERATE += ["--mixed_precision", "no", "--dynamo_backend", "no"]


def timed(cmd: list[str]) -> float:
    """Wall seconds of a command (one thread per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    began = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--denoiser", default="checkpoints/digits/under_trained")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--items", type=int, default=4096)
    parser.add_argument("--shard-size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/processes.json"))
    args = parser.parse_args()
    bank = ["bank", "--denoiser", args.denoiser, "--dataset", args.dataset, "--items", str(args.items)]
    bank += ["--shard-size", str(args.shard_size), "--batch-size", "256", "--no-progress"]
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, 2):
            out = Path(tmp) / f"bank-{processes}"
            launcher = (
                LEARNGUIDE
                if processes == 1
                else [*ACCELERATE, "--num_processes", "2", "-m", "learnguide.apps.cli"]
            )
            seconds = timed([*launcher, *bank, "--out", str(out)])
            report["runs"][processes] = {"seconds": seconds, "items_per_second": args.items / seconds}
            print(f"{processes} process(es): {seconds:.1f} s, {args.items / seconds:.1f} items/s", flush=True)
        shards = sorted(p.name for p in (Path(tmp) / "bank-1").glob("*.safetensors"))
        report["identical"] = all(
            (Path(tmp) / "bank-1" / s).read_bytes() == (Path(tmp) / "bank-2" / s).read_bytes() for s in shards
        )
    report["scaling"] = report["runs"][2]["items_per_second"] / report["runs"][1]["items_per_second"]
    print(f"scaling 1 → 2 processes: {report['scaling']:.2f}×; banks identical: {report['identical']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
