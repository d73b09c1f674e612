"""The ``learnguide`` command line: one entry point with sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .checkpoints import CheckpointError


def _demo(args: argparse.Namespace) -> int:
    from .demo import REGIMES, run_demo
    from .reports import METHODS

    learn = "online" if args.online else "bank"
    results = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress, learn=learn)
    for regime in REGIMES:
        scores = ", ".join(f"{m} {results[regime.name][m]['energy']:.4f}" for m in METHODS)
        print(f"{regime.name}: energy distance — {scores}")
    print(f"wrote {args.out}/results.json and {args.out}/report.md ({results['meta']['seconds']:.0f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``learnguide`` and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="learnguide",
        description=__doc__.split("\n")[0] + " Learn "
        "classifier-free-guidance weights ω(c, s, t) by self-consistency.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="learn ω on the toy mixture and compare it with tuned baselines",
        description="Train (or reuse) a well-trained and an under-trained toy denoiser, tune "
        "constant / interval / increasing guidance, learn ω, evaluate all on fresh seeds, and "
        "write results.json, report.md and figures.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--quick", action="store_true", help="CI-sized run (under 2 minutes on 2 CPU cores)")
    demo.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    demo.add_argument(
        "--online",
        action="store_true",
        help="learn ω online (the paper's Algorithm 1) instead of from a transition bank",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``learnguide`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, ValueError, json.JSONDecodeError, OSError) as err:
        print(f"learnguide {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
