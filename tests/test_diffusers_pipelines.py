"""Latent and text-to-image diffusers models end to end: a pipeline's own output against ours, the VAE path
of the CLI, prompt files, and schedules exported for a pipeline whose scheduler is not DDIM (tiny random
models, offline)."""

import json

import numpy as np
import pytest
import torch
from diffusers import DiTPipeline, PNDMScheduler
from PIL import Image
from safetensors.torch import load_file, save_file

from learnguide.apps.cli import main
from learnguide.core.banks import load_bank
from learnguide.core.guidance import ConstantGuidance, OmegaNet, omega_to_scale
from learnguide.core.sampling import sample
from learnguide.data.images import load_digits_dataset, load_image_folder
from learnguide.data.prompts import load_prompt_images, pack_prompt_condition, save_prompt_images
from learnguide.integrations.diffusers_latents import DecodedReward, LatentCodec, encode_dataset, load_vae
from learnguide.integrations.diffusers_models import (
    DiffusersDenoiser,
    schedule_from_scheduler,
    scheduler_grid,
)
from learnguide.integrations.rewards import ClipScore
from tiny_models import (
    digits_unet,
    dit_scheduler,
    save_latent_pipeline,
    text_unet,
    tiny_clip,
    tiny_latent_dit,
    tiny_vae,
    write_tiny_tokenizer,
)

OMEGA = 1.5


def test_dit_pipeline_output_equals_our_latent_samples_decoded():
    """DiTPipeline (its null class is hard-wired to 1000) with DDIM vs our sampler + the VAE decoder."""
    model, vae, steps = tiny_latent_dit(1000).eval(), tiny_vae(3), 8  # eval: DiT drops labels in training
    pipe = DiTPipeline(transformer=model, vae=vae, scheduler=dit_scheduler())
    pipe.set_progress_bar_config(disable=True)
    classes = [3, 999, 0]
    theirs = pipe(
        class_labels=classes,
        guidance_scale=omega_to_scale(OMEGA),
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(21),
        output_type="pt",
    ).images
    denoiser, codec = DiffusersDenoiser(model, dit_scheduler()), LatentCodec(vae)
    grid = scheduler_grid(dit_scheduler(), steps)
    cond, gen = torch.tensor(classes), torch.Generator().manual_seed(21)
    latents = sample(
        denoiser, denoiser.schedule, ConstantGuidance(OMEGA), cond, (4, 4, 4), grid=grid, generator=gen
    )
    mine = (codec.decode(latents) / 2 + 0.5).clamp(0, 1)
    assert mine.shape == theirs.shape == (3, 3, 8, 8)
    assert float((mine - theirs).norm() / theirs.norm()) <= 1e-5
    unguided = sample(denoiser, denoiser.schedule, ConstantGuidance(0.0), cond, (4, 4, 4), grid=grid,
                      generator=torch.Generator().manual_seed(21))  # fmt: skip
    assert float((unguided - latents).norm()) > 1e-3  # guidance matters here: the comparison has teeth


def test_latent_codec_encodes_with_scale_and_shift_and_caches_a_dataset(tmp_path):
    vae = tiny_vae(1)
    vae.register_to_config(shift_factor=0.25)
    codec = LatentCodec(vae)
    images = torch.rand(3, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        mean = vae.encode(images).latent_dist.mean
    latents = codec.encode(images, batch_size=2)
    assert latents.shape == (3, 4, 4, 4) and torch.allclose(latents, (mean - 0.25) * 0.5, atol=1e-6)
    with torch.no_grad():
        expected = vae.decode(latents / 0.5 + 0.25).sample
    assert torch.allclose(codec.decode(latents), expected, atol=1e-6)
    digits = load_digits_dataset()
    encoded = encode_dataset(digits, codec, "vae-a", cache_dir=tmp_path)
    assert encoded.image_shape == (4, 4, 4) and encoded.name == "digits@latents"
    assert torch.equal(encoded.train_labels, digits.train_labels) and len(encoded.test_images) == len(
        digits.test_images
    )
    (cached,) = tmp_path.glob("latents-*.safetensors")
    again = encode_dataset(digits, LatentCodec(tiny_vae(1)), "vae-a", cache_dir=tmp_path)  # read, not encoded
    assert torch.equal(again.train_images, encoded.train_images)
    encode_dataset(digits, codec, "vae-b", cache_dir=tmp_path)  # another VAE: another cache file
    assert len(list(tmp_path.glob("latents-*.safetensors"))) == 2 and cached.is_file()


def bank_fit_sample(folder, dataset, work, classes: tuple[str, ...]) -> tuple[dict, dict]:
    """``learnguide bank`` → ``fit`` → ``sample`` (3 steps, 2 per class) with the pipeline ``folder`` on
    ``dataset``, in ``work``: the bank's cached latents and the saved samples."""
    bank, omega, out = work / "bank", work / "omega", work / "samples"
    args = ["bank", "--model", str(folder), "--dataset", str(dataset), "--out", str(bank), "--items", "64"]
    assert main([*args, "--shard-size", "32", "--batch-size", "32", "--no-progress"]) == 0
    assert main(["fit", "--bank", str(bank), "--out", str(omega), "--epochs", "2", "--no-progress"]) == 0
    smp = ["sample", "--model", str(folder), "--omega", str(omega), "--steps", "3", "--classes", *classes]
    assert main([*smp, "--per-class", "2", "--out", str(out), "--no-progress"]) == 0
    (cache,) = (bank / "latents").glob("latents-*.safetensors")
    return load_file(cache), load_file(out / "samples.safetensors")


def test_cli_learns_and_samples_a_latent_model_through_its_vae(tmp_path):
    folder = save_latent_pipeline(tmp_path / "pipe")
    assert load_vae(folder) is not None and load_vae(tmp_path) is None
    latents, saved = bank_fit_sample(folder, "digits", tmp_path, ("0", "7"))
    assert latents["train_images"].shape[1:] == (4, 4, 4)  # the digits, encoded once
    assert saved["latents"].shape == (4, 4, 4, 4) and saved["images"].shape == (4, 1, 8, 8)
    codec = load_vae(folder)
    assert torch.allclose(saved["images"], codec.decode(saved["latents"]), atol=1e-6)


def write_rgb_folder(root):
    """Two classes ("red", "green") of 4 colour 8×8 PNGs each under ``root``; returns ``root``."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "green")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 64, (8, 8, 3), dtype=np.uint8)
            pixels[:, :, k] += 190
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_cli_banks_an_rgb_image_folder_with_a_3_channel_pixel_model(tmp_path):
    digits_unet(channels=3).save_pretrained(tmp_path / "pipe" / "unet")
    dit_scheduler().save_pretrained(tmp_path / "pipe" / "scheduler")
    args = ["bank", "--model", str(tmp_path / "pipe"), "--dataset", str(write_rgb_folder(tmp_path / "rgb"))]
    assert main([*args, "--null-class", "10", "--out", str(tmp_path / "bank"), "--items", "8"]) == 0
    assert set(load_bank(tmp_path / "bank").cond.tolist()) <= {0, 1}  # drawn from the folder's 2 classes


@pytest.mark.slow
def test_cli_learns_and_samples_a_latent_model_on_an_rgb_image_folder(tmp_path):
    """A 3-channel PNG folder (4 per class, one of each held out as the test split) through a VAE for RGB
    images."""
    folder, images = save_latent_pipeline(tmp_path / "pipe", channels=3), write_rgb_folder(tmp_path / "rgb")
    latents, saved = bank_fit_sample(folder, images, tmp_path, ("0", "1"))
    images = load_image_folder(images).train_images
    assert images.shape == (6, 3, 8, 8) and latents["test_images"].shape == (2, 4, 4, 4)
    assert torch.allclose(latents["train_images"], load_vae(folder).encode(images), atol=1e-5)
    assert saved["latents"].shape == (4, 4, 4, 4) and saved["images"].shape == (4, 3, 8, 8)
    assert saved["labels"].tolist() == [0, 0, 1, 1] and bool(saved["images"].isfinite().all())


def test_cli_names_the_image_size_a_latent_model_needs(tmp_path, capsys):
    folder = save_latent_pipeline(tmp_path / "pipe")
    model_config = folder / "transformer" / "config.json"
    model_config.write_text(json.dumps(json.loads(model_config.read_text()) | {"sample_size": 8}))
    args = ["bank", "--model", str(folder), "--dataset", "digits", "--out", str(tmp_path / "bank")]
    assert main([*args, "--no-progress"]) == 2
    assert "latents of shape (4, 4, 4)" in capsys.readouterr().err


def test_export_for_a_pndm_pipeline_uses_ddim_timesteps_from_its_config(tmp_path):
    """SD-1.5 ships PNDM; the exported grid is DDIM's from the same config (steps_offset 1, leading)."""
    folder = save_latent_pipeline(tmp_path / "pipe")
    pndm = PNDMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pndm.save_pretrained(folder / "scheduler")
    OmegaNet(schedule_from_scheduler(pndm), num_classes=3).save(tmp_path / "omega")  # the model's schedule
    out = tmp_path / "schedule.json"
    args = ["export", "--omega", str(tmp_path / "omega"), "--model", str(folder), "--steps", "4"]
    assert main([*args, "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["timesteps"] == [751, 501, 251, 1]
    assert set(table["omega"]) == {"0", "1", "2"} and len(table["guidance_scale"]["2"]) == 4


def test_pipeline_fingerprint_covers_the_vae(tmp_path):
    from learnguide.integrations.diffusers_models import diffusers_fingerprint

    folder = save_latent_pipeline(tmp_path / "pipe")
    before = diffusers_fingerprint(folder)
    vae = tiny_vae(1)
    torch.nn.init.zeros_(vae.decoder.conv_out.bias.data)
    vae.decoder.conv_out.bias.data += 1.0
    vae.save_pretrained(folder / "vae")
    assert diffusers_fingerprint(folder) != before


@pytest.mark.parametrize("bad", ["os.system", "UNet2DModel"])
def test_load_vae_refuses_non_autoencoder_classes(tmp_path, bad):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"_class_name": bad}))
    with pytest.raises(ValueError, match="not a diffusers autoencoder"):
        load_vae(tmp_path)


def save_text_pipeline(folder):
    text_unet(sample_size=4).save_pretrained(folder / "unet")
    dit_scheduler().save_pretrained(folder / "scheduler")
    tiny_vae(1).save_pretrained(folder / "vae")
    return folder


def test_cli_learns_omega_of_prompt_embeddings_for_a_text_to_image_latent_model(tmp_path, capsys):
    folder = save_text_pipeline(tmp_path / "pipe")
    gen = torch.Generator().manual_seed(4)
    prompts, empty = torch.randn(6, 3, 12, generator=gen), torch.randn(3, 12, generator=gen)
    data = save_prompt_images(
        tmp_path / "captions.safetensors", prompts, empty, torch.rand(6, 1, 8, 8) * 2 - 1
    )
    bank, omega, out = tmp_path / "bank", tmp_path / "omega", tmp_path / "samples"
    args = ["bank", "--model", str(folder), "--dataset", str(data), "--out", str(bank), "--items", "48"]
    assert main([*args, "--shard-size", "24", "--batch-size", "24", "--no-progress"]) == 0
    stored = load_bank(bank).cond
    assert stored.shape == (48, 12)  # what ω sees: the prompt embeddings mean-pooled over tokens
    assert (stored[:, None] - prompts.mean(1)[None]).norm(dim=-1).min(1).values.max() < 1e-6
    assert main(["fit", "--bank", str(bank), "--out", str(omega), "--epochs", "2", "--no-progress"]) == 0
    assert OmegaNet.load(omega).hparams["cond_dim"] == 12
    smp = ["sample", "--model", str(folder), "--prompts", str(data), "--omega", str(omega), "--steps", "3"]
    assert main([*smp, "--classes", "0", "5", "--per-class", "2", "--out", str(out), "--no-progress"]) == 0
    saved = load_file(out / "samples.safetensors")
    assert saved["images"].shape == (4, 1, 8, 8) and saved["labels"].tolist() == [0, 0, 5, 5]
    export = ["export", "--omega", str(omega), "--model", str(folder), "--prompts", str(data), "--steps", "4"]
    assert main([*export, "--classes", "1", "2", "--out", str(tmp_path / "w.json")]) == 0
    table = json.loads((tmp_path / "w.json").read_text())
    assert set(table["omega"]) == {"1", "2"} and len(table["omega"]["1"]) == 4
    assert main([*smp, "--classes", "6", "--out", str(tmp_path / "bad")]) == 2
    assert "prompt indices must be in [0, 6)" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main([*args[:-2], "--null-class", "3"]) == 2
    assert "--null-class is for class-conditional models" in capsys.readouterr().err
    assert main(["export", "--omega", str(omega), "--steps", "4", "--out", str(tmp_path / "x.json")]) == 2
    assert "pass --prompts" in capsys.readouterr().err


def test_prompt_files_round_trip_pack_pooled_embeddings_and_name_what_is_wrong(tmp_path):
    gen = torch.Generator().manual_seed(0)
    prompts, empty, pooled = torch.randn(4, 3, 6, generator=gen), torch.randn(3, 6), torch.randn(4, 9)
    path = save_prompt_images(
        tmp_path / "p.safetensors", prompts, empty, pooled_embeds=pooled, null_pooled=pooled[0]
    )
    data = load_prompt_images(path)
    assert data.prompt_embeds.shape == (4, 4, 9) and data.null_embedding.shape == (4, 9)
    assert torch.equal(data.prompt_embeds, pack_prompt_condition(prompts, pooled))
    with pytest.raises(ValueError, match="holds prompts only"):
        data.data_sampler()
    bad = {
        "lacks": {"prompt_embeds": prompts},
        "null_embedding \\[L, D\\]": {"prompt_embeds": prompts, "null_embedding": empty[:2]},
        "both pooled_embeds": {"prompt_embeds": prompts, "null_embedding": empty, "pooled_embeds": pooled},
        "one per prompt": {
            "prompt_embeds": prompts,
            "null_embedding": empty,
            "images": torch.zeros(3, 1, 8, 8),
        },
        "NaN or Inf": {"prompt_embeds": prompts * float("nan"), "null_embedding": empty},
    }
    for message, tensors in bad.items():
        save_file(tensors, str(tmp_path / "bad.safetensors"))
        with pytest.raises(ValueError, match=message):
            load_prompt_images(tmp_path / "bad.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="cannot read prompt file"):
        load_prompt_images(tmp_path / "cut.safetensors")


def test_cli_fits_a_clip_rewarded_omega_for_a_text_to_image_model(tmp_path):
    pytest.importorskip("transformers")
    from transformers import CLIPTokenizer

    folder, clip = save_text_pipeline(tmp_path / "pipe"), tmp_path / "clip"
    clip.mkdir()
    write_tiny_tokenizer(clip)
    tiny_clip().save_pretrained(clip, safe_serialization=True)
    CLIPTokenizer(str(clip / "vocab.json"), str(clip / "merges.txt")).save_pretrained(clip)
    gen = torch.Generator().manual_seed(4)
    prompts, empty = torch.randn(3, 3, 12, generator=gen), torch.randn(3, 12, generator=gen)
    data = save_prompt_images(
        tmp_path / "captions.safetensors", prompts, empty, torch.rand(3, 1, 8, 8) * 2 - 1
    )
    (tmp_path / "captions.txt").write_text("a red shoe\na bag\na shirt\n")
    bank = tmp_path / "bank"
    args = ["bank", "--model", str(folder), "--dataset", str(data), "--out", str(bank), "--items", "24"]
    assert (
        main([*args, "--particles", "2", "--batch-size", "24", "--store-predictions", "--no-progress"]) == 0
    )
    fit = ["fit", "--bank", str(bank), "--out", str(tmp_path / "omega"), "--epochs", "2", "--no-progress"]
    clip_args = ["--reward", "clip", "--reward-model", str(clip), "--gamma", "0.5", "--prompts", str(data)]
    clip_args += ["--captions", str(tmp_path / "captions.txt"), "--model", str(folder)]  # decode latents
    assert main([*fit, *clip_args]) == 0
    assert OmegaNet.load(tmp_path / "omega").hparams["cond_dim"] == 12
    reward = DecodedReward(
        ClipScore.from_pretrained(clip, ["a", "b", "c"], conditions=prompts), load_vae(folder)
    )
    z = torch.randn(2, 4, 4, 4, requires_grad=True)
    reward(z, prompts[:2]).sum().backward()  # through the frozen decoder to the latents, not to the VAE
    assert z.grad.abs().sum() > 0 and all(p.grad is None for p in reward.parameters())
