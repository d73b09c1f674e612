"""Comparing guidance schedules: the baseline grids, tuning on a fixed sample set, learning ω (bank or
online), and evaluating winners over fresh seed sets. Shared by ``learnguide demo`` and ``experiment``.

A *scorer* ``score(guidance, sample_set) -> {metric: value}`` samples with ``guidance`` on the seeds of one
sample set and measures the result; what a sample set holds (labels, seeds, references) is the scorer's
business.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from learnguide.core.denoisers import Denoiser
from learnguide.core.discrepancy import FeatureMap
from learnguide.core.guidance import (
    ConstantGuidance,
    GuidanceSchedule,
    IncreasingGuidance,
    IntervalGuidance,
    OmegaNet,
)
from learnguide.core.items import DataSampler
from learnguide.core.learn import learn_omega

Scorer = Callable[[GuidanceSchedule, Any], dict[str, float]]


def baseline_families(
    constant_grid: tuple[float, ...],
    interval_omegas: tuple[float, ...],
    intervals: tuple[tuple[float, float], ...],
    increasing_omegas: tuple[float, ...],
    increasing_shapes: tuple[str, ...],
) -> dict[str, list[GuidanceSchedule]]:
    """The schedules each baseline family sweeps: ``{"constant", "interval", "increasing"}``."""
    return {
        "constant": [ConstantGuidance(w) for w in constant_grid],
        "interval": [IntervalGuidance(w, lo, hi) for w in interval_omegas for lo, hi in intervals],
        "increasing": [
            IncreasingGuidance(w, shape) for w in increasing_omegas for shape in increasing_shapes
        ],
    }


def tune(
    score: Scorer, schedules: list[GuidanceSchedule], tuning_set: Any, bar: tqdm | None = None
) -> list[dict]:
    """Score every schedule on the tuning set: ``[{"settings": config, **metrics}]`` in input order."""
    sweep = []
    for guidance in schedules:
        sweep.append({"settings": guidance.config(), **score(guidance, tuning_set)})
        if bar is not None:
            bar.update()
    return sweep


def best_index(sweep: list[dict], metric: str) -> int:
    """Index of the sweep entry with the lowest ``metric``."""
    return min(range(len(sweep)), key=lambda i: sweep[i][metric])


def evaluate_over_sets(score: Scorer, guidance: GuidanceSchedule, sample_sets: list[Any]) -> dict:
    """Every metric's mean, standard deviation and per-set values over fresh sample sets."""
    scores = [score(guidance, s) for s in sample_sets]
    out: dict = {}
    for key in scores[0]:
        values = torch.tensor([s[key] for s in scores], dtype=torch.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std()) if len(scores) > 1 else 0.0
        out[f"{key}_per_seed"] = values.tolist()
    return out


def tune_families(
    score: Scorer,
    families: dict[str, list[GuidanceSchedule]],
    tuning_set: Any,
    metric: str,
    desc: str = "tune",
    progress: bool = True,
) -> tuple[dict[str, list[dict]], dict[str, GuidanceSchedule]]:
    """Score every schedule of every baseline family on the tuning set; returns the sweeps ``{family:
    [{"settings", **metrics}]}`` and the winners: ``"unguided"`` (ω = 0) and each family's lowest ``metric``.
    """
    total = sum(map(len, families.values()))
    with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
        sweeps = {family: tune(score, schedules, tuning_set, bar) for family, schedules in families.items()}
    winners: dict[str, GuidanceSchedule] = {"unguided": ConstantGuidance(0.0)}
    winners.update({family: families[family][best_index(sweep, metric)] for family, sweep in sweeps.items()})
    return sweeps, winners


def learn_as_configured(
    config: Any,
    denoiser: Denoiser,
    sample_data: DataSampler,
    num_classes: int,
    directory: str | Path,
    progress: bool = True,
    features: FeatureMap | None = None,
) -> tuple[OmegaNet, dict]:
    """:func:`~learnguide.core.learn.learn_omega` with the ``learn``, ``bank``, ``fit``, ``online``,
    ``line_search`` (experiments only), ``omega_hparams`` and ``seed`` of a demo or experiment config (in
    the feature map ``features`` when given; an ``output`` among ``omega_hparams`` is the ω-network's output
    map)."""
    hparams = dict(config.omega_hparams)
    return learn_omega(
        denoiser,
        denoiser.schedule,
        sample_data,
        num_classes,
        directory,
        method=config.learn,
        bank=config.bank,
        fit=config.fit,
        online=config.online,
        line_search=getattr(config, "line_search", None),  # experiments only
        seed=config.seed,
        progress=progress,
        features=features,
        output=hparams.pop("output", "relu"),
        omega_hparams=hparams,
    )
