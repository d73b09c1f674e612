"""The denoiser protocol x̂(x_t, t, c) ≈ E[x_0 | x_t, c] and adapters into it (docs/design.md §1).

A *denoiser* is any object with

- ``__call__(x_t [B, ...], t [B], cond) -> x̂_0 [B, ...]``: the clean-data prediction, and
- ``null_cond(cond) -> cond_null``: the ∅ condition for a batch of conditions (same batch size),

where ``cond`` is a tensor of class ids ``[B]`` (long) or of condition embeddings ``[B, E]``.
Networks that predict ε, v or a flow velocity are wrapped once, by :class:`PredictionAdapter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from learnguide.core.schedules import Schedule, expand_as

PREDICTIONS = ("x0", "eps", "v", "flow")


@runtime_checkable
class Denoiser(Protocol):
    """Clean-data predictor with a null condition; see the module docstring."""

    def __call__(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x̂_0 ``[B, ...]`` for noisy inputs ``x_t [B, ...]``, times ``t [B]`` and conditions ``cond``."""
        ...

    def null_cond(self, cond: Tensor) -> Tensor:
        """The null condition ∅ for each item of ``cond`` (same shape as ``cond``)."""
        ...


def null_class_ids(cond: Tensor, null_id: int) -> Tensor:
    """A batch of the null class id ``null_id`` shaped like ``cond [B]``."""
    return torch.full_like(cond, null_id)


def to_x0(output: Tensor, x_t: Tensor, t: Tensor, schedule: Schedule, prediction: str) -> Tensor:
    """Convert a network output to the clean-data prediction x̂_0.

    Args:
        output: network output ``[B, ...]``.
        x_t: the noisy input ``[B, ...]``.
        t: times ``[B]``.
        schedule: the noise schedule the network was trained with.
        prediction: what the network predicts:
            ``"x0"`` (x̂_0 itself), ``"eps"`` (ε̂, x̂_0 = (x_t − σ_t ε̂)/α_t),
            ``"v"`` (v̂ = α_t ε − σ_t x_0, x̂_0 = (α_t x_t − σ_t v̂)/(α_t² + σ_t²)), or
            ``"flow"`` (velocity û = dx_t/dt = α'_t x_0 + σ'_t ε,
            x̂_0 = (σ'_t x_t − σ_t û)/(σ'_t α_t − σ_t α'_t)).
    """
    a, s = expand_as(schedule.alpha(t), x_t), expand_as(schedule.sigma(t), x_t)
    if prediction == "x0":
        return output
    if prediction == "eps":
        return (x_t - s * output) / a.clamp_min(1e-8)
    if prediction == "v":
        return (a * x_t - s * output) / (a**2 + s**2)
    if prediction == "flow":
        da, ds = expand_as(schedule.d_alpha(t), x_t), expand_as(schedule.d_sigma(t), x_t)
        return (ds * x_t - s * output) / (ds * a - s * da)
    raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")


def prediction_target(x0: Tensor, noise: Tensor, t: Tensor, schedule: Schedule, prediction: str) -> Tensor:
    """The regression target of a network predicting ``prediction`` for x_t = α_t x_0 + σ_t ε (inverse of
    :func:`to_x0`): x_0, ε, v = α_t ε − σ_t x_0, or the velocity α'_t x_0 + σ'_t ε. Shapes ``[B, ...]``."""
    if prediction == "x0":
        return x0
    if prediction == "eps":
        return noise
    a, s = expand_as(schedule.alpha(t), x0), expand_as(schedule.sigma(t), x0)
    if prediction == "v":
        return a * noise - s * x0
    if prediction == "flow":
        return expand_as(schedule.d_alpha(t), x0) * x0 + expand_as(schedule.d_sigma(t), x0) * noise
    raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")


class PredictionAdapter(nn.Module):
    """Wrap a network ``net(x_t [B, ...], t [B], cond) -> output`` into the x̂ protocol.

    Args:
        net: the network; it receives the continuous time t ∈ [0, 1] and the condition unchanged.
        schedule: the schedule it was trained with.
        prediction: one of ``"x0"``, ``"eps"``, ``"v"``, ``"flow"`` (see :func:`to_x0`).
        null_id: the class id that means ∅ (class-conditional networks), or
        null_embedding: the ∅ embedding ``[E]`` (embedding-conditional networks). Give exactly one.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: Schedule,
        prediction: str = "x0",
        null_id: int | None = None,
        null_embedding: Tensor | None = None,
    ) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")
        if (null_id is None) == (null_embedding is None):
            raise ValueError("give exactly one of null_id (class ids) or null_embedding (embeddings)")
        self.net, self.schedule, self.prediction, self.null_id = net, schedule, prediction, null_id
        self.register_buffer("null_embedding", null_embedding, persistent=False)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x̂_0 ``[B, ...]`` for x_t ``[B, ...]``, t ``[B]`` and conditions ``[B]`` or ``[B, E]``."""
        return to_x0(self.net(x_t, t, cond), x_t, t, self.schedule, self.prediction)

    def null_cond(self, cond: Tensor) -> Tensor:
        """The ∅ condition for a batch ``cond``."""
        if self.null_id is not None:
            return null_class_ids(cond, self.null_id)
        return self.null_embedding.expand(cond.shape[0], -1)


class ExactMixtureDenoiser(nn.Module):
    """The exact x̂(x_t, t, c) = E[x_0 | x_t, c] of a :class:`~learnguide.data.toy.GaussianMixture`.

    Class id ``mixture.num_classes`` is ∅ (the unconditional mixture). For component k,
    x_t | k ~ N(α_t μ_k, (α_t² s_k² + σ_t²) I) and
    E[x_0 | x_t, k] = μ_k + α_t s_k² (x_t − α_t μ_k) / (α_t² s_k² + σ_t²);
    x̂ is their average under the posterior component responsibilities.
    """

    def __init__(self, mixture, schedule: Schedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.null_id = mixture.num_classes
        weights = torch.cat([mixture.weights, mixture.unconditional_weights()[None]], dim=0)
        self.register_buffer("means", mixture.means.clone(), persistent=False)
        self.register_buffer("variances", mixture.stds.clone() ** 2, persistent=False)
        self.register_buffer("log_weights", torch.log(weights), persistent=False)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x̂_0 ``[B, d]`` for x_t ``[B, d]``, t ``[B]`` and class ids ``[B]`` (``null_id`` = ∅)."""
        dtype = x_t.dtype
        a = self.schedule.alpha(t).to(dtype)[:, None]  # [B, 1]
        s2 = self.schedule.sigma(t).to(dtype)[:, None] ** 2
        means, var0 = self.means.to(dtype), self.variances.to(dtype)  # [K, d], [K]
        var_t = a**2 * var0[None] + s2  # [B, K]
        diff = x_t[:, None, :] - a[:, :, None] * means[None]  # [B, K, d]
        log_resp = (
            self.log_weights.to(dtype)[cond]
            - 0.5 * x_t.shape[1] * torch.log(var_t)
            - 0.5 * diff.pow(2).sum(-1) / var_t
        )
        resp = torch.softmax(log_resp, dim=1)  # [B, K]
        post_means = means[None] + (a * var0[None] / var_t)[:, :, None] * diff  # [B, K, d]
        return torch.einsum("bk,bkd->bd", resp, post_means)

    def null_cond(self, cond: Tensor) -> Tensor:
        """The null class id for every item of ``cond [B]``."""
        return null_class_ids(cond, self.null_id)


def conditional_and_null(denoiser: Denoiser, x_t: Tensor, t: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
    """x̂(x_t, t, c) and x̂(x_t, t, ∅), each ``[B, ...]``, from one forward call of 2B items (``x_t [B, ...]``,
    ``t [B]``, ``cond [B]`` or ``[B, E]``): the batched guided forward of sampling and training."""
    both = denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, denoiser.null_cond(cond)]))
    return both.chunk(2)


class WeakenedDenoiser(nn.Module):
    """A conditional branch that under-commits: x̂'(x, t, c) = (1 − κ) x̂(x, t, c) + κ x̂(x, t, ∅) for c ≠ ∅.

    Guidance with ω* = κ / (1 − κ) turns it back into ``inner`` exactly (docs/design.md §9), which makes it a
    test and diagnostic case with a known right answer. ``kappa`` is a number in [0, 1), or a function
    ``(class ids [B], t [B]) -> κ [B]`` with values in [0, 1), for an answer that differs by class and time.
    ``inner`` must use class ids with a ``null_id``.
    """

    def __init__(
        self,
        inner: ExactMixtureDenoiser | PredictionAdapter,
        kappa: float | Callable[[Tensor, Tensor], Tensor],
    ) -> None:
        super().__init__()
        if not callable(kappa) and not 0.0 <= kappa < 1.0:
            raise ValueError(f"kappa must be in [0, 1), got {kappa}")
        self.inner, self.kappa, self.null_id = inner, kappa, inner.null_id

    def omega_star(self, cond: Tensor, t: Tensor) -> Tensor:
        """The exact correcting weight ω* = κ / (1 − κ), ``[B]`` float64, for class ids and times ``[B]``."""
        kappa = self._kappa(cond, t)
        return kappa / (1.0 - kappa)

    def _kappa(self, cond: Tensor, t: Tensor) -> Tensor:
        if callable(self.kappa):
            return self.kappa(cond, t).double()
        return torch.full(cond.shape[:1], self.kappa, dtype=torch.float64, device=cond.device)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x̂' ``[B, ...]`` for x_t ``[B, ...]``, t ``[B]`` and class ids ``[B]``."""
        c, u = self.inner(x_t, t, cond), self.inner(x_t, t, self.null_cond(cond))
        shape = (-1,) + (1,) * (c.dim() - 1)
        kappa = self._kappa(cond, t).to(c.dtype).reshape(shape)
        is_null = (cond == self.null_id).reshape(shape)
        return torch.where(is_null, c, (1.0 - kappa) * c + kappa * u)

    def null_cond(self, cond: Tensor) -> Tensor:
        """The null class id for every item of ``cond [B]``."""
        return null_class_ids(cond, self.null_id)


class CountingDenoiser(nn.Module):
    """Wraps a denoiser and counts the items it evaluates (``evals``) and its forward calls (``calls``)."""

    def __init__(self, inner: PredictionAdapter) -> None:
        super().__init__()
        self.inner, self.schedule = inner, inner.schedule
        self.evals = self.calls = 0

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x̂_0 of the wrapped denoiser ``[B, ...]``."""
        self.evals += x_t.shape[0]
        self.calls += 1
        return self.inner(x_t, t, cond)

    def null_cond(self, cond: Tensor) -> Tensor:
        """The wrapped denoiser's ∅ condition."""
        return self.inner.null_cond(cond)
