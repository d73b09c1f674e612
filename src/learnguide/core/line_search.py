"""Learning one guidance weight ω for every condition and step by a line search (docs/design.md §3.5).

The gradient fits of :mod:`~learnguide.core.online` estimate the self-consistency loss afresh at every step,
and with the paper's β = 1.75 in a classifier's features its gradient is too noisy for a few dozen steps to
find the loss's minimum on image models. When the ω asked for is one constant, the minimum can be found
where the loss is precise instead: sample the guided sampler's final samples under each ω of a small grid
from the *same* noise and the same conditions (common random numbers, so the differences between grid
points are not swamped by sampling noise), measure each set against the same data items by the pooled energy
distance in a frozen feature map φ(x, 0),

    L(ω) = mean_{j,k} ‖φ(x_j(ω)) − φ(y_k)‖^β − (λ/2) Σ_{j≠k} w_jk ‖φ(x_j(ω)) − φ(x_k(ω))‖^β,

(class-pair weights w_jk of :func:`~learnguide.core.discrepancy.class_pair_weights` for class ids, a plain
mean over distinct pairs otherwise), and return the vertex of the parabola through the lowest grid point and
its two neighbours. Costs ``samples · steps`` denoiser evaluations per ω (twice that where ω ≠ 0).

With a ``shape`` the same samples are also drawn under the increasing schedule ω(t) = ω_max e(t) (e: the
shape's profile, 0 at t = 1 and 1 at t = 0; guidance late in sampling) for each ω_max of ``scales``; where
the lowest loss of that family is below the constants' lowest, its vertex over ``scales`` is returned
instead, with the family's ω_max = 0 (ω ≡ 0: the constant grid's 0, the same samples) as its first grid
point (docs/design.md §3.5).

With ``statistic="energy+covariance"`` the loss of each set is L(ω) plus the Fréchet distance's covariance
term C = tr Σ + tr Σ_data − 2 tr (Σ Σ_data)^{1/2} of the same features (Σ: the guided set's covariance,
Σ_data: the data items'): L alone tends to the distance between the means as β → 2, and C charges a set
whose spread differs from the data's, as a Fréchet distance does (docs/design.md §3.5).

With ``statistic="class-energy"`` the loss is instead the mean over classes c of the same L between class
c's samples and class c's data items (λ-weighted repulsion over class c's distinct pairs): the distance of
each conditional, which the pooled L cannot see where guidance leaves the class mixture unchanged (a
denoiser whose conditional branch is 0.6 p(x | c) + 0.4 p(x) has the right mixture at ω = 0; the toy demo's
``under_trained`` regime). Needs class ids and at least 2 samples of every class.

Near its minimum the statistic is flat, so another seed (other noise, other data items) moves the answer.
The search estimates by how much without sampling again: it repeats the choice on ``spread_draws`` random
halves of its own samples and data items (the same half of the samples for every schedule; each class halved
alike), and reports the standard deviation of those answers, the share of halves that choose the same
family and the share that guide at all. A half drawn without replacement varies about the whole set as much
as a fresh whole set varies about the truth (a mean's variance 1/(n/2) − 1/n = 1/n; docs/design.md §3.5), so
where ``DOUBT`` or more of the halves disagree with the answer on whether to guide at all, another seed may
well do so too, and the search warns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor
from tqdm.auto import tqdm

from learnguide.core.denoisers import Denoiser
from learnguide.core.discrepancy import FeatureMap, class_pair_weights, pixel_features
from learnguide.core.fit_checks import report
from learnguide.core.guidance import (
    ENVELOPES,
    ConstantGuidance,
    GuidanceSchedule,
    IncreasingGuidance,
    OmegaNet,
)
from learnguide.core.items import DataSampler, holds_class_mix
from learnguide.core.metrics import frechet_covariance_term
from learnguide.core.objectives import check_energy_params
from learnguide.core.sampling import sample
from learnguide.core.schedules import Schedule, step_grid

STATISTICS = ("energy", "energy+covariance", "class-energy")  # what a search minimises (module docstring)
EXACT = "donot_use_mm_for_euclid_dist"  # torch.cdist: differences, not the |x|² − 2x·y + |y|² expansion
DOUBT = 0.2  # the share of half draws disagreeing on whether to guide at all from which a search warns


@dataclass(frozen=True)
class LineSearchConfig:
    """Settings of :func:`line_search_omega`.

    Attributes:
        omegas: the grid of constant ω, increasing, at least 3 values (default 0 … 1 by 0.25).
        samples: guided samples per grid value; their conditions are the first ``samples`` data items'
            (draw balanced classes to give every class the same share).
        reference: data items per sample on the true side (≥ 1): the batch's own ``samples`` and
            ``reference − 1`` times as many drawn after them. They cost features, not denoiser evaluations.
        shape: None (constants only), or an increasing family searched beside them: ``"increasing-cosine"``
            or ``"increasing-linear"`` (:func:`~learnguide.core.guidance.increasing_profile`).
        scales: with ``shape``: the increasing grid of ω_max, 3 or more values > 0 (default 0.5, 1, 2, 3, 4).
        steps: the sampler's step count N (sample with the same N).
        churn: the sampler's churn ε (0: DDIM, as ``learnguide sample`` uses).
        t_max: the sampler's start time 1 − ζ.
        beta: the energy distance's exponent β ∈ (0, 2].
        lam: repulsion weight λ ∈ [0, 1] (1: the energy distance itself).
        statistic: what is minimised: ``"energy"`` (L), ``"energy+covariance"`` (L + C) or
            ``"class-energy"`` (L per class, averaged; class ids only; module docstring).
        batch_size: samples per sampler call.
        seed: seeds the data draw and the noise shared by every grid value.
        spread_draws: random halves the answer's spread is estimated from (0: not estimated; module
            docstring). They cost distances between features, not denoiser evaluations.
    """

    omegas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    samples: int = 640
    reference: int = 4
    shape: str | None = None
    scales: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0)
    steps: int = 25
    churn: float = 0.0
    t_max: float = 0.99
    beta: float = 1.75
    lam: float = 1.0
    statistic: str = "energy"
    batch_size: int = 256
    seed: int = 0
    spread_draws: int = 32

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        _check_grid(self.omegas, "--omegas")
        if self.shape is not None:
            if self.shape not in ENVELOPES[1:]:
                raise ValueError(f"--shape must be one of {list(ENVELOPES[1:])}, got {self.shape!r}")
            _check_grid(self.scales, "--scales", positive=True)
        for name, flag in {
            "reference": "--reference",
            "steps": "--grid-steps",
            "batch_size": "batch_size",
        }.items():
            if getattr(self, name) < 1:
                raise ValueError(f"{flag} must be >= 1, got {getattr(self, name)}")
        if self.spread_draws < 0:
            raise ValueError(f"spread_draws must be >= 0, got {self.spread_draws}")
        if self.samples < 2:
            raise ValueError(
                f"--samples must be >= 2 (the energy distance compares pairs), got {self.samples}"
            )
        if not 0.0 <= self.churn <= 1.0:
            raise ValueError(f"--churn must be in [0, 1], got {self.churn}")
        check_energy_params(self.beta, self.lam)
        if self.statistic not in STATISTICS:
            raise ValueError(f"--statistic must be one of {list(STATISTICS)}, got {self.statistic!r}")

    def denoiser_evals(self) -> int:
        """Denoiser evaluations of a search: ``samples · steps`` per ω, twice that where ω ≠ 0 (every scale
        of a ``shape``)."""
        scales = self.scales if self.shape is not None else ()
        return sum(self.samples * self.steps * (1 if w == 0 else 2) for w in (*self.omegas, *scales))

    def schedules(self) -> list[GuidanceSchedule]:
        """The schedules a search samples under: the constants of ``omegas``, then the ``shape``'s scales."""
        found: list[GuidanceSchedule] = [ConstantGuidance(w) for w in self.omegas]
        if self.shape is not None:
            profile = self.shape.removeprefix("increasing-")
            found += [IncreasingGuidance(w, profile) for w in self.scales]
        return found


def _check_grid(values: tuple[float, ...], flag: str, positive: bool = False) -> None:
    """Raise ``ValueError`` naming ``flag`` unless ``values`` are 3 or more finite numbers (> 0 with
    ``positive``), strictly increasing."""
    if len(values) < 3 or not all(math.isfinite(w) and (w > 0 or not positive) for w in values):
        raise ValueError(
            f"{flag} needs at least 3 finite values{' > 0' if positive else ''}, got {list(values)}"
        )
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{flag} must be strictly increasing, got {list(values)}")


@dataclass
class LineSearchRecord:
    """What a line search measured: the loss L(ω) at each grid value (and L(ω_max) at each scale of a
    shape), the chosen family (``"constant"`` or the shape) and its ω (ω_max for a shape), the answer's
    estimated spread over seeds (``omega_spread``: a standard deviation; ``family_share``: the share of half
    draws choosing the same family; ``guided_share``: the share choosing any guidance, a constant ω > 0 or a
    shape; None when not estimated), cost and warnings."""

    omegas: list[float]
    losses: list[float]
    omega: float
    denoiser_evals: int
    feature_evals: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    shape: str = "constant"
    scales: list[float] = field(default_factory=list)
    shape_losses: list[float] = field(default_factory=list)
    omega_spread: float | None = None
    family_share: float | None = None
    guided_share: float | None = None

    def found(self) -> dict:
        """The measured curves and the choice, without cost or warnings (JSON-serialisable)."""
        cost = ("denoiser_evals", "feature_evals", "seconds", "warnings")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in cost}


def parabola_minimum(
    omegas: list[float], losses: list[float], flag: str = "--omegas"
) -> tuple[float, str | None]:
    """The vertex of the parabola through the first lowest of ``losses`` at ``omegas`` and its two
    neighbours (it lies between them), and None; at an end of the grid, that end and a warning that the
    minimum may lie beyond it, naming the grid's ``flag`` (none at ω = 0 as the lowest end: no guidance is
    the natural bound)."""
    i = min(range(len(losses)), key=losses.__getitem__)
    if i in (0, len(losses) - 1):
        if i == 0 and omegas[0] == 0.0:
            return 0.0, None
        side = "lowest" if i == 0 else "highest"
        return omegas[i], (
            f"the loss is lowest at the grid's {side} ω = {omegas[i]:g}: the minimum may lie beyond it; "
            f"extend {flag}"
        )
    (a, b, c), (la, lb, lc) = omegas[i - 1 : i + 2], losses[i - 1 : i + 2]
    slope_left, slope_right = (lb - la) / (b - a), (lc - lb) / (c - b)  # < 0 and >= 0: i is the first min
    curvature = (slope_right - slope_left) / (c - a)  # the parabola's leading coefficient, > 0
    return 0.5 * (a + b) - slope_left / (2 * curvature), None


@torch.no_grad()
def line_search_omega(
    denoiser: Denoiser,
    schedule: Schedule,
    sample_data: DataSampler,
    config: LineSearchConfig,
    features: FeatureMap | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> LineSearchRecord:
    """The constant ω (or, with ``config.shape``, the increasing schedule) whose guided samples lie closest
    to the data (module docstring).

    Args:
        denoiser, schedule: the frozen x̂ denoiser and its noise schedule.
        sample_data: ``(n, generator) -> (x_0 [n, ...], conditions [n] or [n, ...])``: the data the samples
            are compared with; the first ``config.samples`` items' conditions are sampled.
        config: the grid, sample counts, sampler and distance settings.
        features: a frozen feature map φ(x [B, ...], s [B]) -> [B, F] to compare in, at s = 0 (a clean
            classifier's features); None: pixels.
        progress: show a progress bar over the sampler's steps.
        device: where the denoiser runs.

    Returns:
        the record, with the chosen family in ``shape``, its ω (ω_max for a shape) in ``omega``, L(ω) over
        the grid in ``losses`` and over the shape's scales in ``shape_losses``; a warning (also emitted as a
        :class:`~learnguide.core.fit_checks.FitWarning`) when the chosen family's lowest loss is at an end
        of its grid other than ω = 0 (:func:`parabola_minimum`).
    """
    began = time.perf_counter()
    schedules = config.schedules()
    guided, true, labels = guidance_features(
        denoiser, schedule, sample_data, schedules, config, features, progress, device
    )
    found = statistic_losses(guided, true, labels, config)
    losses, shape_losses = found[: len(config.omegas)], found[len(config.omegas) :]
    chosen, omega, warning = choose_schedule(config, losses, shape_losses)
    spread, share, guided_share = answer_spread(guided, true, labels, config, chosen)
    doubt = guidance_doubt(guides(chosen, omega), guided_share, config.spread_draws)
    return LineSearchRecord(
        omegas=list(config.omegas),
        losses=losses,
        omega=omega,
        denoiser_evals=config.denoiser_evals(),
        feature_evals=config.samples * (len(schedules) + config.reference),
        seconds=time.perf_counter() - began,
        warnings=report([warning, doubt]),
        shape=chosen,
        scales=list(config.scales) if config.shape is not None else [],
        shape_losses=shape_losses,
        omega_spread=spread,
        family_share=share,
        guided_share=guided_share,
    )


def statistic_losses(
    guided: Sequence[Tensor], true: Tensor, labels: Tensor | None, config: LineSearchConfig
) -> list[float]:
    """The statistic (``config.statistic``; module docstring) of each schedule's features ``guided [n, F]``
    against the data items' ``true [r·n, F]`` (class ids ``labels [r·n]``, the samples' first, or None): the
    output of :func:`guidance_features`."""
    return [search_statistic(g, true, config, _first(labels, len(g)), labels) for g in guided]


def _first(labels: Tensor | None, n: int) -> Tensor | None:
    """The samples' class ids (the first ``n`` of the data items' ``labels``), or None."""
    return None if labels is None else labels[:n]


def answer_spread(
    guided: Sequence[Tensor],
    true: Tensor,
    labels: Tensor | None,
    config: LineSearchConfig,
    family: str,
) -> tuple[float | None, float | None, float | None]:
    """The answer's spread over seeds, estimated from ``config.spread_draws`` random halves (module
    docstring): ``(std of the halves' ω among those choosing ``family``; share of halves choosing
    ``family``; share of halves choosing any guidance)``; ``(None, None, None)`` with no draws. ``guided``:
    each schedule's features ``[n, F]`` in :meth:`LineSearchConfig.schedules`'s order; ``true [m, F]``: the
    data items' with class ids ``labels [m]`` (the first n are the samples'; None: halves drawn without regard
    to class)."""
    if config.spread_draws == 0:
        return None, None, None
    n, k = guided[0].shape[0], len(config.omegas)
    gen = torch.Generator().manual_seed(config.seed)
    answers = []
    for _ in range(config.spread_draws):
        rows, items = _half(_first(labels, n), n, gen), _half(labels, true.shape[0], gen)
        own, theirs = (None, None) if labels is None else (labels[rows], labels[items])  # rows < n
        losses = [search_statistic(g[rows], true[items], config, own, theirs) for g in guided]
        answers.append(choose_schedule(config, losses[:k], losses[k:])[:2])
    same = torch.tensor([w for chosen, w in answers if chosen == family], dtype=torch.float64)
    std = float(same.std()) if len(same) > 1 else 0.0
    guiding = sum(guides(chosen, w) for chosen, w in answers)
    return std, len(same) / len(answers), guiding / len(answers)


def guides(family: str, omega: float) -> bool:
    """Whether a search's answer guides at all: a shape, or a constant ω ≠ 0."""
    return family != "constant" or omega != 0.0


def guidance_doubt(answer_guides: bool, guided_share: float | None, draws: int) -> str | None:
    """A warning when at least ``DOUBT`` of the ``draws`` half draws disagree with the answer (which guides
    at all, or not: ``answer_guides``) on whether to guide at all (``guided_share``: the share of halves that
    guide); else None."""
    if guided_share is None:
        return None
    against = 1.0 - guided_share if answer_guides else guided_share
    if against < DOUBT:
        return None
    choice, other_seed = ("no guidance", "not guide at all") if answer_guides else ("guidance", "guide")
    return (
        f"{round(against * draws)} of {draws} half-sample draws choose {choice}: another seed may "
        f"{other_seed}; more --samples make the answer firmer (its spread falls as 1/√samples)"
    )


def _half(labels: Tensor | None, n: int, gen: torch.Generator) -> Tensor:
    """Indices of a random half of ``n`` rows, drawn without replacement: ``[n // 2]``, or with ``labels [n]``
    each class halved alike (at least 2 of a class kept where it has them, as the class statistics need)."""
    if labels is None:
        return torch.randperm(n, generator=gen)[: n // 2]
    kept = []
    for c in labels.unique():
        own = (labels == c).nonzero()[:, 0]
        keep = max(min(2, len(own)), len(own) // 2)
        kept.append(own[torch.randperm(len(own), generator=gen)[:keep]])
    return torch.cat(kept)


def choose_schedule(
    config: LineSearchConfig, losses: Sequence[float], shape_losses: Sequence[float] = ()
) -> tuple[str, float, str | None]:
    """A search's answer from its losses over ``config.omegas`` and (with a shape) ``config.scales``: the
    family with the lower lowest loss (``"constant"`` on a tie, or ``config.shape``), the vertex over its
    grid and the warning of :func:`parabola_minimum`. The shape's grid starts at ω_max = 0 where the
    constants hold ω = 0: that schedule is ω ≡ 0, whose samples (the same noise) and loss the constant 0
    already has, so a shape lowest at its first scale gets a vertex between 0 and its second scale."""
    if not shape_losses or min(losses) <= min(shape_losses):
        return "constant", *parabola_minimum(list(config.omegas), list(losses))
    scales, found = list(config.scales), list(shape_losses)
    if 0.0 in config.omegas:
        scales, found = [0.0, *scales], [losses[config.omegas.index(0.0)], *found]
    return str(config.shape), *parabola_minimum(scales, found, "--scales")


@torch.no_grad()
def guidance_features(
    denoiser: Denoiser,
    schedule: Schedule,
    sample_data: DataSampler,
    guidances: Sequence[GuidanceSchedule],
    config: LineSearchConfig,
    features: FeatureMap | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[list[Tensor], Tensor, Tensor | None]:
    """The features a search measures, for each schedule of ``guidances`` (constants, intervals, learned
    ω-networks, …), all drawn from the same noise and conditions, with ``config``'s sample counts and sampler
    (its ``omegas`` are not used): ``(guided, true, labels)``, the features ``[n, F]`` of each schedule's
    final samples, the data items' ``[r·n, F]`` and their class ids ``[r·n]`` (None for embedding
    conditions; the samples' are the first n). :func:`statistic_losses` turns them into each schedule's
    statistic. Arguments otherwise as for :func:`line_search_omega`."""
    phi = features or pixel_features
    x0, cond = common_draw(sample_data, config)
    n = config.samples
    labels = None if cond.dtype.is_floating_point else cond
    if config.statistic == "class-energy" and labels is None:
        raise ValueError("--statistic class-energy compares each class with its own data: it needs class ids")
    true = _features(phi, x0, config.batch_size)
    drawn = final_samples(
        denoiser, schedule, guidances, cond[:n], tuple(x0.shape[1:]), config, progress, device
    )
    return [_features(phi, g, config.batch_size) for g in drawn], true, labels


def common_draw(sample_data: DataSampler, config: LineSearchConfig) -> tuple[Tensor, Tensor]:
    """The data items ``x_0 [r·n, ...]`` and their conditions ``[r·n]`` or ``[r·n, ...]`` a search compares
    with (seeded by ``config.seed``; n = ``config.samples``, r = ``config.reference``): the first n
    conditions are the samples'. Raises ``ValueError`` when the further items do not hold their class mix."""
    config.validate()
    n = config.samples
    x0, cond = sample_data(n * config.reference, torch.Generator().manual_seed(config.seed))
    if not holds_class_mix(cond[:n], cond[n:], config.reference - 1):
        raise ValueError(
            "--reference R > 1 needs the samples' class mix in the further data items: draw balanced classes "
            "(--balanced-classes) with --samples a multiple of the number of classes"
        )
    return x0, cond


def final_samples(
    denoiser: Denoiser,
    schedule: Schedule,
    guidances: Sequence[GuidanceSchedule],
    cond: Tensor,
    shape: tuple[int, ...],
    config: LineSearchConfig,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Iterator[Tensor]:
    """For each schedule of ``guidances`` in turn, the sampler's final samples ``[n, *shape]`` (CPU) for the
    conditions ``cond [n]`` or ``[n, ...]``, all from the same noise (common random numbers: seeds
    ``config.seed · n + j``), with ``config``'s steps, churn, start time and batch size."""
    n = len(cond)
    seeds = torch.arange(n) + config.seed * n
    batches = list(zip(cond.split(config.batch_size), seeds.split(config.batch_size), strict=True))
    grid = step_grid(config.steps, config.t_max)
    bar = tqdm(total=config.steps * len(batches) * len(guidances), desc="line search", disable=not progress)
    for guidance in guidances:
        yield torch.cat([
            sample(
                denoiser, schedule, guidance, c.to(device), shape, churn=config.churn, seeds=s, grid=grid,
                bar=bar,
            ).cpu()
            for c, s in batches
        ])  # fmt: skip
    bar.close()


def pooled_energy(
    guided: Tensor, true: Tensor, beta: float, lam: float, labels: Tensor | None = None
) -> float:
    """L(ω) of the module docstring for features ``guided [n, F]`` against ``true [m, F]``: the ω-dependent
    part of the energy distance, the guided set's pairs weighted by its class ids ``labels [n]``
    (:func:`~learnguide.core.discrepancy.class_pair_weights`) or, without them, equally. Equal to
    :func:`~learnguide.core.discrepancy.kernel_loss` with the energy kernel, in O(n·m) memory."""
    n = guided.shape[0]
    attraction = torch.cdist(guided, true, compute_mode=EXACT).pow(beta).mean()
    if labels is not None:
        weights = class_pair_weights(labels[None])[0].to(guided.dtype)
    else:
        weights = (1.0 - torch.eye(n, dtype=guided.dtype)) / (n * (n - 1))
    repulsion = (weights * torch.cdist(guided, guided, compute_mode=EXACT).pow(beta)).sum()
    return float(attraction - 0.5 * lam * repulsion)


def search_statistic(
    guided: Tensor,
    true: Tensor,
    config: LineSearchConfig,
    labels: Tensor | None = None,
    true_labels: Tensor | None = None,
) -> float:
    """What a search minimises for features ``guided [n, F]`` (class ids ``labels [n]``) against
    ``true [m, F]`` (class ids ``true_labels [m]``): L of :func:`pooled_energy` with ``config``'s β and λ,
    plus with ``config.statistic == "energy+covariance"`` the Fréchet covariance term C; with
    ``"class-energy"`` :func:`class_energy` instead (module docstring)."""
    if config.statistic == "class-energy":
        if labels is None or true_labels is None:
            raise ValueError("--statistic class-energy needs the class ids of the samples and the data items")
        return class_energy(guided, true, labels, true_labels, config.beta, config.lam)
    energy = pooled_energy(guided, true, config.beta, config.lam, labels)
    return energy + (
        frechet_covariance_term(guided, true) if config.statistic == "energy+covariance" else 0.0
    )


def class_energy(
    guided: Tensor, true: Tensor, labels: Tensor, true_labels: Tensor, beta: float, lam: float
) -> float:
    """The mean over the classes of ``labels [n]`` of :func:`pooled_energy` between that class's rows of
    ``guided [n, F]`` and its rows of ``true [m, F]`` (``true_labels [m]``). Raises ``ValueError`` naming a
    class with fewer than 2 samples or no data item."""
    losses = []
    for c in labels.unique().tolist():
        own, data = guided[labels == c], true[true_labels == c]
        if len(own) < 2 or len(data) < 1:
            raise ValueError(
                f"--statistic class-energy needs >= 2 samples and a data item of each class: class {c} has "
                f"{len(own)} and {len(data)}"
            )
        losses.append(pooled_energy(own, data, beta, lam))
    return sum(losses) / len(losses)


def spread_text(spread: float | None, share: float | None, family: str) -> str:
    """A search's estimated spread over seeds as text (``"± 0.05 over seeds (half-sample estimate)"``,
    with the share of halves choosing ``family`` when not all do); ``""`` when not estimated (None)."""
    if spread is None or share is None:
        return ""
    others = "" if share == 1.0 else f"; {share:.0%} of halves choose {family}"
    return f"± {spread:.2g} over seeds (half-sample estimate{others})"


def line_search_curve(
    omegas: Sequence[float],
    losses: Sequence[float],
    shape: str | None = None,
    scales: Sequence[float] = (),
    shape_losses: Sequence[float] = (),
) -> str:
    """A line search's loss over its constant grid (``"0: 3.1, 0.25: 3.0, …"``), then over the ``shape``'s
    ω_max grid when it searched one (``"; increasing-cosine by ω_max — 0.5: …"``)."""
    curve = ", ".join(f"{w:g}: {v:.6g}" for w, v in zip(omegas, losses, strict=True))
    if shape_losses:
        pairs = zip(scales, shape_losses, strict=True)
        curve += f"; {shape} by ω_max — " + ", ".join(f"{w:g}: {v:.6g}" for w, v in pairs)
    return curve


def schedule_network(
    schedule: Schedule, cond: Tensor, omega: float, num_classes: int | None = None, shape: str = "constant"
) -> OmegaNet:
    """An ω-network that gives ``omega`` for every condition and time (``shared``, identity output), or for a
    ``shape`` (``"increasing-cosine"`` …) ω = ``omega`` · e(t): a line search's answer
    (:attr:`LineSearchRecord.shape`, ``omega``) in the form ``learnguide sample`` and ``experiment`` load.
    ``cond``: example conditions, class ids ``[B]`` (``num_classes`` of them; default ``max + 1``) or
    embeddings ``[B, E]``."""
    return OmegaNet.for_conditions(
        schedule, cond, num_classes=num_classes, output="identity", init_omega=omega, shared=True,
        envelope="none" if shape == "constant" else shape,
    )  # fmt: skip


def _features(phi: FeatureMap, x: Tensor, batch_size: int) -> Tensor:
    """φ(x, 0) ``[B, F]`` float64 of final samples or clean data ``x [B, ...]``, in batches."""
    return torch.cat(
        [phi(chunk, chunk.new_zeros(len(chunk))).flatten(1).double() for chunk in x.split(batch_size)]
    )
