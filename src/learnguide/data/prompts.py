"""Prompt-conditioned data for text-to-image models: images with the embeddings of their captions.

learnguide never runs a text encoder: a user encodes the captions once with their own pipeline (for
diffusers: ``pipe.encode_prompt``) and stores them with the images in one safetensors file, which
:func:`save_prompt_images` writes and :func:`load_prompt_images` reads:

- ``prompt_embeds`` ``[N, L, D]`` float: one caption embedding per image (or per prompt to sample);
- ``null_embedding`` ``[L, D]``: the empty prompt's embedding, the ∅ condition;
- ``images`` ``[N, C, H, W]`` in [−1, 1] (optional: a prompt file only for sampling has none);
- ``pooled_embeds`` ``[N, P]`` and ``null_pooled`` ``[P]`` for models that also take a pooled embedding (SD3,
  Flux); conditions are then packed by :func:`pack_prompt_condition`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from learnguide.checkpoints import plain_file_mode
from learnguide.core.items import DataSampler


def pack_prompt_condition(prompt_embeds: Tensor, pooled_embeds: Tensor) -> Tensor:
    """One condition tensor for models that take prompt embeddings ``[B, L, D]`` and a pooled embedding
    ``[B, P]`` (SD3, Flux): ``[B, L + 1, max(D, P)]``, the prompt rows then the pooled row, zero-padded.

    The packed tensor is what the diffusers adapter, the sampler and the ω-network take as ``cond``.
    """
    if prompt_embeds.dim() != 3 or pooled_embeds.dim() != 2 or len(prompt_embeds) != len(pooled_embeds):
        raise ValueError(
            f"need prompt embeddings [B, L, D] and pooled embeddings [B, P], got "
            f"{tuple(prompt_embeds.shape)} and {tuple(pooled_embeds.shape)}"
        )
    batch, length, prompt_dim = prompt_embeds.shape
    packed = prompt_embeds.new_zeros(batch, length + 1, max(prompt_dim, pooled_embeds.shape[1]))
    packed[:, :length, :prompt_dim] = prompt_embeds
    packed[:, length, : pooled_embeds.shape[1]] = pooled_embeds
    return packed


@dataclass
class PromptImageData:
    """Images and their caption embeddings (the conditions of a text-conditional model).

    Attributes:
        name: the file's stem.
        images: ``[N, C, H, W]`` in [−1, 1], or an empty ``[0]`` tensor for a prompt file without images.
        prompt_embeds: conditions ``[N, L, D]`` (packed ``[N, L + 1, max(D, P)]`` with pooled embeddings).
        null_embedding: the ∅ condition ``[L, D]`` (packed the same way).
    """

    image_fields: ClassVar[tuple[str, ...]] = ("images",)

    name: str
    images: Tensor
    prompt_embeds: Tensor
    null_embedding: Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        if self.images.dim() != 4:
            raise ValueError(f"{self.name} holds prompts only, no images")
        return tuple(self.images.shape[1:])

    def fingerprint(self) -> str:
        """A short hash of the images and conditions (banks record what they were drawn from)."""
        digest = hashlib.sha256(self.name.encode())
        for tensor in (self.images, self.prompt_embeds, self.null_embedding):
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def data_sampler(self) -> DataSampler:
        """``(n, generator) -> (x_0 [n, C, H, W], prompt embeddings [n, L, D])``, drawn with replacement."""
        if self.images.dim() != 4:
            raise ValueError(f"{self.name} holds prompts only; learning ω needs images with their prompts")

        def sample_data(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
            idx = torch.randint(len(self.images), (n,), generator=generator)
            return self.images[idx], self.prompt_embeds[idx]

        return sample_data


def save_prompt_images(
    path: str | Path,
    prompt_embeds: Tensor,
    null_embedding: Tensor,
    images: Tensor | None = None,
    pooled_embeds: Tensor | None = None,
    null_pooled: Tensor | None = None,
) -> Path:
    """Write a prompt file (format in the module docstring); shapes are checked by loading it back."""
    tensors = {"prompt_embeds": prompt_embeds, "null_embedding": null_embedding}
    optional = {"images": images, "pooled_embeds": pooled_embeds, "null_pooled": null_pooled}
    tensors |= {k: v for k, v in optional.items() if v is not None}
    path = Path(path)
    save_file({k: v.detach().float().contiguous().clone() for k, v in tensors.items()}, str(path))
    plain_file_mode(path)
    load_prompt_images(path)
    return path


def load_prompt_images(path: str | Path) -> PromptImageData:
    """Read a prompt file (format in the module docstring), packing pooled embeddings where present.

    Raises:
        ValueError: naming what is missing or mis-shaped.
    """
    path = Path(path)
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise ValueError(f"cannot read prompt file {path}: {err}") from None
    missing = {"prompt_embeds", "null_embedding"} - set(tensors)
    if missing:
        raise ValueError(
            f"{path} lacks {sorted(missing)}: a prompt file holds prompt_embeds and null_embedding"
        )
    prompts, null = tensors["prompt_embeds"], tensors["null_embedding"]
    if prompts.dim() != 3 or null.shape != prompts.shape[1:]:
        raise ValueError(
            f"{path}: prompt_embeds must be [N, L, D] and null_embedding [L, D], got "
            f"{tuple(prompts.shape)} and {tuple(null.shape)}"
        )
    if not len(prompts):
        raise ValueError(f"{path} holds no prompts: its prompt_embeds is [0, L, D]; give one or more")
    if ("pooled_embeds" in tensors) != ("null_pooled" in tensors):
        raise ValueError(f"{path}: give both pooled_embeds [N, P] and null_pooled [P], or neither")
    if "pooled_embeds" in tensors:
        prompts = pack_prompt_condition(prompts, tensors["pooled_embeds"])
        null = pack_prompt_condition(null[None], tensors["null_pooled"][None])[0]
    images = tensors.get("images", torch.empty(0))
    if images.numel() and (images.dim() != 4 or len(images) != len(prompts)):
        raise ValueError(
            f"{path}: images must be [N, C, H, W] with one per prompt, got {tuple(images.shape)} for "
            f"{len(prompts)} prompts"
        )
    if images.numel() and not images.is_floating_point() or not prompts.is_floating_point():
        raise ValueError(
            f"{path}: images and prompt_embeds must be floating point, got {images.dtype} and {prompts.dtype}"
        )
    if not all(bool(x.isfinite().all()) for x in (images, prompts, null)):
        raise ValueError(f"{path} holds NaN or Inf values")
    return PromptImageData(path.stem, images, prompts, null)
