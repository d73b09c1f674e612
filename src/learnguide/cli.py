"""The ``learnguide`` command line: one entry point with sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

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


def _bank(args: argparse.Namespace) -> int:
    from .banks import BankConfig, generate_bank
    from .checkpoints import checkpoint_fingerprint
    from .data.toy import ring_mixture
    from .denoiser_training import load_mlp_denoiser

    mixture = ring_mixture()
    denoiser = load_mlp_denoiser(args.denoiser, data_id=mixture.fingerprint())
    config = BankConfig(
        items=args.items,
        particles=args.particles,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        delta=args.delta,
        churn=args.churn,
        store_predictions=args.store_predictions,
        seed=args.seed,
    )
    record = generate_bank(
        denoiser,
        denoiser.schedule,
        mixture.data_sampler(),
        args.out,
        config,
        denoiser_id=checkpoint_fingerprint(args.denoiser),
        progress=not args.no_progress,
    )
    print(
        f"bank {args.out}: {config.items} items in {config.num_shards} shards; this run wrote "
        f"{record.shards_written} shards ({record.denoiser_evals} denoiser evals, {record.seconds:.1f} s)"
    )
    return 0


def _fit(args: argparse.Namespace) -> int:
    import torch

    from .banks import FitConfig, bank_diagnostics, fit_omega_on_bank, load_bank
    from .checkpoints import atomic_write_text
    from .guidance import OmegaNet
    from .reports import plot_binned_omega
    from .schedules import get_schedule

    bank = load_bank(args.bank)
    if bank.cond.dim() != 1:
        raise ValueError(f"{args.bank} holds embedding conditions; fitting those is not supported yet")
    config = FitConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        lam=args.lam,
        seed=args.seed,
    )
    torch.manual_seed(args.seed)
    net = OmegaNet(
        get_schedule(bank.manifest["schedule"]), num_classes=int(bank.cond.max()) + 1, output=args.output
    )
    record = fit_omega_on_bank(net, bank, config, progress=not args.no_progress)
    out = Path(args.out)
    net.save(
        out, extra={"bank": str(args.bank), "denoiser_id": bank.manifest["denoiser_id"], "fit": vars(config)}
    )
    print(
        f"fitted ω on {len(bank)} items: best validation loss {record.val_losses[record.best_epoch]:.6f} at "
        f"epoch {record.best_epoch + 1} of {len(record.val_losses)} ({record.seconds:.1f} s); saved to {out}"
    )
    if args.diagnostics:
        table, omega, edges = bank_diagnostics(bank, config.beta, config.lam)
        atomic_write_text(out / "diagnostics.json", json.dumps(table, indent=1))
        plot_binned_omega(omega, edges, out / "omega_heatmap.png")
        print(f"wrote {out / 'diagnostics.json'} and {out / 'omega_heatmap.png'}")
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

    bank = sub.add_parser(
        "bank",
        help="make a transition bank (forward passes only; resumable)",
        description="Draw self-consistency items for a toy denoiser checkpoint and store their "
        "sufficient statistics in shards. Run it again on the same folder to resume.",
    )
    bank.add_argument(
        "--denoiser",
        required=True,
        help="denoiser checkpoint folder (e.g. runs/demo/denoisers/under_trained)",
    )
    bank.add_argument("--out", required=True, help="bank folder")
    bank.add_argument("--items", type=int, default=16384, help="items in the bank (default: 16384)")
    bank.add_argument("--particles", type=int, default=4, help="particles m per item (default: 4)")
    bank.add_argument("--shard-size", type=int, default=4096, help="items per shard (default: 4096)")
    bank.add_argument(
        "--batch-size", type=int, default=1024, help="items per denoiser forward (default: 1024)"
    )
    bank.add_argument("--delta", type=float, default=0.1, help="smallest gap t - s (default: 0.1)")
    bank.add_argument("--churn", type=float, default=1.0, help="kernel churn ε (default: 1, DDPM)")
    bank.add_argument("--store-predictions", action="store_true", help="also store x̂_c and Δ per particle")
    bank.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    bank.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    bank.set_defaults(func=_bank)

    fit = sub.add_parser(
        "fit",
        help="fit the ω-network on a transition bank",
        description="Fit ω(c, s, t) on a bank with minibatch Adam, a held-out split and early "
        "stopping; optionally write the per-(class, t) loss-optimal ω as a table and heat map.",
    )
    fit.add_argument("--bank", required=True, help="bank folder made by `learnguide bank`")
    fit.add_argument(
        "--out", required=True, help="folder for the ω-network (config.json + model.safetensors)"
    )
    fit.add_argument("--epochs", type=int, default=100, help="maximum epochs (default: 100)")
    fit.add_argument("--batch-size", type=int, default=1024, help="items per step (default: 1024)")
    fit.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    fit.add_argument("--beta", type=float, default=1.75, help="energy exponent β in (0, 2] (default: 1.75)")
    fit.add_argument("--lam", type=float, default=1.0, help="repulsion λ in [0, 1] (default: 1)")
    fit.add_argument(
        "--output",
        default="relu",
        choices=["relu", "softplus", "identity"],
        help="ω-network output map (default: relu, as in the paper)",
    )
    fit.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    fit.add_argument(
        "--diagnostics", action="store_true", help="write diagnostics.json and omega_heatmap.png"
    )
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fit.set_defaults(func=_fit)
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
