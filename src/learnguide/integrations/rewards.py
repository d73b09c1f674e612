"""Rewards R(x̂_0, c) -> [B] for reward-tilted ω (docs/design.md §3, Algorithm 4).

A reward is any differentiable callable ``reward(x0 [B, ...], cond [B] or [B, ...]) -> [B]``; higher is
better. The ω-network's loss becomes L_self-consistency − γ_R · E[R(x̂(x_t, c; ω), c)], with x̂(ω) = x̂_c + ωΔ
the one-step guided clean prediction. Only the reward model is differentiated (its parameters are frozen;
the denoiser's outputs enter as constants), so the gradient reaches ω alone.

Built in: :class:`ClassifierLogProb` (log p(c | x̂_0) under an image classifier, e.g. the evaluation
classifiers shipped in ``checkpoints/``) and :class:`ClipScore` (cosine similarity of CLIP image and text
embeddings, ``transformers`` loading a local folder).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from learnguide.core.guidance import omega_condition

REWARDS = ("classifier", "clip")


class ClassifierLogProb(nn.Module):
    """R(x_0, c) = log p(c | x_0) under a frozen image classifier ``[B, C, H, W] -> logits [B, K]``.

    Args:
        classifier: any module mapping images in [−1, 1] to class logits.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)

    def forward(self, x0: Tensor, cond: Tensor) -> Tensor:
        """Log-probability ``[B]`` of class ids ``cond [B]`` for images ``x0 [B, C, H, W]``."""
        if cond.dim() != 1:
            raise ValueError("ClassifierLogProb needs class-id conditions [B]")
        dtype = next(self.classifier.parameters()).dtype
        log_probs = torch.log_softmax(self.classifier(x0.to(dtype)), dim=-1)
        return log_probs.gather(1, cond.long()[:, None]).squeeze(1)

    @classmethod
    def from_checkpoint(cls, directory: str | Path, data_id: str | None = None) -> ClassifierLogProb:
        """The reward of a classifier saved by :func:`learnguide.images.classifier.save_classifier`."""
        from learnguide.images.classifier import load_classifier

        return cls(load_classifier(directory, data_id=data_id))


class ClipScore(nn.Module):
    """R(x_0, c) = cos(CLIP image embedding of x_0, CLIP text embedding of the prompt of condition c).

    CLIP's text side is fixed by the prompts, so their text embeddings are computed once here. Conditions
    are prompt indices ``[B]``, or, with ``conditions``, the diffusion model's own prompt conditions
    (``[B, L, D]`` as the sampler and online trainer pass them, or mean-pooled ``[B, D]`` as a bank stores
    them), each looked up among ``conditions`` by exact match.

    Args:
        model: a ``transformers`` ``CLIPModel`` (frozen here).
        input_ids: the K prompts tokenised by the model's tokenizer ``[K, L']`` (or pass ``text_embeds``).
        text_embeds: precomputed projected text embeddings ``[K, E]`` instead of ``input_ids``.
        conditions: the diffusion model's conditions of the same K prompts ``[K, L, D]`` (a prompt file's
            ``prompt_embeds``), when conditions are not indices.
    """

    MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's image normalisation
    STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(
        self,
        model: nn.Module,
        input_ids: Tensor | None = None,
        text_embeds: Tensor | None = None,
        conditions: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        if (input_ids is None) == (text_embeds is None):
            raise ValueError("give exactly one of input_ids (tokenised prompts) or text_embeds")
        if text_embeds is None:
            with torch.no_grad():
                text_embeds = _as_tensor(model.get_text_features(input_ids=input_ids))
        if conditions is not None and len(conditions) != len(text_embeds):
            raise ValueError(f"got {len(conditions)} conditions for {len(text_embeds)} prompts")
        self.register_buffer("text_embeds", nn.functional.normalize(text_embeds.float(), dim=-1))
        keys = omega_condition(conditions).float() if conditions is not None else None
        self.register_buffer("keys", keys)
        self.image_size = int(model.config.vision_config.image_size)
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1))

    def prompt_index(self, cond: Tensor) -> Tensor:
        """Prompt indices ``[B]`` of conditions (indices as they are; prompt conditions looked up)."""
        if self.keys is None:
            if cond.dim() != 1:
                raise ValueError("ClipScore without conditions= takes prompt indices [B]")
            return cond.long()
        keys = omega_condition(cond).float()
        index = torch.cdist(keys, self.keys).argmin(1)
        if not torch.allclose(keys, self.keys[index], atol=1e-5):
            raise ValueError("a condition is not among ClipScore's prompt conditions")
        return index

    def forward(self, x0: Tensor, cond: Tensor) -> Tensor:
        """Cosine similarity ``[B]`` of images ``x0 [B, C, H, W]`` in [−1, 1] (grey images repeated to RGB,
        resized bilinearly to CLIP's size) with the prompts of ``cond``."""
        images = x0.float()
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        images = nn.functional.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        pixels = ((images + 1.0) / 2.0 - self.mean) / self.std
        image_embeds = _as_tensor(self.model.get_image_features(pixel_values=pixels))
        image_embeds = nn.functional.normalize(image_embeds, dim=-1)
        return (image_embeds * self.text_embeds[self.prompt_index(cond)]).sum(-1)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, prompts: list[str], conditions: Tensor | None = None
    ) -> ClipScore:
        """CLIP and its tokenizer from a local folder (safetensors weights only, nothing downloaded), for
        ``prompts`` (and their diffusion-model ``conditions``, see the class)."""
        from transformers import CLIPModel, CLIPTokenizer

        model = CLIPModel.from_pretrained(folder, use_safetensors=True, local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
        tokens = tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
        return cls(model, input_ids=tokens["input_ids"], conditions=conditions)


def _as_tensor(output) -> Tensor:
    """``get_*_features`` return a tensor in some ``transformers`` versions and a model output in others."""
    if isinstance(output, Tensor):
        return output
    return output.pooler_output
