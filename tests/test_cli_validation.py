"""Bad input through the command line: each gives a one-line error that says what is wrong, exit code 2, no
traceback, and leaves no output behind."""

import json
import shutil
import sys

import pytest
import torch
from diffusers import DDIMScheduler

from learnguide.apps.cli import main
from learnguide.core.denoiser_training import DenoiserTrainingConfig, save_mlp_denoiser
from learnguide.core.schedules import VPCosine
from learnguide.data.images import FASHION_MNIST_DIR
from learnguide.data.prompts import save_prompt_images
from tiny_models import digits_unet, save_latent_pipeline, text_unet


@pytest.fixture(scope="module")
def files(tmp_path_factory, request):
    """A toy denoiser, a finished bank, an ω-network, a pixel diffusers pipeline, and broken copies."""
    from learnguide.core.denoisers import PredictionAdapter
    from learnguide.core.networks import MLPDenoiserNet
    from learnguide.data.toy import ring_mixture

    root = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    net = MLPDenoiserNet(2, 4, hidden=16, layers=2, fourier_features=4)
    denoiser = PredictionAdapter(net, VPCosine(), "v", null_id=4).eval()
    save_mlp_denoiser(denoiser, root / "denoiser", DenoiserTrainingConfig(), ring_mixture().fingerprint())
    bank = ["bank", "--denoiser", str(root / "denoiser"), "--out", str(root / "bank"), "--items", "64"]
    assert main([*bank, "--shard-size", "32", "--no-progress"]) == 0
    assert (
        main(
            [
                "fit",
                "--bank",
                str(root / "bank"),
                "--out",
                str(root / "omega"),
                "--epochs",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    unet = digits_unet()
    unet.save_pretrained(root / "pipe" / "unet")
    DDIMScheduler().save_pretrained(root / "pipe" / "scheduler")
    with torch.no_grad():  # a copy whose every prediction is NaN (diffusers weights are not checked on load)
        list(unet.parameters())[-1].fill_(float("nan"))
    unet.save_pretrained(root / "pipe-nan" / "unet")
    DDIMScheduler().save_pretrained(root / "pipe-nan" / "scheduler")
    from learnguide.images.classifier import ClassifierTrainingConfig, ImageClassifier, save_classifier

    save_classifier(
        ImageClassifier(2, 4, width=8), root / "classifier", {}, ClassifierTrainingConfig(), "toy"
    )
    # broken copies
    from safetensors.torch import save_file

    from learnguide.core.guidance import OmegaNet

    nan_omega = OmegaNet.load(root / "omega")
    torch.nn.init.constant_(nan_omega.body[-1].bias, float("nan"))
    shutil.copytree(root / "omega", root / "omega-nan")  # written by hand: save() refuses NaN weights
    save_file(nan_omega.state_dict(), str(root / "omega-nan" / "model.safetensors"))
    for weights in (nan_omega.body[-1].weight, nan_omega.body[-1].bias):  # finite, but ω overflows to inf
        torch.nn.init.constant_(weights, 3.4e38)
    nan_omega.save(root / "omega-overflow")
    shutil.copytree(root / "omega", root / "omega-truncated")
    weights = root / "omega-truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    shutil.copytree(root / "denoiser", root / "denoiser-truncated")
    for path in (root / "denoiser-truncated").glob("*.safetensors"):
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    shutil.copytree(root / "bank", root / "bank-corrupted")
    (shard,) = sorted((root / "bank-corrupted").glob("*.safetensors"))[:1]
    shard.write_bytes(b"not a safetensors file")
    shutil.copytree(root / "bank", root / "bank-incomplete")
    manifest = json.loads((root / "bank-incomplete" / "manifest.json").read_text())
    manifest["shards_done"] = manifest["shards_done"][:1]
    (root / "bank-incomplete" / "manifest.json").write_text(json.dumps(manifest))
    (root / "empty").mkdir()
    prompts = torch.randn(2, 3, 12)
    save_prompt_images(root / "prompts.safetensors", prompts, prompts[0], torch.zeros(2, 1, 8, 8))
    save_prompt_images(root / "prompts-text.safetensors", prompts, prompts[0], torch.zeros(2, 4, 8, 8))
    nan = root / "nan.safetensors"
    save_file({"prompt_embeds": prompts * float("nan"), "null_embedding": prompts[0]}, str(nan))
    # non-finite and unreadable copies: samples, a bank's statistics, a toy and an image denoiser
    from safetensors.torch import load_file

    from learnguide.images.denoisers import build_image_denoiser, save_image_denoiser, unet_config

    (root / "samples-nan").mkdir()
    images = torch.zeros(4, 1, 8, 8)
    images[1, 0, 2, 3] = float("nan")
    save_file({"images": images, "labels": torch.arange(4)}, f"{root}/samples-nan/samples.safetensors")
    (root / "samples-corrupted").mkdir()
    (root / "samples-corrupted" / "samples.safetensors").write_bytes(b"not a safetensors file")
    shutil.copytree(root / "bank", root / "bank-nan")
    shard = load_file(str(root / "bank-nan" / "shard_00001.safetensors"))
    shard["stats"][3, 0, 0] = float("inf")
    save_file(shard, str(root / "bank-nan" / "shard_00001.safetensors"))

    def poison(weights_file, name):  # saving refuses NaN weights, so they are written into the file by hand
        state = load_file(str(weights_file))
        state[name] = torch.full_like(state[name], float("nan"))
        save_file(state, str(weights_file))

    save_mlp_denoiser(denoiser, root / "denoiser-nan", DenoiserTrainingConfig(), ring_mixture().fingerprint())
    poison(root / "denoiser-nan" / "model.safetensors", list(net.state_dict())[-1])  # every prediction NaN
    model = build_image_denoiser(unet_config((1, 8, 8), 4, width=8), VPCosine())
    save_image_denoiser(model, root / "image-denoiser-nan", DenoiserTrainingConfig(), "toy", tuple("0123"))
    poison(root / "image-denoiser-nan" / "unet" / "diffusion_pytorch_model.safetensors", "conv_out.bias")
    # checkpoints of other models: image denoisers with the toy's schedule, a text pipeline, a text ω-network
    from learnguide.core.guidance import OmegaNet
    from learnguide.images.denoisers import build_image_denoiser, save_image_denoiser, unet_config

    for name, classes in (("image-denoiser", 4), ("image-denoiser-10", 10)):
        torch.manual_seed(0)
        model = build_image_denoiser(unet_config((1, 8, 8), classes, width=8), VPCosine())
        save_image_denoiser(
            model, root / name, DenoiserTrainingConfig(), "toy", tuple(map(str, range(classes)))
        )
    text_unet().save_pretrained(root / "pipe-text" / "unet")
    DDIMScheduler().save_pretrained(root / "pipe-text" / "scheduler")
    OmegaNet(VPCosine(), cond_dim=12).save(root / "omega-text")
    wide = torch.randn(2, 3, 16)
    save_prompt_images(root / "prompts-wide.safetensors", wide, wide[0], torch.zeros(2, 4, 8, 8))
    save_file(
        {
            "prompt_embeds": prompts,
            "null_embedding": prompts[0].clone(),
            "images": torch.zeros(2, 4, 8, 8).long(),
        },
        str(root / "prompts-int.safetensors"),
    )
    save_file(
        {"images": torch.zeros(4, 1, 8, 8), "labels": torch.arange(4)}, str(root / "samples.safetensors")
    )
    # image folders: colour PNGs, and a PNG that is not one; a latent pipeline whose VAE takes grey images
    from PIL import Image

    for name in ("red", "blue"):
        (root / "rgb" / name).mkdir(parents=True)
        for k in range(2):
            pixels = torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(root / "rgb" / name / f"{k}.png")
    (root / "broken-images" / "a").mkdir(parents=True)
    (root / "broken-images" / "a" / "0.png").write_bytes(b"not a png")
    save_latent_pipeline(root / "pipe-latent", channels=1)
    # image folders of one class, of one image per class, of two image sizes; an empty prompt file; captions
    # that are not UTF-8
    for name, sizes in (("one-class", {"a": [8, 8]}), ("singletons", {"a": [8], "b": [8]})):
        for label, widths in sizes.items():
            (root / name / label).mkdir(parents=True)
            for k, side in enumerate(widths):
                Image.fromarray(torch.zeros(side, side, dtype=torch.uint8).numpy()).save(
                    root / name / label / f"{k}.png"
                )
    for label, side in (("a", 8), ("b", 6)):
        (root / "mixed-sizes" / label).mkdir(parents=True)
        Image.fromarray(torch.zeros(side, side, dtype=torch.uint8).numpy()).save(
            root / "mixed-sizes" / label / "0.png"
        )
    save_file(
        {
            "prompt_embeds": torch.zeros(0, 3, 12),
            "null_embedding": prompts[0],
            "images": torch.zeros(0, 4, 8, 8),
        },
        str(root / "prompts-none.safetensors"),
    )
    (root / "latin1.txt").write_bytes("café\nnaïve\n".encode("latin-1"))
    for name, (folder, file, key, value) in BAD_CONFIGS.items():  # a value of the wrong type or range
        shutil.copytree(root / folder, root / name)
        config = json.loads((root / name / file).read_text())
        (config[key[0]] if len(key) == 2 else config)[key[-1]] = value
        (root / name / file).write_text(json.dumps(config))
    return root


BAD_CONFIGS = {  # broken copy: (checkpoint folder, JSON file, key path, value)
    "denoiser-classes-negative": ("denoiser", "config.json", ("net", "num_classes"), -3),
    "omega-hidden-1e12": ("omega", "config.json", ("hidden",), 1e12),
    "omega-hidden-million": ("omega", "config.json", ("hidden",), 10**6),  # 10¹² weights if allocated
    "omega-schedule-5": ("omega", "config.json", ("schedule",), 5),
    "image-denoiser-channels-string": ("image-denoiser", "unet/config.json", ("in_channels",), "1"),
    "image-denoiser-huge": ("image-denoiser", "unet/config.json", ("block_out_channels",), [10**5] * 2),
    "classifier-width-float": ("classifier", "config.json", ("net", "width"), 8.5),
    "bank-particles-string": ("bank", "manifest.json", ("config", "particles"), "4"),
}
OUT = "{out}"
SAMPLE_IMAGES = ["sample", "--denoiser", "{root}/image-denoiser"]
ONLINE = ["fit", "--online", "--denoiser", "{root}/denoiser", "--out", OUT]
EXPERIMENT = ["experiment", "--dataset", "digits", "--out", OUT]
EVALUATE = ["evaluate", "--dataset", "digits", "--classifier", "checkpoints/digits/classifier", "--samples"]
SEED = "argument --seed: must be an integer in [0, 2**32)"
TRAIN_DENOISER = ["train-denoiser", "--dataset", "digits", "--out", OUT, "--steps", "1", "--batch-size", "4"]
CLASSIFIER_ON = ["train-classifier", "--epochs", "1", "--dataset"]
TRAIN_CLASSIFIER = [*CLASSIFIER_ON, "digits", "--out", OUT]
TEXT_MODEL, NO_PROMPTS = ["--model", "{root}/pipe-text"], "{root}/prompts-none.safetensors"
CONSTANT_TO_OUT = ["--constant", "1", "--out", OUT]
CLIP_FIT = ["fit", "--bank", "{root}/bank", "--out", OUT, "--gamma", "1", "--reward", "clip"]
CLIP_FIT += ["--reward-model", "{root}/empty", "--prompts", "{root}/prompts.safetensors"]
EXPORT = ["export", "--omega", "{root}/omega", "--steps", "4"]
PIXEL_BANK = ["bank", "--model", "{root}/pipe", "--dataset"]
CASES = [  # (id, arguments with {root} and {out}, what the message must say)
    (
        "beta-above-2",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--beta", "3"],
        "--beta (β) must be in (0, 2]",
    ),
    (
        "beta-zero",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--beta", "0"],
        "--beta (β) must be in (0, 2]",
    ),
    ("lambda-above-1", ["fit", "--bank", "{root}/bank", "--out", OUT, "--lam", "1.5"], "must be in [0, 1]"),
    (
        "epochs-zero",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--epochs", "0"],
        "--epochs and --batch-size",
    ),
    ("gamma-negative", ["fit", "--bank", "{root}/bank", "--out", OUT, "--gamma", "-1"], "finite number >= 0"),
    ("gamma-nan", ["fit", "--bank", "{root}/bank", "--out", OUT, "--gamma", "nan"], "finite number >= 0"),
    (
        "gamma-without-reward",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--gamma", "1"],
        "needs a reward",
    ),
    (
        "reward-model-missing",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--gamma", "1", "--reward", "classifier"]
        + ["--reward-model", "{root}/empty"],
        "not a learnguide.classifier checkpoint folder",
    ),
    (
        "reward-without-predictions",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--gamma", "1", "--reward", "classifier"]
        + ["--reward-model", "{root}/classifier"],
        "make the bank with --store-predictions",
    ),
    ("empty-bank-folder", ["fit", "--bank", "{root}/empty", "--out", OUT], "it is not a transition bank"),
    ("corrupted-shard", ["fit", "--bank", "{root}/bank-corrupted", "--out", OUT], "is corrupted or missing"),
    ("incomplete-bank", ["fit", "--bank", "{root}/bank-incomplete", "--out", OUT], "is incomplete"),
    ("items-zero", ["bank", "--denoiser", "{root}/denoiser", "--out", OUT, "--items", "0"], "must be >= 1"),
    (
        "one-particle",
        ["bank", "--denoiser", "{root}/denoiser", "--out", OUT, "--particles", "1"],
        "2 particles",
    ),
    (
        "gap-too-large",
        ["bank", "--denoiser", "{root}/denoiser", "--out", OUT, "--delta", "1.5"],
        "need 0 <= s_min",
    ),
    (
        "churn-above-1",
        ["bank", "--denoiser", "{root}/denoiser", "--out", OUT, "--churn", "2"],
        "churn must be",
    ),
    ("truncated-denoiser", ["bank", "--denoiser", "{root}/denoiser-truncated", "--out", OUT], "truncated"),
    ("missing-denoiser", ["bank", "--denoiser", "{root}/nowhere", "--out", OUT], "is missing"),
    (
        "bank-of-another-denoiser",
        [
            "bank",
            "--model",
            "{root}/pipe",
            "--dataset",
            "digits",
            "--null-class",
            "10",
            "--out",
            "{root}/bank",
        ],
        "holds a bank made with other settings: ",
    ),
    (
        "bank-rerun-with-other-settings",
        ["bank", "--denoiser", "{root}/denoiser", "--out", "{root}/bank", "--items", "64", "--particles", "8"]
        + ["--shard-size", "32"],
        "bank holds a bank made with other settings: particles (4 there, 8 now); use another folder",
    ),
    (
        "truncated-omega",
        ["export", "--omega", "{root}/omega-truncated", "--steps", "4", "--out", OUT],
        "truncated",
    ),
    ("not-an-omega", ["export", "--omega", "{root}/denoiser", "--steps", "4", "--out", OUT], "expected"),
    (
        "unknown-class",
        ["export", "--omega", "{root}/omega", "--steps", "4", "--classes", "7", "--out", OUT],
        "[0, 4)",
    ),
    (
        "steps-zero",
        ["export", "--omega", "{root}/omega", "--steps", "0", "--out", OUT],
        "--steps must be >= 1",
    ),
    (
        "omega-of-another-schedule",
        ["sample", "--model", "{root}/pipe", "--null-class", "10", "--omega", "{root}/omega", "--out", OUT],
        "was trained for schedule",
    ),
    (
        "sample-steps-zero",
        [
            "sample",
            "--model",
            "{root}/pipe",
            "--null-class",
            "10",
            "--constant",
            "1",
            "--steps",
            "0",
            "--out",
            OUT,
        ],
        "must be >= 1",
    ),
    (
        "prompts-for-a-class-model",
        ["bank", "--model", "{root}/pipe", "--dataset", "{root}/prompts.safetensors", "--out", OUT],
        "takes no encoder_hidden_states",
    ),
    (
        "nan-in-prompt-file",
        ["bank", "--model", "{root}/pipe", "--dataset", "{root}/nan.safetensors", "--out", OUT],
        "NaN or Inf",
    ),
    (
        "omega-of-another-denoiser",
        ["sample", "--denoiser", "{root}/image-denoiser", "--omega", "{root}/omega", "--out", OUT],
        "was learned with denoiser",
    ),
    (
        "omega-of-fewer-classes",
        ["sample", "--denoiser", "{root}/image-denoiser-10", "--omega", "{root}/omega", "--any-denoiser"]
        + ["--out", OUT],
        "class ids must be in [0, 4)",
    ),
    (
        "omega-of-another-schedule-export",
        ["export", "--omega", "{root}/omega", "--model", "{root}/pipe", "--steps", "4", "--out", OUT],
        "was trained for schedule",
    ),
    (
        "class-omega-given-prompts",
        ["export", "--omega", "{root}/omega", "--prompts", "{root}/prompts.safetensors", "--steps", "4"]
        + ["--out", OUT],
        "was learned on class ids",
    ),
    (
        "prompt-omega-given-classes",
        ["export", "--omega", "{root}/omega-text", "--steps", "4", "--out", OUT],
        "takes condition embeddings",
    ),
    (
        "condition-width-for-omega",
        ["export", "--omega", "{root}/omega-text", "--prompts", "{root}/prompts-wide.safetensors"]
        + ["--steps", "4", "--out", OUT],
        "learned on 12-wide condition embeddings",
    ),
    (
        "condition-width-for-model",
        ["bank", "--model", "{root}/pipe-text", "--dataset", "{root}/prompts-wide.safetensors", "--out", OUT],
        "takes 12-wide prompt embeddings",
    ),
    (
        "integer-images",
        ["bank", "--model", "{root}/pipe-text", "--dataset", "{root}/prompts-int.safetensors", "--out", OUT],
        "must be floating point",
    ),
    (
        "null-class-out-of-range",
        ["bank", "--model", "{root}/pipe", "--dataset", "digits", "--null-class", "50", "--out", OUT],
        "null class must be one of the model's class ids [0, 11)",
    ),
    (
        "null-class-is-a-data-class",
        ["bank", "--model", "{root}/pipe", "--dataset", "digits", "--null-class", "3", "--out", OUT],
        "is one of digits's 10 classes",
    ),
    (
        "sample-unknown-class",
        ["sample", "--denoiser", "{root}/image-denoiser", "--constant", "1", "--classes", "9", "--out", OUT],
        "class ids must be in [0, 4)",
    ),
    (
        "omega-given-as-denoiser",
        ["sample", "--denoiser", "{root}/omega", "--constant", "1", "--out", OUT],
        "not a learnguide.image_denoiser checkpoint folder (it holds a learnguide.omega_net checkpoint)",
    ),
    (
        "classifier-of-other-data",
        ["evaluate", "--samples", "{root}", "--dataset", "digits", "--classifier", "{root}/classifier"],
        "is a classifier for other data",
    ),
    (
        "evaluate-without-a-metric",
        ["evaluate", "--samples", "{root}", "--dataset", "digits", "--out", OUT],
        "needs --classifier",
    ),
    (
        "samples-of-another-image-size",
        ["evaluate", "--samples", "{root}", "--dataset", "fashion-mnist"]
        + ["--classifier", "checkpoints/fashion-mnist/classifier", "--out", OUT],
        "fashion-mnist has images (1, 28, 28)",
    ),
    (
        "sample-constant-nan",
        [*SAMPLE_IMAGES, "--constant", "nan", "--out", OUT],
        "--constant must be a finite ω",
    ),
    (
        "sample-constant-inf",
        [*SAMPLE_IMAGES, "--constant", "inf", "--out", OUT],
        "--constant must be a finite ω",
    ),
    (
        "sample-batch-size-0",
        [*SAMPLE_IMAGES, "--constant", "1", "--batch-size", "0", "--out", OUT],
        "--batch-size must be >= 1",
    ),
    (
        "sample-nan-omega-network",
        [*SAMPLE_IMAGES, "--omega", "{root}/omega-nan", "--any-denoiser", "--out", OUT],
        "omega-nan/model.safetensors: body.",
    ),
    (
        "export-nan-omega-network",
        ["export", "--omega", "{root}/omega-nan", "--steps", "5", "--out", OUT],
        "omega-nan/model.safetensors: body.",
    ),
    (
        "sample-overflowing-omega-network",
        [*SAMPLE_IMAGES, "--omega", "{root}/omega-overflow", "--any-denoiser", "--out", OUT],
        "gave a non-finite ω",
    ),
    (
        "export-overflowing-omega-network",
        ["export", "--omega", "{root}/omega-overflow", "--steps", "5", "--out", OUT],
        "non-finite ω",
    ),
    (
        "evaluate-batch-size-0",
        [
            "evaluate",
            "--samples",
            "{root}",
            "--dataset",
            "digits",
            "--classifier",
            "checkpoints/digits/classifier",
        ]
        + ["--batch-size", "0", "--out", OUT],
        "--batch-size must be >= 1",
    ),
    ("sample-seed-1e20", [*SAMPLE_IMAGES, "--constant", "1", "--seed", "1e20", "--out", OUT], SEED),
    ("sample-seed-too-large", [*SAMPLE_IMAGES, "--constant", "1", "--seed", str(2**64), "--out", OUT], SEED),
    ("bank-seed-negative", ["bank", "--denoiser", "{root}/denoiser", "--out", OUT, "--seed", "-1"], SEED),
    ("online-seed-too-large", [*ONLINE, "--seed", str(2**32)], SEED),
    (
        "bank-particles-beyond-memory",
        ["bank", "--denoiser", "{root}/denoiser", "--out", OUT, "--particles", "100000000"],
        "of memory, more than the",
    ),
    ("online-particles-beyond-memory", [*ONLINE, "--particles", "100000000"], "lower --particles"),
    (
        "sample-per-class-beyond-memory",
        [*SAMPLE_IMAGES, "--constant", "1", "--per-class", str(10**12), "--out", OUT],
        "lower --per-class",
    ),
    (
        "sample-steps-beyond-memory",
        [*SAMPLE_IMAGES, "--constant", "1", "--steps", str(10**12), "--out", OUT],
        "lower the step count (--steps)",
    ),
    (
        "export-steps-1e8",
        ["export", "--omega", "{root}/omega", "--steps", "1e8", "--out", OUT],
        "argument --steps: invalid int value: '1e8'",
    ),
    (
        "export-steps-beyond-memory",
        ["export", "--omega", "{root}/omega", "--steps", "100000000", "--out", OUT],
        "lower the step count (--steps)",
    ),
    ("evaluate-nan-samples", [*EVALUATE, "{root}/samples-nan", "--out", OUT], "NaN or Inf in 1 of 4 images"),
    ("evaluate-no-samples", [*EVALUATE, "{root}/empty", "--out", OUT], "empty holds no samples"),
    (
        "evaluate-corrupted-samples",
        [*EVALUATE, "{root}/samples-corrupted", "--out", OUT],
        "samples-corrupted/samples.safetensors is corrupted",
    ),
    (
        "bank-nan-denoiser",
        ["bank", "--denoiser", "{root}/denoiser-nan", "--out", OUT],
        "denoiser-nan/model.safetensors: body.",
    ),
    ("online-nan-denoiser", [*ONLINE[:3], "{root}/denoiser-nan", *ONLINE[4:]], "holds NaN or Inf"),
    (
        "bank-nan-diffusers-model",
        ["bank", "--model", "{root}/pipe-nan", "--dataset", "digits", "--null-class", "10", "--items", "8"]
        + ["--out", OUT],
        "shard_00000.safetensors: stats holds NaN or Inf",
    ),
    (
        "sample-nan-denoiser",
        ["sample", "--denoiser", "{root}/image-denoiser-nan", "--constant", "1", "--out", OUT],
        "images holds NaN or Inf",
    ),
    ("fit-bank-with-inf", ["fit", "--bank", "{root}/bank-nan", "--out", OUT], "bank-nan: stats holds NaN"),
    (
        "experiment-denoisers-not-name-dir",
        ["experiment", "--dataset", "digits", "--denoisers", "foo", "--out", OUT],
        "--denoisers takes NAME=DIR items, got 'foo'",
    ),
    (
        "fit-kernel-without-online",
        ["fit", "--bank", "{root}/bank", "--kernel", "rbf", "--out", OUT],
        "learned online",
    ),
    (
        "fit-features-without-online",
        ["fit", "--bank", "{root}/bank", "--features", "{root}/classifier", "--out", OUT],
        "learned online",
    ),
    ("empty-out", ["bank", "--denoiser", "{root}/denoiser", "--out", ""], "--out is empty"),
    (
        "fit-into-a-denoiser",
        ["fit", "--bank", "{root}/bank", "--out", "{root}/denoiser"],
        "it holds a learnguide.mlp_denoiser checkpoint; choose another folder",
    ),
    (
        "fit-over-an-omega-network",
        ["fit", "--bank", "{root}/bank", "--out", "{root}/omega"],
        "already holds learnguide.omega_net; pass --overwrite",
    ),
    (
        "online-fit-over-a-bank-fitted-omega-network",
        ["fit", "--online", "--denoiser", "{root}/denoiser", "--out", "{root}/omega"],
        "already holds learnguide.omega_net; pass --overwrite",
    ),
    (
        "classifier-into-an-omega-network",
        ["train-classifier", "--dataset", "digits", "--out", "{root}/omega"],
        "it holds a learnguide.omega_net checkpoint",
    ),
    (
        "bank-into-a-pipeline",
        ["bank", "--denoiser", "{root}/denoiser", "--out", "{root}/pipe"],
        "it holds a diffusers pipeline",
    ),
    (
        "samples-into-a-bank",
        [*SAMPLE_IMAGES, "--constant", "1", "--out", "{root}/bank"],
        "it holds a transition bank",
    ),
    (
        "image-size-mismatch",
        ["bank", "--model", "{root}/pipe", "--dataset", "fashion-mnist", "--null-class", "10", "--out", OUT],
        "takes (1, 8, 8)",
    ),
    ("fit-lr-nan", ["fit", "--bank", "{root}/bank", "--out", OUT, "--lr", "nan"], "lr a finite number > 0"),
    ("online-lr-inf", [*ONLINE, "--lr", "inf"], "lr must be a finite number > 0, got inf"),
    ("online-init-omega-nan", [*ONLINE, "--init-omega", "nan"], "--init-omega (init_omega) must be a finite"),
    ("softplus-init-omega-0", [*ONLINE, "--output", "softplus", "--init-omega", "0"], "> 0 for a softplus"),
    ("fourier-features-negative", [*ONLINE, "--fourier-features", "-1"], "(fourier_features) must be >= 0"),
    ("balanced-classes-toy", [*ONLINE, "--balanced-classes"], "the toy ring data has no classes"),
    (
        "balanced-classes-bank",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--balanced-classes"],
        "--balanced-classes draws the data of an online fit",
    ),
    ("target-data-toy", [*ONLINE, "--target-data", "digits"], "--target-data draws class-labelled images"),
    (
        "target-data-bank",
        ["fit", "--bank", "{root}/bank", "--out", OUT, "--target-data", "digits"],
        "--target-data draws the data of an online fit",
    ),
    (
        "target-data-latent",
        ["fit", "--online", "--model", "{root}/pipe-latent", "--dataset", "digits", "--out", OUT]
        + ["--target-data", "digits"],
        "--target-data draws images in pixel space",
    ),
    (
        "target-data-prompts",
        ["fit", "--online", *TEXT_MODEL, "--dataset", "{root}/prompts-text.safetensors", "--out", OUT]
        + ["--target-data", "digits"],
        "--target-data draws class-labelled images; ",
    ),
    ("target-split-alone", [*ONLINE, "--target-split", "all"], "--target-split all picks a part of --target"),
    (
        "target-data-unknown",
        [*ONLINE[:3], "checkpoints/digits/under_trained", *ONLINE[4:], "--target-data", "{root}/nowhere"],
        "unknown dataset",
    ),
    (
        "train-denoiser-lr-nan",
        ["train-denoiser", "--dataset", "digits", "--out", OUT, "--lr", "nan"],
        "--lr (lr) must",
    ),
    ("rollout-zero", [*ONLINE, "--rollout", "0"], "--rollout must be >= 1, got 0"),
    ("rollout-beyond-the-grid", [*ONLINE, "--rollout", "9", "--grid-steps", "5"], "needs K <= --grid-steps"),
    (
        "prior-start-not-the-whole-trajectory",
        [*ONLINE, "--start", "prior", "--rollout", "3", "--grid-steps", "5"],
        "--start prior begins where the sampler does",
    ),
    ("on-policy-per-item", [*ONLINE, "--start", "on-policy"], "use --objective class-marginal"),
    (
        "refresh-zero",
        [*ONLINE, "--objective", "class-marginal", "--start", "on-policy", "--refresh", "0"],
        "refresh",
    ),
    (
        "experiment-constant-grid-nan",
        [*EXPERIMENT, "--constant-grid", "0", "nan"],
        "--constant-grid takes finite",
    ),
    ("experiment-eval-seeds-zero", [*EXPERIMENT, "--eval-seeds", "0"], "--eval-seeds must be >= 1, got 0"),
    (
        "experiment-tune-per-class-zero",
        [*EXPERIMENT, "--tune-per-class", "0"],
        "--tune-per-class must be >= 1",
    ),
    ("experiment-rollout-beyond-the-grid", [*EXPERIMENT, "--rollout", "30"], "needs K <= --grid-steps"),
    ("experiment-features-missing", [*EXPERIMENT, "--features", "{root}/nowhere"], "nowhere does not exist"),
    (
        "rgb-folder-for-a-grey-model",
        ["bank", "--model", "{root}/pipe", "--dataset", "{root}/rgb", "--null-class", "10", "--out", OUT],
        "rgb has 3-channel (colour) images; ",
    ),
    (
        "rgb-folder-for-a-grey-vae",
        ["bank", "--model", "{root}/pipe-latent", "--dataset", "{root}/rgb", "--out", OUT],
        "pipe-latent expects 1",
    ),
    (
        "rgb-folder-for-grey-samples",
        ["evaluate", "--samples", "{root}", "--dataset", "{root}/rgb", "--classifier", "{root}/classifier"]
        + ["--out", OUT],
        "rgb has 3-channel (colour) images; the samples in ",
    ),
    (
        "unreadable-image-in-a-folder",
        ["bank", "--model", "{root}/pipe", "--dataset", "{root}/broken-images", "--null-class", "10"]
        + ["--out", OUT],
        "broken-images/a/0.png: not an image file",
    ),
    (
        "config-num-classes-negative",
        ["bank", "--denoiser", "{root}/denoiser-classes-negative", "--out", OUT],
        "classes-negative/config.json: 'net.num_classes' must be an integer in [1, 16777216], got -3",
    ),
    (
        "config-hidden-1e12",
        ["export", "--omega", "{root}/omega-hidden-1e12", "--steps", "4", "--out", OUT],
        "omega-hidden-1e12/config.json: 'hidden' must be an integer",
    ),
    (
        "config-hidden-not-allocated",
        ["export", "--omega", "{root}/omega-hidden-million", "--steps", "4", "--out", OUT],
        "omega-hidden-million/model.safetensors does not match its config",
    ),
    (
        "config-schedule-5",
        ["export", "--omega", "{root}/omega-schedule-5", "--steps", "4", "--out", OUT],
        "omega-schedule-5/config.json: 'schedule' is not valid",
    ),
    (
        "config-in-channels-string",
        ["sample", "--denoiser", "{root}/image-denoiser-channels-string", "--constant", "1", "--out", OUT],
        "unet/config.json: 'in_channels' must be an integer in [1, 16777216], got \"1\"",
    ),
    (
        "config-unet-not-allocated",
        ["sample", "--denoiser", "{root}/image-denoiser-huge", "--constant", "1", "--out", OUT],
        "diffusion_pytorch_model.safetensors does not match its config",
    ),
    (
        "config-classifier-width-float",
        ["evaluate", "--samples", "{root}", "--dataset", "digits"]
        + ["--classifier", "{root}/classifier-width-float"],
        "classifier-width-float/config.json: 'net.width' must be an integer",
    ),
    (
        "manifest-particles-string",
        ["fit", "--bank", "{root}/bank-particles-string", "--out", OUT],
        "bank-particles-string/manifest.json: 'config.particles' must be an integer, got \"4\"",
    ),
    (
        "fit-into-a-classifier",
        ["fit", "--bank", "{root}/bank", "--out", "{root}/classifier"],
        "it holds a learnguide.classifier checkpoint; choose another folder",
    ),
    (
        "train-denoiser-width-0",
        [*TRAIN_DENOISER, "--width", "0"],
        "--width (width) must be a positive multiple",
    ),
    ("train-denoiser-width-12", [*TRAIN_DENOISER, "--width", "12"], "multiple of 8, got 12"),
    ("train-classifier-width-0", [*TRAIN_CLASSIFIER, "--width", "0"], "multiple of 8, got 0"),
    ("train-classifier-batch-size-0", [*TRAIN_CLASSIFIER, "--batch-size", "0"], "--batch-size must be >= 1"),
    ("train-classifier-lr-nan", [*TRAIN_CLASSIFIER, "--lr", "nan"], "--lr must be a finite number > 0"),
    (
        "bank-no-prompts",
        ["bank", *TEXT_MODEL, "--dataset", NO_PROMPTS, "--out", OUT],
        "none.safetensors holds no",
    ),
    (
        "sample-no-prompts",
        ["sample", *TEXT_MODEL, "--prompts", NO_PROMPTS, *CONSTANT_TO_OUT],
        "holds no prompts",
    ),
    (
        "captions-not-utf8",
        [*CLIP_FIT, "--captions", "{root}/latin1.txt"],
        "--captions {root}/latin1.txt is not UTF-8",
    ),
    (
        "export-into-a-folder",
        [*EXPORT, "--out", "{root}/empty"],
        "--out {root}/empty is a folder; export writes a",
    ),
    ("evaluate-into-a-folder", [*EVALUATE, "{root}", "--out", "{root}/empty"], "evaluate writes a JSON file"),
    ("model-without-null-class", [*PIXEL_BANK, "digits", "--out", OUT], "give --null-class (null_class=)"),
    (
        "image-folder-of-two-sizes",
        [*PIXEL_BANK, "{root}/mixed-sizes", "--null-class", "10", "--out", OUT],
        "mixed-sizes have different sizes [(6, 6), (8, 8)]; resize them to one size",
    ),
    ("dataset-of-one-class", [*CLASSIFIER_ON, "{root}/one-class", "--out", OUT], "one-class has one class"),
    (
        "classifier-without-test-images",
        [*CLASSIFIER_ON, "{root}/singletons", "--out", OUT],
        "singletons has no test images to measure the classifier on: give each class 2 or more",
    ),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_leaves_nothing_behind(files, tmp_path, capsys, argv, message):
    if "fashion-mnist" in argv and not FASHION_MNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    if "--captions" in argv:  # the captions are read once transformers is known to be there
        pytest.importorskip("transformers")
    message = message.replace("{root}", str(files))
    out = tmp_path / "out"
    before = sorted(p.name for p in files.rglob("*"))
    quiet = ["--no-progress"] * (argv[0] not in ("export", "evaluate"))
    code = main([a.format(root=files, out=out) for a in argv] + quiet)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("learnguide ")
    assert not out.exists()
    assert sorted(p.name for p in files.rglob("*")) == before  # inputs untouched, nothing written beside them


@pytest.fixture(params=["oserror", "safetensors"])
def disk_full(request, monkeypatch):
    """Every safetensors file written fails half-way as on a full disk: with an ``OSError`` (ENOSPC), as
    Python's writers raise it, or with the ``SafetensorError`` the safetensors writer raises."""
    import errno
    import os

    from safetensors import SafetensorError

    def save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        if request.param == "oserror":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("learnguide.checkpoints.save_file", save_file)


DISK_FULL = [  # (id, arguments): commands that write safetensors files into {out}
    ("bank", ["bank", "--denoiser", "{root}/denoiser", "--out", OUT, "--items", "64"]),
    ("fit", ["fit", "--bank", "{root}/bank", "--out", OUT, "--epochs", "1"]),
    ("fit-online", [*ONLINE, "--iterations", "2"]),
    ("sample", [*SAMPLE_IMAGES, "--constant", "1", "--steps", "2", "--per-class", "1", "--out", OUT]),
]


@pytest.mark.filterwarnings("ignore::learnguide.core.fit_checks.FitWarning")  # a 1-epoch fit's, not the error
@pytest.mark.parametrize("argv", [c[1] for c in DISK_FULL], ids=[c[0] for c in DISK_FULL])
def test_a_full_disk_names_the_output_and_leaves_nothing_behind(files, tmp_path, capsys, disk_full, argv):
    message = f"no space left on the device for --out {tmp_path / 'out'} (writing {tmp_path / 'out'}"
    test_bad_input_gives_one_line_and_leaves_nothing_behind(files, tmp_path, capsys, argv, message)


def test_a_full_disk_keeps_what_a_resumed_bank_held(files, tmp_path, capsys, disk_full):
    out = tmp_path / "bank"
    shutil.copytree(files / "bank-incomplete", out)
    (out / "shard_00001.safetensors").unlink()  # the run resumes with shard 1 and cannot write it
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bank = ["bank", "--denoiser", str(files / "denoiser"), "--out", str(out), "--items", "64"]
    assert main([*bank, "--shard-size", "32", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"learnguide bank: error: no space left on the device for --out {out} ("), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing removed, no stray .tmp


def test_a_clip_reward_without_transformers_says_what_to_install(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # ``import transformers`` raises ImportError
    message = "--reward clip needs the transformers package: pip install transformers=="
    test_bad_input_gives_one_line_and_leaves_nothing_behind(files, tmp_path, capsys, CLIP_FIT, message)


def test_any_denoiser_reuses_an_omega_network_learned_with_another_denoiser(files, tmp_path):
    smp = ["sample", "--denoiser", str(files / "image-denoiser"), "--omega", str(files / "omega")]
    smp += ["--steps", "2", "--per-class", "1", "--no-progress", "--out", str(tmp_path / "s")]
    assert main([*smp, "--any-denoiser"]) == 0 and (tmp_path / "s" / "samples.safetensors").is_file()


def test_at_least_twenty_bad_inputs_are_covered():
    assert len(CASES) >= 20


def test_weights_are_never_unpickled():
    """No code path calls torch.load without weights_only=True, or pickle.load on a user file."""
    from pathlib import Path

    import learnguide

    for path in Path(learnguide.__file__).parent.rglob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
            assert "pickle.load(" not in line and "pickle.loads(" not in line, f"{path}: {line.strip()}"
