"""The ``learnguide`` command line: each handler parses its arguments into a library call and prints a line.

The argument parser is in :mod:`.arguments`; what each command does is a function a Python user can call too
(:mod:`.loading`, :mod:`.learning`, :mod:`.sample_folder`, :mod:`.demo`, :mod:`.experiment`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from learnguide.apps.arguments import build_parser
from learnguide.checkpoints import CheckpointError


def _pick(cls: type, args: argparse.Namespace, **values):
    """An instance of the dataclass ``cls`` from the arguments named like its fields (and ``values``)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **values})


def _progress(args: argparse.Namespace) -> bool:
    """Whether to show progress bars (no ``--no-progress``)."""
    return not getattr(args, "no_progress", False)


def _plural(count: int, noun: str, plural: str = "") -> str:
    """``"1 shard"``, ``"3 shards"`` (``plural``: the plural form when it is not ``noun + "s"``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _demo(args: argparse.Namespace) -> int:
    from learnguide.apps.demo import REGIMES, run_demo
    from learnguide.core.guidance import METHODS

    learn = "online" if args.online or args.objective != "energy" or args.rollout > 1 else "bank"
    search = _search_settings(args)  # --shape, --scales and --statistic only beside --line-search
    if args.line_search:
        if learn != "bank":
            raise ValueError(
                "--line-search finds one constant ω by itself: drop --online, --objective and --rollout"
            )
        learn = "line-search"
    progress = _progress(args)
    results = run_demo(
        args.out, args.quick, args.seed, progress, learn, args.objective, args.rollout,
        search if args.line_search else None,
    )  # fmt: skip
    for regime in REGIMES:
        scores = ", ".join(f"{m} {results[regime.name][m]['energy']:.4f}" for m in METHODS)
        print(f"{regime.name}: energy distance — {scores}")
    print(f"wrote {args.out}/results.json and {args.out}/report.md ({results['meta']['seconds']:.0f} s)")
    return 0


def _bank(args: argparse.Namespace) -> int:
    from learnguide.apps.learning import make_bank
    from learnguide.apps.loading import DenoiserSource
    from learnguide.core.banks import BankConfig
    from learnguide.distributed import processes

    config = _pick(BankConfig, args)
    record = make_bank(_pick(DenoiserSource, args), args.out, config, progress=_progress(args))
    if processes().is_main:
        print(
            f"bank {args.out}: {_plural(config.items, 'item')} in {_plural(config.num_shards, 'shard')}; "
            "this run wrote "
            f"{_plural(record.shards_written, 'shard')} ({record.denoiser_evals} denoiser evals, "
            f"{record.seconds:.1f} s, {processes()})"
        )
    return 0


def _reward(args: argparse.Namespace):
    """The reward of ``fit --reward`` (None without it)."""
    from learnguide.apps.loading import build_reward

    if not args.reward:
        return None
    return build_reward(args.reward, args.reward_model, args.prompts, args.captions, latent_model=args.model)


def _check_denoiser_source(args: argparse.Namespace, command: str) -> None:
    """Raise ``ValueError`` unless ``command`` (a fit from a denoiser) names one, and ``--target-split`` is
    only given beside ``--target-data``."""
    if not (args.denoiser or args.model):
        raise ValueError(f"{command} needs the denoiser: --denoiser DIR or --model DIR (with --dataset)")
    if args.target_split != "test" and not args.target_data:
        raise ValueError(f"--target-split {args.target_split} picks a part of --target-data: add it")


def _fit_online(args: argparse.Namespace) -> int:
    from learnguide.apps.learning import fit_online_folder
    from learnguide.apps.loading import DenoiserSource
    from learnguide.checkpoints import training_state_meta
    from learnguide.core.online import OnlineConfig, default_churn
    from learnguide.distributed import processes

    _check_denoiser_source(args, "fit --online")
    if (args.reference or 1) > 1 and not args.balanced_classes:
        raise ValueError(
            "--reference R > 1 compares with more draws of the batch's class mix: add --balanced-classes"
        )
    churn = args.churn if args.churn is not None else default_churn(args.start, args.rollout)
    config = _pick(OnlineConfig, args, churn=churn, reference=args.reference or 1)
    learn = (args.out, config, args.output, _reward(args), _progress(args), args.features)
    learn += (tuple(args.feature_layer or ("pooled",)), _omega_hparams(args), args.features_of or "decoded")
    killed = training_state_meta(args.out)  # a resumed run: what the killed one did is in the record
    _, record = fit_online_folder(_pick(DenoiserSource, args), *learn)
    tail, procs = record.losses[-50:], processes()
    before = killed.get("record", {})  # what the killed run counted already
    evals = record.denoiser_evals - before.get("denoiser_evals", 0)
    features = record.feature_evals - before.get("feature_evals", 0)
    evals_text = f"{evals} denoiser evals" + (f" and {features} feature evals" if features else "")
    resumed = f", resumed at iteration {killed.get('iteration')}" if killed else ""
    if procs.is_main:
        print(
            f"learned ω online ({_plural(config.iterations, 'iteration')}{resumed}, {evals_text} "
            f"here and {_plural(procs.world - 1, 'more process', 'more processes')}, final loss "
            f"{sum(tail) / len(tail):.6f}, {record.seconds:.1f} s); saved to {args.out}"
        )
    return 0


def _fit_line_search(args: argparse.Namespace, search: dict) -> int:
    """``fit --line-search``; ``search``: :func:`_search_settings` of ``args``."""
    from learnguide.apps.learning import fit_line_search_folder
    from learnguide.apps.loading import DenoiserSource
    from learnguide.core.line_search import LineSearchConfig, line_search_curve, spread_text

    if args.online or args.bank:
        raise ValueError("--line-search learns from a denoiser by itself: drop --online and --bank")
    _check_denoiser_source(args, "fit --line-search")
    if args.kernel != "energy" or args.reward or args.reward_weight:
        raise ValueError(
            "--line-search measures the energy distance, without a reward: drop --kernel, --reward "
            "and --gamma"
        )
    if args.init_omega is not None or args.fourier_features is not None or args.output != "relu":
        raise ValueError(
            "--line-search saves one constant ω, not a network to fit: drop --init-omega, "
            "--fourier-features and --output"
        )
    balanced = args.balanced_classes  # further data items then hold the samples' class mix
    config = LineSearchConfig(
        omegas=tuple(args.omegas), samples=args.samples, reference=args.reference or (4 if balanced else 1),
        steps=args.grid_steps, churn=args.churn or 0.0, beta=args.beta, lam=args.lam, seed=args.seed,
        **search,
    )  # fmt: skip
    config.validate()  # before the denoiser loads
    features, layers = args.features, tuple(args.feature_layer or ("pooled",))
    _, record = fit_line_search_folder(
        _pick(DenoiserSource, args), args.out, config, features, layers, _progress(args),
        features_of=args.features_of or "decoded",
    )  # fmt: skip
    curve = line_search_curve(record.omegas, record.losses, config.shape, record.scales, record.shape_losses)
    constant = record.shape == "constant"
    chosen = f"ω = {record.omega:.4g}" if constant else f"{record.shape}, ω_max = {record.omega:.4g}"
    spread = spread_text(record.omega_spread, record.family_share, record.shape)
    chosen += f" {spread}" if spread else ""
    print(
        f"line search: {chosen} (loss by ω — {curve}; {record.denoiser_evals} denoiser evals, "
        f"{record.seconds:.1f} s); saved to {args.out}"
    )
    return 0


def _search_settings(args: argparse.Namespace) -> dict:
    """The :class:`~learnguide.core.line_search.LineSearchConfig` fields given by ``--shape``, ``--scales``
    and ``--statistic``; ``--scales`` without ``--shape`` is refused, and each without ``--line-search``."""
    if args.scales is not None and args.shape is None:
        raise ValueError("--scales is the grid of a --shape: give --shape too")
    for flag, given in (("--shape", args.shape), ("--statistic", args.statistic)):
        if given is not None and not args.line_search:
            raise ValueError(f"{flag} is a setting of --line-search: give --line-search too")
    settings = {"shape": args.shape, "scales": tuple(args.scales or ()), "statistic": args.statistic}
    return {key: value for key, value in settings.items() if key == "shape" or value}


def _omega_hparams(args: argparse.Namespace) -> dict:
    """The :class:`~learnguide.core.guidance.OmegaNet` keywords given by ``--shared``, ``--fourier-features``
    and ``--init-omega``."""
    given = {
        "shared": args.shared or None,
        "fourier_features": args.fourier_features,
        "init_omega": args.init_omega,
    }
    return {k: v for k, v in given.items() if v is not None}


def _fit(args: argparse.Namespace) -> int:
    from learnguide.apps.learning import fit_bank_folder
    from learnguide.apps.loading import DenoiserSource
    from learnguide.core.banks import FitConfig

    search = _search_settings(args)  # --shape, --scales and --statistic only beside --line-search
    if args.features_of and not args.features:
        raise ValueError("--features-of says how --features sees a latent model's particles: add --features")
    if args.line_search:
        return _fit_line_search(args, search)
    if args.online:
        return _fit_online(args)
    if not args.bank:
        raise ValueError("fit needs --bank (a transition bank) or --online with a denoiser")
    if args.features or args.feature_layer or args.kernel != "energy":  # the ω-network's options: fine
        raise ValueError(
            "--features, --feature-layer and --kernel are learned online: add --online (a bank holds pixel "
            "statistics)"
        )
    if flag := _pick(DenoiserSource, args).class_data_flag():
        raise ValueError(f"{flag} draws the data of an online fit: add --online (a bank is drawn)")
    config = _pick(FitConfig, args)
    _, record = fit_bank_folder(
        args.bank, args.out, config, args.output, _reward(args), args.diagnostics, _progress(args),
        _omega_hparams(args),
    )  # fmt: skip
    print(
        f"fitted ω on {args.bank}: best validation loss {record.val_losses[record.best_epoch]:.6f} at epoch "
        f"{record.best_epoch + 1} of {len(record.val_losses)} ({record.seconds:.1f} s); saved to {args.out}"
    )
    if args.diagnostics:
        print(f"wrote {Path(args.out) / 'diagnostics.json'} and {Path(args.out) / 'omega_heatmap.png'}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from learnguide.apps.sample_folder import SampleRequest, sample_to_folder

    done = sample_to_folder(_pick(SampleRequest, args), args.out, progress=_progress(args))
    if done:
        out = Path(args.out)
        written = f"{out / 'samples.safetensors'} and {out / 'samples.png'}"
        print(f"wrote {_plural(done['n'], 'sample')} to {written} ({done['processes']})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from learnguide.apps.sample_folder import evaluate_folder
    from learnguide.distributed import processes

    scores = evaluate_folder(
        args.samples, args.dataset, args.classifier, args.inception, args.cache, args.batch_size, args.out
    )
    if scores is not None:
        summary = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
        print(f"{summary} (n = {scores['n']}; {processes()})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from learnguide.apps.learning import export_omega

    table = export_omega(args.omega, args.steps, args.out, args.model, args.classes, args.prompts)
    conditions, steps = _plural(len(table["omega"]), "condition"), _plural(args.steps, "step")
    print(f"wrote ω for {conditions} × {steps} to {args.out}")
    return 0


def _train_denoiser(args: argparse.Namespace) -> int:
    from learnguide.core.denoiser_training import DenoiserTrainingConfig
    from learnguide.data.images import load_dataset
    from learnguide.images.denoisers import train_image_denoiser

    dataset = load_dataset(args.dataset)
    training = _pick(DenoiserTrainingConfig, args)
    train_image_denoiser(
        dataset,
        args.out,
        training,
        width=args.width,
        checkpoint_every=args.checkpoint_every,
        progress=_progress(args),
        source=args.dataset,
    )
    print(f"trained a {dataset.name} denoiser for {_plural(args.steps, 'step')}; saved to {args.out}")
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    from learnguide.data.images import load_dataset
    from learnguide.images.classifier import ClassifierTrainingConfig, save_classifier, train_classifier

    dataset = load_dataset(args.dataset)
    training = _pick(ClassifierTrainingConfig, args)
    model, record = train_classifier(dataset, training, width=args.width, progress=_progress(args))
    save_classifier(model, args.out, record, training, dataset.fingerprint())
    print(
        f"trained a {dataset.name} classifier: test accuracy {record['test_accuracy']:.4f} "
        f"({record['seconds']:.0f} s); saved to {args.out}"
    )
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from learnguide.apps.experiment import experiment_config, experiment_inputs, run_experiment
    from learnguide.core.guidance import METHODS
    from learnguide.data.images import load_dataset

    dataset = load_dataset(args.dataset)
    denoisers, classifier = experiment_inputs(dataset, args.checkpoints, args.denoisers, args.classifier)
    _refuse_beside_recipe(args)
    overrides = {k: getattr(args, k) for k in EXPERIMENT_OVERRIDES if getattr(args, k) is not None}
    overrides.update(omega_hparams=_omega_hparams(args))
    overrides.update({"feature_layers": tuple(args.feature_layer)} if args.feature_layer else {})
    online = {k: getattr(args, k) for k in ("kernel", "start", "rollout") if getattr(args, k) is not None}
    learn = "online" if args.online or args.objective != "energy" or args.features or online else "bank"
    if args.line_search:
        if args.online or online or args.objective != "energy":
            raise ValueError(
                "--line-search finds one constant ω by itself: drop --online, --objective, "
                "--kernel, --start and --rollout"
            )
        learn = "line-search"
    search = _search_settings(args)
    config = experiment_config(
        args.seed, args.tiny, learn, args.objective, args.inception, online, args.recipe, search, **overrides
    )
    out = Path(args.out or f"runs/experiment-{dataset.name}")
    results = run_experiment(dataset, denoisers, classifier, out, config, progress=_progress(args))
    for name in denoisers:
        for steps, entry in results[name]["by_steps"].items():
            scores = ", ".join(f"{m} {entry[m]['fd']:.2f}" for m in METHODS)
            print(f"{name}, {_plural(int(steps), 'step')}: FD — {scores}")
    print(f"wrote {out}/results.json and {out}/report.md ({results['meta']['seconds']:.0f} s)")
    return 0


RECIPE_SETS = {
    "online": "--online",
    "line_search": "--line-search",
    "features": "--features",
    "kernel": "--kernel",
    "start": "--start",
    "rollout": "--rollout",
    "feature_layer": "--feature-layer",
    "shared": "--shared",
    "fourier_features": "--fourier-features",
    "init_omega": "--init-omega",
}
"""``experiment`` options that ``--recipe`` decides (argument name: flag)."""


def _refuse_beside_recipe(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` naming the first option given beside ``--recipe`` that the recipe decides."""
    if args.recipe is None:
        return
    given = [flag for name, flag in RECIPE_SETS.items() if getattr(args, name) not in (None, False)]
    given += ["--objective"] if args.objective != "energy" else []
    if given:
        raise ValueError(f"--recipe decides how ω is learned; drop {given[0]}")


EXPERIMENT_OVERRIDES = (
    "steps",
    "tune_per_class",
    "eval_per_class",
    "eval_seeds",
    "constant_grid",
    "interval_omegas",
    "increasing_omegas",
    "reward",
    "reward_weights",
    "features",
    "held_out_classifier",
)
"""``experiment`` options that replace an :class:`~.experiment.ExperimentConfig` field when given."""

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _demo,
    "bank": _bank,
    "fit": _fit,
    "sample": _sample,
    "evaluate": _evaluate,
    "export": _export,
    "train-denoiser": _train_denoiser,
    "train-classifier": _train_classifier,
    "experiment": _experiment,
}

FOLDER_COMMANDS = ("demo", "bank", "fit", "sample", "train-denoiser", "train-classifier", "experiment")
"""Commands whose ``--out`` is a folder only one job may write at a time (see ``OutputLock``)."""

WRITES = {
    "demo": "results",
    "bank": "learnguide.bank",
    "fit": "learnguide.omega_net",
    "sample": "samples",
    "train-denoiser": "learnguide.image_denoiser",
    "train-classifier": "learnguide.classifier",
    "experiment": "results",
}
"""What each folder command writes into ``--out``; it never writes into a folder holding something else."""


def _check_output(args: argparse.Namespace) -> None:
    """Refuse an ``--out`` folder of another kind, and one of the same kind that would be replaced rather
    than resumed unless ``--overwrite`` (``fit`` from a bank, or online without a saved trainer state;
    ``sample``; ``train-classifier``)."""
    from learnguide.checkpoints import STATE_FILE, check_output_folder

    resumes_online = args.command == "fit" and args.online and (Path(args.out) / STATE_FILE).is_file()
    replaces = args.command in ("sample", "train-classifier") or (
        args.command == "fit" and not resumes_online
    )
    overwrite = getattr(args, "overwrite", False)
    check_output_folder(args.out, WRITES[args.command], resumable=not replaces, overwrite=overwrite)


@contextlib.contextmanager
def _fit_warnings_on_console(command: str) -> Iterator[None]:
    """Within the block, show a :class:`FitWarning` as one plain line on stderr (others as Python does)."""
    import warnings

    from learnguide.core.fit_checks import FitWarning

    python_default = warnings.showwarning

    def show(message, category, *rest, **kw) -> None:  # noqa: ANN001 (warnings.showwarning's signature)
        if issubclass(category, FitWarning):
            print(f"learnguide {command}: warning: {message}", file=sys.stderr)
        else:
            python_default(message, category, *rest, **kw)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = python_default


def _message(err: Exception, out: Path | None) -> str:
    """The error's one line; a full disk names the output (a new one is removed, older work is kept)."""
    if out is None or not isinstance(err, OSError) or err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return str(err)
    writing = f" (writing {err.filename})" if err.filename else ""
    return f"no space left on the device for --out {out}{writing}; free some space and run the command again"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``learnguide`` with ``argv`` (default: the process arguments); returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad argument (one line on stderr)
        return int(stop.code or 0)
    if getattr(args, "out", None) == "":
        print(f"learnguide {args.command}: error: --out is empty; name a folder or file", file=sys.stderr)
        return 2
    out = Path(args.out) if getattr(args, "out", None) else None
    fresh = out is not None and not out.exists()  # a failed run removes what it started, never older work
    try:
        with _fit_warnings_on_console(args.command):
            if out is None or args.command not in FOLDER_COMMANDS:
                if out is not None and out.is_dir():  # export, evaluate: one JSON file
                    raise ValueError(f"--out {out} is a folder; {args.command} writes a JSON file: name one")
                return HANDLERS[args.command](args)
            from learnguide.distributed import OutputLock, processes

            _check_output(args)
            with OutputLock(out, args.command, processes()):
                return HANDLERS[args.command](args)
    except (CheckpointError, ValueError, json.JSONDecodeError, OSError) as err:
        print(f"learnguide {args.command}: error: {_message(err, out)}", file=sys.stderr)
        if fresh and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        elif fresh and out.exists():
            out.unlink()
        return 2


if __name__ == "__main__":
    sys.exit(main())
