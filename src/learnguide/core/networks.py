"""Small network building blocks shared by the toy denoiser and the ω-network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FourierFeatures(nn.Module):
    """Fixed sinusoidal features of a scalar: ``[B] -> [B, 2 * num_frequencies]``.

    Frequencies are geometric between 1 and ``max_frequency``; the input is divided by ``scale`` first
    (use the typical range of the input, e.g. 20 for a clamped log-SNR).
    """

    def __init__(self, num_frequencies: int = 16, max_frequency: float = 64.0, scale: float = 1.0) -> None:
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(max_frequency), num_frequencies))
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        """Features ``[B, 2F]`` of ``x [B]``."""
        angles = (x.float() / self.scale)[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def check_group_width(width: int, groups: int = 8) -> None:
    """Refuse a first-layer channel count that ``groups``-group GroupNorm cannot split: ``width`` (the
    ``--width`` of ``train-denoiser`` and ``train-classifier``) must be a positive multiple of ``groups``.

    Raises:
        ValueError: naming the flag and the value.
    """
    if not (isinstance(width, int) and width >= groups and width % groups == 0):
        raise ValueError(f"--width (width) must be a positive multiple of {groups}, got {width}")


def mlp(
    in_dim: int, hidden: int, out_dim: int, layers: int, activation: type[nn.Module] = nn.SiLU
) -> nn.Sequential:
    """``layers`` linear layers ``in_dim -> hidden -> … -> out_dim`` with ``activation`` in between."""
    if layers < 1:
        raise ValueError(f"an MLP needs at least one layer, got {layers}")
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    modules: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        modules.append(nn.Linear(d_in, d_out))
        if i < layers - 1:
            modules.append(activation())
    return nn.Sequential(*modules)


class MLPDenoiserNet(nn.Module):
    """A class-conditional MLP for vector data: ``(x_t [B, d], t [B], class ids [B]) -> [B, d]``.

    Class id ``num_classes`` is the null class ∅ (train it with label dropout). What the output means (x_0,
    ε, v or a velocity) is set by the :class:`~learnguide.core.denoisers.PredictionAdapter` that wraps it.
    """

    def __init__(
        self, dim: int, num_classes: int, hidden: int = 256, layers: int = 4, fourier_features: int = 16
    ):
        super().__init__()
        self.config = {
            "dim": dim,
            "num_classes": num_classes,
            "hidden": hidden,
            "layers": layers,
            "fourier_features": fourier_features,
        }
        self.time_features = FourierFeatures(fourier_features, max_frequency=64.0)
        self.class_embedding = nn.Embedding(num_classes + 1, hidden)
        nn.init.zeros_(self.class_embedding.weight)  # every class starts as the unconditional model
        self.input = nn.Linear(dim + 2 * fourier_features, hidden)
        self.body = mlp(hidden, hidden, dim, layers)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Network output ``[B, d]``."""
        h = self.input(torch.cat([x_t, self.time_features(t)], dim=1)) + self.class_embedding(cond)
        return self.body(nn.functional.silu(h))
