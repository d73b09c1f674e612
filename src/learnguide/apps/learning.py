"""Learning ω into a folder: make a bank, fit on it, online or by a line search, export a learned schedule
(``learnguide bank``, ``fit``, ``export``). Each function is what the command does, callable from Python."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from learnguide.apps.loading import DenoiserSource, pick_conditions
from learnguide.checkpoints import atomic_write_text, folder_kind, strict_json
from learnguide.core.banks import (
    BankConfig,
    BankRecord,
    FitConfig,
    FitRecord,
    bank_diagnostics,
    fit_omega_on_bank,
    generate_bank,
    load_bank,
)
from learnguide.core.discrepancy import FeatureMap
from learnguide.core.encoders import KIND as ENCODER_KIND
from learnguide.core.encoders import encoder_features, load_encoder
from learnguide.core.guidance import OmegaNet, export_schedule
from learnguide.core.items import DataSampler
from learnguide.core.line_search import (
    LineSearchConfig,
    LineSearchRecord,
    line_search_omega,
    schedule_network,
)
from learnguide.core.memory import check_memory, particle_bytes
from learnguide.core.objectives import Reward
from learnguide.core.online import OnlineConfig, TrainingRecord, train_omega_online
from learnguide.core.schedules import get_schedule, step_grid
from learnguide.data.prompts import load_prompt_images
from learnguide.distributed import processes
from learnguide.images.classifier import classifier_features, load_classifier
from learnguide.images.reports import plot_binned_omega

if TYPE_CHECKING:
    from learnguide.integrations.diffusers_latents import LatentCodec

SCALE_ITEMS = 512  # clean data items each joined feature layer is scaled by (docs/design.md §3.2)


FEATURES_OF = ("decoded", "latents")
"""What a latent model's particles are measured as in ``--features``: decoded by its VAE, or as latents."""


def load_feature_map(
    folder: str | Path | None,
    layers: tuple[str, ...],
    sample_data: DataSampler,
    data_id: str | None = None,
    codec: LatentCodec | None = None,
    features_of: str = "decoded",
) -> FeatureMap | None:
    """The frozen feature map in ``folder`` (None: pixels, returned as None): a classifier's ``layers``
    (:func:`~learnguide.images.classifier.classifier_features`; several are scaled on ``SCALE_ITEMS`` items
    drawn from ``sample_data`` with seed 0; trained on ``data_id``'s data when given), or an encoder's
    (:func:`~learnguide.core.encoders.load_encoder`). With ``codec`` (a latent model's VAE: the particles
    are latents), ``features_of`` says whether they are measured decoded by it (``"decoded"``) or as latents
    (``"latents"``). Raises ``ValueError`` when φ cannot take the
    particles (tried once on two data items)."""
    if folder is None:
        return None
    if features_of not in FEATURES_OF:
        raise ValueError(f"--features-of must be one of {FEATURES_OF}, got {features_of!r}")
    if features_of == "latents" and codec is None:
        raise ValueError(
            "--features-of latents measures a latent model's latents; this denoiser works in pixels"
        )
    decoder = codec if features_of == "decoded" else None
    x0 = sample_data(SCALE_ITEMS if len(layers) > 1 else 2, torch.Generator().manual_seed(0))[0]
    images = decoder.decode(x0) if decoder is not None else x0
    if folder_kind(folder) == ENCODER_KIND:
        if tuple(layers) != ("pooled",):
            raise ValueError(f"--feature-layer picks a classifier's layers; {folder} is an encoder")
        phi = encoder_features(*load_encoder(folder))
    else:
        classifier = load_classifier(folder, data_id=data_id)
        phi = classifier_features(classifier, layers, images if len(layers) > 1 else None)
    try:
        with torch.no_grad():
            phi(images[:2], torch.zeros(2, dtype=images.dtype))
    except RuntimeError as err:  # torch's shape errors
        what = "decoded images" if decoder is not None else "particles"
        first = str(err).splitlines()[0]
        raise ValueError(
            f"--features {folder} cannot take this denoiser's {what} of shape {list(images.shape[1:])} "
            f"({first})"
        ) from None
    if decoder is None:
        return phi
    from learnguide.integrations.diffusers_latents import decoded_features

    return decoded_features(phi, decoder)


def make_bank(
    source: DenoiserSource, out: str | Path, config: BankConfig, progress: bool = True
) -> BankRecord:
    """Write (or resume) a transition bank of ``source``'s denoiser into ``out``; under a launcher process r
    makes shards r, r + N, … A latent model's encoded data are cached in ``out/latents``."""
    denoiser, sample_data, denoiser_id, _ = source.load(cache_dir=out, progress=progress)
    procs = processes()
    return generate_bank(
        denoiser.to(procs.device),
        denoiser.schedule,
        sample_data,
        out,
        config,
        denoiser_id=denoiser_id,
        progress=progress,
        procs=procs,
        device=procs.device,
    )


def fit_bank_folder(
    bank_dir: str | Path,
    out: str | Path,
    config: FitConfig,
    output: str = "relu",
    reward: Reward | None = None,
    diagnostics: bool = False,
    progress: bool = True,
    omega_hparams: dict | None = None,
) -> tuple[OmegaNet, FitRecord]:
    """Fit a new ω-network (``output`` map, other :class:`OmegaNet` keywords in ``omega_hparams``, e.g.
    ``shared``; initial weights from ``config.seed``) on the bank in ``bank_dir``
    and save it to ``out`` with the bank, its denoiser's id, the settings and the fit's warnings. With
    ``diagnostics``, also write ``out/diagnostics.json`` and ``out/omega_heatmap.png`` (the per-(class, t)
    loss-optimal ω)."""
    bank = load_bank(bank_dir)
    torch.manual_seed(config.seed)
    schedule = get_schedule(bank.manifest["schedule"])
    net = OmegaNet.for_conditions(schedule, bank.cond, output=output, **(omega_hparams or {}))
    record = fit_omega_on_bank(net, bank, config, progress=progress, reward=reward)
    out = Path(out)
    extra = {"bank": str(bank_dir), "denoiser_id": bank.manifest["denoiser_id"], "fit": vars(config)}
    net.save(out, extra={**extra, **({"warnings": record.warnings} if record.warnings else {})})
    if diagnostics:
        table, omega, edges = bank_diagnostics(bank, config.beta, config.lam)
        atomic_write_text(out / "diagnostics.json", strict_json(table, indent=1))
        plot_binned_omega(omega, edges, out / "omega_heatmap.png")
    return net, record


def fit_online_folder(
    source: DenoiserSource,
    out: str | Path,
    config: OnlineConfig,
    output: str = "relu",
    reward: Reward | None = None,
    progress: bool = True,
    features: str | Path | None = None,
    feature_layers: tuple[str, ...] = ("pooled",),
    omega_hparams: dict | None = None,
    features_of: str = "decoded",
) -> tuple[OmegaNet, TrainingRecord]:
    """Learn ω online (Algorithm 1) for ``source``'s denoiser into ``out`` (resumable: a killed run started
    again on the same folder continues); each batch's denoiser calls are split over the processes. With
    ``features`` (a classifier folder: noisy, ``train-classifier --noisy``, or clean for a whole rollout) the
    particles are compared in its frozen features φ(x, s) (``feature_layers``: pooled features, logits, or
    both joined) instead of pixels; an encoder folder (:func:`~learnguide.core.encoders.save_encoder`) works
    the same way; ``features_of``: a latent model's particles decoded or as latents
    (:func:`load_feature_map`).
    ``omega_hparams``: other :class:`OmegaNet` keywords (e.g. ``shared``)."""
    denoiser, sample_data, denoiser_id, codec = source.load(cache_dir=out, progress=progress)
    procs = processes()
    x0, example = sample_data(2, torch.Generator().manual_seed(0))
    phi = load_feature_map(features, tuple(feature_layers), sample_data, None, codec, features_of)
    particles = 1 if config.start == "on-policy" else config.particles  # on-policy items have one particle
    what = f"a batch of {config.batch_size} items × {particles} particles"
    what += f" × {config.rollout} rollout steps" if config.rollout > 1 else ""
    needed = particle_bytes(config.batch_size * config.rollout, particles, x0[0].numel())
    check_memory(needed, what, "--particles, --batch-size or --rollout", procs.device)
    null_id = int(denoiser.null_cond(example)[0]) if example.dim() == 1 else None  # K classes: ∅ is K
    torch.manual_seed(config.seed)
    net = OmegaNet.for_conditions(
        denoiser.schedule, example, num_classes=null_id, output=output, **(omega_hparams or {})
    )
    record = train_omega_online(
        net,
        denoiser.to(procs.device),
        sample_data,
        config,
        out_dir=out,
        progress=progress and procs.is_main,
        reward=reward,
        procs=procs,
        device=procs.device,
        denoiser_id=denoiser_id,
        features=phi,
        meta=recipe_meta(source, features, feature_layers),
    )
    return net, record


def fit_line_search_folder(
    source: DenoiserSource,
    out: str | Path,
    config: LineSearchConfig,
    features: str | Path | None = None,
    feature_layers: tuple[str, ...] = ("pooled",),
    progress: bool = True,
    features_of: str = "decoded",
) -> tuple[OmegaNet, LineSearchRecord]:
    """Find one constant ω (or increasing schedule, with ``config.shape``) for ``source``'s denoiser by a line
    search on common random numbers (:func:`~learnguide.core.line_search.line_search_omega`) and save it to
    ``out`` as an ω-network that gives it, with the loss over the grid, the settings and any warning.
    ``features``: a classifier (or encoder) folder whose frozen features of final samples
    (``feature_layers``; a latent model's ``features_of``, :func:`load_feature_map`) the distance is measured
    in; None: pixels. Runs in one process."""
    procs = processes()
    if procs.world > 1:
        raise ValueError("fit --line-search runs in one process: start it without a launcher")
    denoiser, sample_data, denoiser_id, codec = source.load(cache_dir=out, progress=progress)
    phi = load_feature_map(features, tuple(feature_layers), sample_data, None, codec, features_of)
    _, example = sample_data(2, torch.Generator().manual_seed(0))
    record = line_search_omega(
        denoiser.to(procs.device), denoiser.schedule, sample_data, config, phi, progress, procs.device
    )
    null_id = int(denoiser.null_cond(example)[0]) if example.dim() == 1 else None  # K classes: ∅ is K
    net = schedule_network(denoiser.schedule, example, record.omega, null_id, record.shape)
    extra = {"denoiser_id": denoiser_id, "line_search": asdict(config), "found": record.found()}
    extra.update(recipe_meta(source, features, feature_layers))
    net.save(out, extra={**extra, **({"warnings": record.warnings} if record.warnings else {})})
    return net, record


def recipe_meta(source: DenoiserSource, features: str | Path | None, feature_layers: tuple[str, ...]) -> dict:
    """What an online fit saves beside its :class:`OnlineConfig` so that :func:`load_recipe` can learn the
    same way again: the feature classifier folder (absolute; None: pixels), its layers, balanced draws and
    where the data came from (``target_data``: None for the training split)."""
    return {
        "features": str(Path(features).resolve()) if features else None,
        "feature_layers": list(feature_layers),
        "balanced_classes": source.balanced_classes,
        "target_data": source.target_data and _resolved(source.target_data),
        "target_split": source.target_split,
    }


def _resolved(dataset: str) -> str:
    """A dataset name as it is, an image folder as its absolute path."""
    return str(Path(dataset).resolve()) if Path(dataset).is_dir() else dataset


RECIPE_NETWORK_KEYS = ("output", "init_omega", "shared", "fourier_features", "hidden", "layers")
"""The ω-network settings a recipe carries (the rest of its config.json describes this network only)."""


def load_recipe(folder: str | Path) -> dict:
    """How the ω-network in ``folder`` (written by ``learnguide fit --online``) was learned, to learn the same
    way for another denoiser: ``{"online": OnlineConfig, "features": str | None, "feature_layers": tuple,
    "balanced_classes": bool, "omega_hparams": {output, init_omega, shared, …}}``. Raises ``ValueError``
    naming the folder when it was not learned online, was saved before recipes were recorded, learned a
    reward, drew its data from ``--target-data``, or its feature classifier is gone."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ValueError(f"--recipe {folder}: no config.json there; pass a folder written by `fit --online`")
    config = json.loads(path.read_text())
    extra = config.get("extra", {})
    if "online" not in extra:
        raise ValueError(f"--recipe {folder}: this ω-network was not learned online (`fit --online`)")
    if "feature_layers" not in extra:
        raise ValueError(
            f"--recipe {folder}: its config.json does not record its features (learned by an older "
            "learnguide); fit it again"
        )
    try:
        online = OnlineConfig(**extra["online"])
    except TypeError as err:  # a setting this version does not have, or one missing
        raise ValueError(f"--recipe {folder}: its online settings do not fit this version ({err})") from None
    if online.reward_weight > 0:
        raise ValueError(f"--recipe {folder}: a reward-tilted fit; the experiment's rewards use --reward")
    if extra.get("target_data"):
        raise ValueError(
            f"--recipe {folder}: it drew its data from --target-data {extra['target_data']}; the experiment "
            "learns from each checkpoint's training split"
        )
    features = extra["features"]
    if features is not None and not Path(features).is_dir():
        raise ValueError(f"--recipe {folder}: its feature classifier {features} does not exist here")
    return {
        "online": online,
        "features": features,
        "feature_layers": tuple(extra["feature_layers"]),
        "balanced_classes": bool(extra["balanced_classes"]),
        "omega_hparams": {k: config[k] for k in RECIPE_NETWORK_KEYS if k in config},
    }


def export_omega(
    omega_dir: str | Path,
    steps: int,
    out: str | Path,
    model: str | None = None,
    classes: list[int] | None = None,
    prompts: str | None = None,
) -> dict:
    """Write a learned ω as JSON per-step lists per condition (ω and w = 1 + ω) for ``steps`` steps on the
    uniform grid, or on the DDIM grid of ``model``'s scheduler (then with its model timesteps). ``classes``
    picks class ids or prompt indices of the prompt file ``prompts`` (default: all). Returns the table."""
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    grid, timesteps, schedule = step_grid(steps), None, None
    if model:
        from learnguide.integrations.diffusers_models import (
            load_diffusers_model,
            model_timestep,
            schedule_from_scheduler,
            scheduler_grid,
        )

        _, scheduler = load_diffusers_model(model)
        grid = scheduler_grid(scheduler, steps)  # for non-DDIM schedulers: DDIM's grid from their config
        total, schedule = scheduler.config.num_train_timesteps, schedule_from_scheduler(scheduler)
        timesteps = model_timestep(schedule, grid[:-1], total).tolist()
    omega = OmegaNet.load(omega_dir, schedule)
    embeddings = load_prompt_images(prompts).prompt_embeds if prompts else None
    cond, names = pick_conditions(classes, omega.hparams["num_classes"], embeddings)
    omega.check_condition(cond)
    table = {"omega_net": str(omega_dir), "steps": steps, "timesteps": timesteps}
    table.update(export_schedule(omega, cond, grid, names))
    atomic_write_text(Path(out), json.dumps(table, indent=1, allow_nan=False))  # ω is checked finite
    return table
