"""``learnguide demo``: the method end to end on the toy mixture, against tuned baseline schedules.

For each denoiser regime (``well_trained``, ``under_trained``) the demo trains (or reloads) a small MLP
denoiser on the ring mixture, tunes a constant ω, a limited interval and an increasing schedule on a tuning
set of samples, learns ω_φ(c, s, t) by self-consistency (from a transition bank by default, online, or as
one constant by a line search), and evaluates every winner (and the unguided model) on fresh seeds with the
same number of sampling steps. Distances are measured against exact samples of the true conditionals: the
mean over classes of the energy distance and of the RBF MMD².
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from learnguide.apps.comparison import (
    baseline_families,
    evaluate_over_sets,
    learn_as_configured,
    tune_families,
)
from learnguide.apps.reports import DemoFigures, write_demo_report
from learnguide.checkpoints import CheckpointError, atomic_write_text, strict_json
from learnguide.core.banks import BankConfig, FitConfig
from learnguide.core.denoiser_training import (
    DenoiserTrainingConfig,
    load_mlp_denoiser,
    save_mlp_denoiser,
    train_denoiser,
)
from learnguide.core.denoisers import PredictionAdapter
from learnguide.core.guidance import GuidanceSchedule
from learnguide.core.line_search import LineSearchConfig
from learnguide.core.metrics import class_metrics, median_bandwidth
from learnguide.core.networks import MLPDenoiserNet
from learnguide.core.online import OnlineConfig, default_churn
from learnguide.core.sampling import sample
from learnguide.core.schedules import VPCosine, step_grid
from learnguide.data.toy import GaussianMixture, ring_mixture


@dataclass(frozen=True)
class Regime:
    """A toy denoiser regime: its name in ``results.json``, what it is, and how its denoiser is trained."""

    name: str
    description: str
    training: DenoiserTrainingConfig


REGIMES = (
    Regime(
        "well_trained",
        "3000 steps on clean labels: the conditional branch matches p(x | c) closely.",
        DenoiserTrainingConfig(steps=3000, label_noise=0.0),
    ),
    Regime(
        "under_trained",
        "1500 steps with 40% of class labels replaced by random ones (label noise): the conditional branch "
        "learns 0.6 p(x | c) + 0.4 p(x), i.e. it under-commits to its condition the way guidance can fix "
        "(docs/design.md §9; early stopping alone makes an MLP contract instead, which no ω > 0 helps).",
        DenoiserTrainingConfig(steps=1500, label_noise=0.4),
    ),
)


def _toy_search(samples: int, omegas: tuple[float, ...]) -> LineSearchConfig:
    """The demo's line search: ``samples`` guided points per ω of ``omegas`` against 4× as many data points,
    on the demo's 20-step DDIM grid, in one batch per ω (the toy MLP is cheap)."""
    return LineSearchConfig(omegas=omegas, samples=samples, steps=20, batch_size=samples)


@dataclass
class DemoConfig:
    """Sizes and grids of the demo. :meth:`quick` is the CI-sized variant (under a minute on 2 CPU cores).

    Attributes:
        steps: sampling steps N, the same for every schedule.
        tune_per_class: samples per class used to pick each baseline's best setting.
        eval_per_class: samples per class in each evaluation seed set.
        eval_seeds: number of fresh seed sets the winners are evaluated on (mean and std are reported).
        constant_grid: ω values of the constant sweep (0 is the unguided model).
        interval_omegas, intervals: ω and (t_lo, t_hi) combinations of the limited-interval sweep.
        increasing_omegas, increasing_shapes: ω_max and shapes of the increasing-schedule sweep.
        learn: ``"bank"`` (a transition bank, then a fit; default), ``"online"`` (the paper's procedure) or
            ``"line-search"`` (one constant ω, docs/design.md §3.5).
        bank, fit: the transition bank and its fit (docs/design.md §3.1).
        online: hyper-parameters of online learning (docs/design.md §3), used when ``learn == "online"``.
        line_search: the line search's grid and sample counts (the points' own coordinates are its
            features), used when ``learn == "line-search"``; its ``steps`` are the demo's.
        omega_hparams: other :class:`~learnguide.core.guidance.OmegaNet` keywords (e.g. ``shared``).
        denoiser_hidden: width of the toy MLP denoisers.
        seed: master seed; every sample set, network and run derives from it.
    """

    steps: int = 20
    tune_per_class: int = 2000
    eval_per_class: int = 4000
    eval_seeds: int = 5
    constant_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
    interval_omegas: tuple[float, ...] = (0.5, 1.0, 2.0)
    intervals: tuple[tuple[float, float], ...] = ((0.5, 1.0), (0.3, 0.8), (0.2, 0.6), (0.0, 0.5))
    increasing_omegas: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    increasing_shapes: tuple[str, ...] = ("linear", "cosine")
    learn: str = "bank"
    bank: BankConfig = field(default_factory=lambda: BankConfig(items=16384))
    fit: FitConfig = field(default_factory=FitConfig)
    online: OnlineConfig = field(default_factory=lambda: OnlineConfig(iterations=3000))
    line_search: LineSearchConfig = field(default_factory=lambda: _toy_search(4096, (0, 0.5, 1, 1.5, 2)))
    omega_hparams: dict = field(default_factory=dict)
    denoiser_hidden: int = 128
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """A CI-sized demo: small sample sets, short grids, a 4,096-item bank (or 300 online iterations, or a
        line search of 400 samples over ω ∈ {0, 1, 2})."""
        return cls(
            tune_per_class=400,
            eval_per_class=1000,
            eval_seeds=2,
            constant_grid=(0.0, 0.5, 1.0, 2.0),
            interval_omegas=(1.0,),
            intervals=((0.5, 1.0), (0.2, 0.6)),
            increasing_omegas=(1.0, 2.0),
            increasing_shapes=("linear",),
            bank=BankConfig(items=4096),
            online=OnlineConfig(iterations=300),
            line_search=_toy_search(400, (0.0, 1.0, 2.0)),
            seed=seed,
        )

    def baselines(self) -> dict[str, list[GuidanceSchedule]]:
        """The schedules each baseline family sweeps over."""
        return baseline_families(
            self.constant_grid,
            self.interval_omegas,
            self.intervals,
            self.increasing_omegas,
            self.increasing_shapes,
        )


@dataclass
class ToyScorer:
    """Samples a schedule on fixed seeds and scores it against exact samples of the true conditionals."""

    denoiser: PredictionAdapter
    mixture: GaussianMixture
    steps: int
    bandwidth: float

    def samples(self, guidance: GuidanceSchedule, labels: Tensor, seed: int) -> Tensor:
        """Samples ``[n, d]`` for class ids ``labels [n]``, all noise from ``seed``."""
        return sample(
            self.denoiser,
            self.denoiser.schedule,
            guidance,
            labels,
            (self.mixture.dim,),
            steps=self.steps,
            generator=torch.Generator().manual_seed(seed),
        )

    def score(self, guidance: GuidanceSchedule, sample_set: tuple[Tensor, Tensor, int]) -> dict:
        """``{"energy", "mmd"}`` (means over classes) of ``guidance`` on one (labels, reference, seed) set."""
        labels, reference, seed = sample_set
        m = class_metrics(
            self.samples(guidance, labels, seed), labels, reference, labels, self.bandwidth, overall=False
        )
        return {"energy": m["energy"], "mmd": m["mmd"]}


def toy_sample_set(mixture: GaussianMixture, per_class: int, seed: int) -> tuple[Tensor, Tensor, int]:
    """Balanced class ids ``[C·per_class]``, exact reference samples for them, and a sampling seed."""
    labels = torch.arange(mixture.num_classes).repeat_interleave(per_class)
    reference = mixture.sample(labels, torch.Generator().manual_seed(seed)).float()
    return labels, reference, seed + 1


def demo_scoring(
    model: PredictionAdapter, mixture: GaussianMixture, config: DemoConfig
) -> tuple[ToyScorer, tuple[Tensor, Tensor, int], list[tuple[Tensor, Tensor, int]]]:
    """The demo's scorer for ``model`` (RBF bandwidth from the tuning set's reference), its tuning set and its
    evaluation sets, all seeded by ``config.seed``: what :func:`run_regime` tunes and evaluates on."""
    base = config.seed * 1000
    tuning = toy_sample_set(mixture, config.tune_per_class, base + 100)
    eval_sets = [
        toy_sample_set(mixture, config.eval_per_class, base + 200 + 10 * k) for k in range(config.eval_seeds)
    ]
    return ToyScorer(model, mixture, config.steps, median_bandwidth(tuning[1])), tuning, eval_sets


def toy_denoiser(
    regime: Regime, mixture: GaussianMixture, config: DemoConfig, out: Path, progress: bool = True
) -> tuple[PredictionAdapter, dict]:
    """Load the regime's denoiser from ``out/denoisers/<name>`` if it was trained with these settings, else
    train and save it. Returns the denoiser and a record of how it was obtained."""
    directory = out / "denoisers" / regime.name
    training = replace(regime.training, seed=config.seed)
    try:
        model = load_mlp_denoiser(directory, data_id=mixture.fingerprint())
        saved = json.loads((directory / "config.json").read_text())
        if saved["training"] == asdict(training) and saved["net"]["hidden"] == config.denoiser_hidden:
            return model, {"source": "loaded", "path": str(directory), "training": asdict(training)}
    except (CheckpointError, FileNotFoundError):
        pass
    torch.manual_seed(config.seed)
    net = MLPDenoiserNet(mixture.dim, mixture.num_classes, hidden=config.denoiser_hidden, layers=4)
    model = PredictionAdapter(net, VPCosine(), "v", null_id=mixture.num_classes)

    began = time.perf_counter()
    losses = train_denoiser(model, mixture.data_sampler(), training, progress=progress)
    save_mlp_denoiser(model, directory, training, mixture.fingerprint())
    return model, {
        "source": "trained",
        "path": str(directory),
        "training": asdict(training),
        "seconds": time.perf_counter() - began,
        "final_loss": sum(losses[-100:]) / 100,
    }


def run_regime(
    regime: Regime, mixture: GaussianMixture, config: DemoConfig, out: Path, progress: bool = True
) -> tuple[dict, dict]:
    """Tune the baselines, learn ω and evaluate everything for one regime.

    Returns ``(results, figure_data)``: the regime's entry of ``results.json`` and what the report draws.
    """
    model, denoiser_record = toy_denoiser(regime, mixture, config, out, progress)
    evaluator, tuning, eval_sets = demo_scoring(model, mixture, config)

    families = config.baselines()
    sweeps, winners = tune_families(
        evaluator.score, families, tuning, "energy", f"{regime.name}: tune", progress
    )
    data = mixture.data_sampler(balanced=config.learn == "line-search")  # its reference holds the class mix
    omega_net, learning = learn_as_configured(
        config, model, data, mixture.num_classes, out / regime.name, progress
    )

    results: dict = {
        "description": regime.description,
        "denoiser": denoiser_record,
        "steps": config.steps,
        "tune_per_class": config.tune_per_class,
        "eval_per_class": config.eval_per_class,
        "eval_seeds": config.eval_seeds,
    }
    winners["learned"] = omega_net
    for name, guidance in tqdm(
        winners.items(), desc=f"{regime.name}: evaluate", disable=not progress, leave=False
    ):
        entry = {
            "settings": guidance.config(),
            "tuning": evaluator.score(guidance, tuning),
            **evaluate_over_sets(evaluator.score, guidance, eval_sets),
        }
        if name in sweeps:
            entry["sweep"] = sweeps[name]
        results[name] = entry
    grid = step_grid(config.steps)
    table = omega_net.omega_table(torch.arange(mixture.num_classes), grid)  # [N, C]
    results["learned"].update(
        {
            "learning": learning,
            "checkpoint": str(out / regime.name / "omega_net"),
            "omega_table": {"t": grid[:-1].tolist(), "per_class": table.T.tolist()},
        }
    )
    labels, reference, seed = eval_sets[0]
    figure_data = {
        "labels": labels,
        "reference": reference,
        "samples": {
            name: evaluator.samples(winners[name], labels, seed)
            for name in ("unguided", "constant", "learned")
        },
        "constant_sweep": sweeps["constant"],
        "tuning_lines": {
            name: results[name]["tuning"]["energy"] for name in ("interval", "increasing", "learned")
        },
        "omega_t": grid[:-1],
        "omega_table": table,
    }
    return results, figure_data


def run_demo(
    out: str | Path = "runs/demo",
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    learn: str = "bank",
    objective: str = "energy",
    rollout: int = 1,
    line_search: dict | None = None,
) -> dict:
    """Run the whole demo and write ``results.json``, ``report.md`` and figures into ``out``.

    Args:
        out: output folder (created; denoisers trained here are reused by later runs with the same settings).
        quick: the CI-sized variant (:meth:`DemoConfig.quick`).
        seed: master seed.
        progress: show progress bars.
        learn: ``"bank"`` (default), ``"online"`` or ``"line-search"``: how ω is learned.
        objective: the online objective (:class:`~learnguide.core.online.OnlineConfig`); anything but
            ``"energy"`` needs ``learn="online"`` (banks store per-item statistics only).
        rollout: K > 1 learns online from K-step rollouts on the sampling grid (docs/design.md §3.4; K =
            ``steps`` is the whole trajectory, then use ``objective="class-marginal"``): 300 iterations of
            256 trajectories (one particle each, groups of 16).
        line_search: with ``learn="line-search"``, fields of :class:`~learnguide.core.line_search.
            LineSearchConfig` to replace (``shape``, ``scales``, ``statistic``), as ``fit --line-search``
            takes them.

    Returns:
        the content of ``results.json``.
    """
    if learn not in ("bank", "online", "line-search"):
        raise ValueError(f"learn must be 'bank', 'online' or 'line-search', got {learn!r}")
    if learn == "line-search" and (objective != "energy" or rollout > 1):
        raise ValueError("--line-search finds one constant ω by itself: drop --objective and --rollout")
    if line_search and learn != "line-search":
        raise ValueError(f"{sorted(line_search)} are settings of --line-search: give --line-search too")
    if objective != "energy" and learn != "online":
        raise ValueError(f"the {objective} objective is learned online: use learn='online' (--online)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = replace(DemoConfig.quick(seed) if quick else DemoConfig(seed=seed), learn=learn)
    config = replace(config, online=replace(config.online, objective=objective))
    if rollout > 1:
        if learn != "online":
            raise ValueError("a rollout is learned online: use learn='online' (--online)")
        whole = dict(rollout=rollout, grid_steps=config.steps, iterations=300, particles=1, group_size=16)
        config = replace(config, online=replace(config.online, churn=default_churn("data", rollout), **whole))
    searched = replace(config.line_search, steps=config.steps, **(line_search or {}))
    config = replace(config, line_search=searched)
    config.online.validate()
    config.line_search.validate()
    mixture = ring_mixture()
    began = time.perf_counter()
    results: dict = {
        "meta": {
            "quick": quick,
            "seed": seed,
            "learn": learn,
            "objective": objective,
            "rollout": rollout,
            "mixture": "ring_mixture()",
            "mixture_fingerprint": mixture.fingerprint(),
            "schedule": VPCosine().config(),
            "metric": "mean over classes of energy distance / RBF MMD² to exact samples",
            "config": asdict(config),
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
    }
    figures = DemoFigures()
    for regime in REGIMES:
        results[regime.name], figures.regimes[regime.name] = run_regime(
            regime, mixture, config, out, progress
        )
    results["meta"]["seconds"] = time.perf_counter() - began
    atomic_write_text(out / "results.json", strict_json(results, indent=2))
    write_demo_report(results, figures, out)
    return results
