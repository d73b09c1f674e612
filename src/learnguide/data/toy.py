"""A conditional Gaussian mixture with exact sampling: the toy problem whose true distribution is known.

Each class c is a mixture of isotropic Gaussian components N(μ_k, s_k² I) with weights π_{c,k}; the
components are shared, so classes can overlap. The unconditional distribution is the class-prior mixture.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class GaussianMixture:
    """Class-conditional mixture of isotropic Gaussians.

    Attributes:
        means: component means ``[K, d]``.
        stds: component standard deviations ``[K]``.
        weights: per-class component weights ``[C, K]``; each row sums to 1 (zeros allowed).
        class_prior: class probabilities ``[C]``.
    """

    means: Tensor
    stds: Tensor
    weights: Tensor
    class_prior: Tensor

    def __post_init__(self) -> None:
        k, _ = self.means.shape
        if self.stds.shape != (k,) or self.weights.shape[1] != k:
            raise ValueError("means [K, d], stds [K] and weights [C, K] must agree on K")
        if not torch.allclose(self.weights.sum(1), torch.ones(self.num_classes, dtype=self.weights.dtype)):
            raise ValueError("each row of weights must sum to 1")
        if self.class_prior.shape != (self.num_classes,):
            raise ValueError("class_prior must have one entry per class")

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        """Data dimension d."""
        return self.means.shape[1]

    def unconditional_weights(self) -> Tensor:
        """Component weights of the unconditional mixture, ``[K]``."""
        return self.class_prior @ self.weights

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` class ids drawn from the class prior, ``[n]`` long."""
        return torch.multinomial(self.class_prior, n, replacement=True, generator=generator)

    def sample(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One exact sample ``[n, d]`` of p(x_0 | c) for each class id in ``labels [n]``."""
        comp = torch.multinomial(self.weights[labels], 1, generator=generator).squeeze(1)
        noise = torch.randn(labels.shape[0], self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[comp] + self.stds[comp, None] * noise

    def sample_batch(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs (x_0 ``[n, d]``, c ``[n]``) from the joint distribution."""
        labels = self.sample_labels(n, generator)
        return self.sample(labels, generator), labels

    def data_sampler(self, balanced: bool = False) -> Callable[[int, torch.Generator], tuple[Tensor, Tensor]]:
        """Trainer input: ``(n, generator) -> (x_0 [n, d] float32, class ids [n])`` from the joint
        distribution, or with ``balanced`` with the classes taking turns (item i has class i mod K), as the
        image datasets' balanced draw does."""

        def draw(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
            if balanced:
                labels = torch.arange(n) % self.num_classes
                return self.sample(labels, generator).float(), labels
            x0, labels = self.sample_batch(n, generator)
            return x0.float(), labels

        return draw

    def to_dict(self) -> dict:
        """JSON-serialisable description (inverse of :meth:`from_dict`)."""
        return {k: getattr(self, k).tolist() for k in ("means", "stds", "weights", "class_prior")}

    @classmethod
    def from_dict(cls, d: dict) -> GaussianMixture:
        """Rebuild a mixture from :meth:`to_dict` output."""
        return cls(
            **{
                k: torch.tensor(d[k], dtype=torch.float64)
                for k in ("means", "stds", "weights", "class_prior")
            }
        )

    def fingerprint(self) -> str:
        """A stable string that identifies this mixture (stored in checkpoints trained on it)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def ring_mixture(
    num_classes: int = 4,
    components_per_class: int = 3,
    radius: float = 2.0,
    std: float = 0.3,
) -> GaussianMixture:
    """The default 2-D toy: components on a ring, each class a run of adjacent components.

    There are ``num_classes * (components_per_class - 1)`` ring positions; class c takes the
    ``components_per_class`` consecutive positions starting at ``c * (components_per_class - 1)``, so each
    class shares its last component with the next class (overlap across classes).
    """
    if num_classes < 2 or components_per_class < 2:
        raise ValueError("the ring mixture needs at least 2 classes and 2 components per class")
    positions = num_classes * (components_per_class - 1)
    angles = torch.arange(positions, dtype=torch.float64) * (2 * math.pi / positions)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    weights = torch.zeros(num_classes, positions, dtype=torch.float64)
    for c in range(num_classes):
        idx = (c * (components_per_class - 1) + torch.arange(components_per_class)) % positions
        weights[c, idx] = 1.0 / components_per_class
    return GaussianMixture(
        means=means,
        stds=torch.full((positions,), std, dtype=torch.float64),
        weights=weights,
        class_prior=torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64),
    )


def separated_mixture(num_classes: int = 3, radius: float = 1.0) -> GaussianMixture:
    """A 2-D toy whose classes do not share components: class c is two Gaussians (std 0.1·radius) 0.5 rad
    apart at angle 2πc / C on a circle. Unlike :func:`ring_mixture`, the per-item self-consistency loss
    identifies ω here from t ≈ 0.4 up (docs/design.md §9)."""
    if num_classes < 2:
        raise ValueError("the separated mixture needs at least 2 classes")
    start = torch.arange(num_classes, dtype=torch.float64) * (2 * math.pi / num_classes)
    angles = torch.stack([start, start + 0.5], dim=1).flatten()
    weights = torch.zeros(num_classes, 2 * num_classes, dtype=torch.float64)
    for c in range(num_classes):
        weights[c, 2 * c : 2 * c + 2] = 0.5
    return GaussianMixture(
        means=radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1),
        stds=torch.full((2 * num_classes,), 0.1 * radius, dtype=torch.float64),
        weights=weights,
        class_prior=torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64),
    )


def class_time_weakening(cond: Tensor, t: Tensor) -> Tensor:
    """κ(c, t) ``[B]`` of the known-answer case (with :class:`~learnguide.core.denoisers.WeakenedDenoiser` on
    :func:`separated_mixture`): class 0 is not weakened (ω* = 0), class 1 is weakened late in sampling's
    order, near t = 0.85 (κ up to 0.7, ω* up to 2.33), class 2 mid-way, near t = 0.55 (κ up to 0.6, ω* up to
    1.5); other classes are not weakened."""
    t = t.double()
    late = 0.7 * torch.exp(-(((t - 0.85) / 0.15) ** 2))
    mid = 0.6 * torch.exp(-(((t - 0.55) / 0.15) ** 2))
    return torch.where(cond == 1, late, torch.where(cond == 2, mid, torch.zeros_like(t)))
