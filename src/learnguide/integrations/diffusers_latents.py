"""Latent diffusion models: a diffusers VAE maps images to the latents the denoiser works on, and back.

A latent model (DiT-XL-2, Stable Diffusion, SD3, …) denoises z = (E(x) − shift)·scale, where E is the mean of
the VAE encoder's posterior and ``scale``, ``shift`` are the VAE's ``scaling_factor`` and ``shift_factor``.
learnguide learns ω entirely in latent space: :func:`encode_dataset` encodes a dataset once (cached on disk)
and every bank, fit and sample then runs on latents; :meth:`LatentCodec.decode` turns sampled latents into
images at the end.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from learnguide.checkpoints import atomic_save_tensors
from learnguide.core.discrepancy import FeatureMap
from learnguide.data.images import ImageDataset
from learnguide.data.prompts import PromptImageData

Dataset = TypeVar("Dataset", ImageDataset, PromptImageData)

VAE_SUBFOLDER = "vae"


class LatentCodec(nn.Module):
    """A diffusers VAE (``AutoencoderKL`` and kin) as encoder images → latents and decoder latents → images.

    Args:
        vae: the VAE; its ``config.scaling_factor`` and optional ``config.shift_factor`` map its posterior
            mean to the latents the denoiser was trained on.
    """

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.scale = float(vae.config.scaling_factor)
        self.shift = float(getattr(vae.config, "shift_factor", None) or 0.0)

    @property
    def image_channels(self) -> int:
        """C of the images ``[N, C, H, W]`` the VAE encodes (its ``in_channels``)."""
        return int(self.vae.config.in_channels)

    @torch.no_grad()
    def encode(self, images: Tensor, batch_size: int = 64, progress: bool = False) -> Tensor:
        """Latents ``[N, c, h, w]`` = (posterior mean − shift)·scale of images ``[N, C, H, W]`` in [−1, 1]
        (N = 0, e.g. a small folder's empty test split, gives ``[0, c, h, w]``)."""
        if not len(images):  # the VAE cannot take an empty batch: the latent shape of one blank image
            return self.encode(images.new_zeros(1, *images.shape[1:]))[:0]
        chunks = [
            (self.vae.encode(chunk).latent_dist.mode() - self.shift) * self.scale
            for chunk in tqdm(images.split(batch_size), desc="encode", disable=not progress)
        ]
        return torch.cat(chunks)

    def forward(self, latents: Tensor) -> Tensor:
        """Images ``[N, C, H, W]`` from latents ``[N, c, h, w]`` in one differentiable decoder pass."""
        return self.vae.decode(latents / self.scale + self.shift, return_dict=False)[0]

    @torch.no_grad()
    def decode(self, latents: Tensor, batch_size: int = 64) -> Tensor:
        """Images ``[N, C, H, W]`` (nominally in [−1, 1], not clamped) from latents ``[N, c, h, w]``, in
        batches, without gradients."""
        return torch.cat([self(chunk) for chunk in latents.split(batch_size)])


class DecodedReward(nn.Module):
    """A pixel-space reward on a latent model's clean predictions: R(decode(z), c). The gradient passes
    through the frozen VAE decoder to ω (the decoder is part of the reward model).

    Args:
        reward: ``R(images [B, C, H, W], cond) -> [B]``.
        codec: the latent model's VAE.
    """

    def __init__(self, reward: nn.Module, codec: LatentCodec) -> None:
        super().__init__()
        self.reward, self.codec = reward, codec

    def forward(self, latents: Tensor, cond: Tensor) -> Tensor:
        """R of the decoded latents ``[B, c, h, w]``: ``[B]``."""
        return self.reward(self.codec(latents), cond)


def decoded_features(phi: FeatureMap, codec: LatentCodec) -> FeatureMap:
    """A pixel-space feature map on a latent model's particles: φ(decode(z [B, c, h, w]), s [B]) -> [B, F].
    The gradient passes through the frozen VAE decoder to z. Decoded particles are images only where they are
    nearly clean, so use it on final samples (a line search, a whole-trajectory rollout) or with a φ made for
    decoded noisy latents."""

    def decoded(latents: Tensor, s: Tensor) -> Tensor:
        return phi(codec(latents), s)

    return decoded


def load_vae(folder: str | Path) -> LatentCodec | None:
    """The VAE of a local diffusers pipeline folder (``vae/``) as a :class:`LatentCodec`, or None when the
    pipeline has none (a pixel-space model). Safetensors only; the class must be one of diffusers' own."""
    import diffusers

    sub = Path(folder) / VAE_SUBFOLDER
    if not (sub / "config.json").is_file():
        return None
    name = json.loads((sub / "config.json").read_text()).get("_class_name", "")
    cls = getattr(diffusers, name, None) if name.startswith("Autoencoder") else None
    if cls is None:
        raise ValueError(f"{sub}/config.json names {name!r}, not a diffusers autoencoder class")
    return LatentCodec(cls.from_pretrained(sub, use_safetensors=True, local_files_only=True))


def encode_dataset(
    dataset: Dataset,
    codec: LatentCodec,
    codec_id: str,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Dataset:
    """``dataset`` with its images replaced by their latents, encoded once.

    Args:
        dataset: an :class:`~learnguide.data.images.ImageDataset` or
            :class:`~learnguide.data.prompts.PromptImageData`, images ``[N, C, H, W]`` in [−1, 1].
        codec: the VAE.
        codec_id: identifies the VAE's weights (part of the cache key, with the data's fingerprint).
        cache_dir: when given, latents are read from / written to ``cache_dir/latents-<key>.safetensors``.
        batch_size: images per encoder call.
        progress: show a progress bar while encoding.

    Returns:
        the same kind of dataset, named ``<name>@latents``, with latents ``[N, c, h, w]`` for its images and
        everything else unchanged.
    """
    key = hashlib.sha256(f"{dataset.fingerprint()}|{codec_id}".encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"latents-{key}.safetensors" if cache_dir is not None else None
    if path is not None and path.is_file():
        latents = load_file(str(path))
    else:
        latents = {
            field: codec.encode(getattr(dataset, field), batch_size, progress).contiguous()
            for field in dataset.image_fields
        }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_tensors(path, latents)
    return replace(dataset, name=f"{dataset.name}@latents", **latents)
