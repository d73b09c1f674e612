"""Bad input through the command line: each gives a one-line error that says what is wrong, exit code 2, no
traceback, and leaves no output behind."""

import json
import shutil

import pytest
import torch
from diffusers import DDIMScheduler

from learnguide.cli import main
from learnguide.data.images import FASHION_MNIST_DIR
from learnguide.data.prompts import save_prompt_images
from learnguide.denoiser_training import DenoiserTrainingConfig, save_mlp_denoiser
from learnguide.schedules import VPCosine
from tiny_models import digits_unet


@pytest.fixture(scope="module")
def files(tmp_path_factory, request):
    """A toy denoiser, a finished bank, an ω-network, a pixel diffusers pipeline, and broken copies."""
    from learnguide.data.toy import ring_mixture
    from learnguide.denoisers import PredictionAdapter
    from learnguide.networks import MLPDenoiserNet

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
    from learnguide.classifier import ClassifierTrainingConfig, ImageClassifier, save_classifier

    save_classifier(
        ImageClassifier(2, 4, width=8), root / "classifier", {}, ClassifierTrainingConfig(), "toy"
    )
    # broken copies
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
    nan = root / "nan.safetensors"
    from safetensors.torch import save_file

    save_file({"prompt_embeds": prompts * float("nan"), "null_embedding": prompts[0]}, str(nan))
    return root


OUT = "{out}"
CASES = [  # (id, arguments with {root} and {out}, what the message must say)
    ("beta-above-2", ["fit", "--bank", "{root}/bank", "--out", OUT, "--beta", "3"], "beta must be in (0, 2]"),
    ("beta-zero", ["fit", "--bank", "{root}/bank", "--out", OUT, "--beta", "0"], "beta must be in (0, 2]"),
    ("lambda-above-1", ["fit", "--bank", "{root}/bank", "--out", OUT, "--lam", "1.5"], "must be in [0, 1]"),
    ("epochs-zero", ["fit", "--bank", "{root}/bank", "--out", OUT, "--epochs", "0"], "epochs and batch_size"),
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
        "other settings, schedule or denoiser",
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
        "image-size-mismatch",
        ["bank", "--model", "{root}/pipe", "--dataset", "fashion-mnist", "--null-class", "10", "--out", OUT],
        "takes (1, 8, 8)",
    ),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_leaves_nothing_behind(files, tmp_path, capsys, argv, message):
    if "fashion-mnist" in argv and not FASHION_MNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    out = tmp_path / "out"
    before = sorted(p.name for p in files.rglob("*"))
    code = main([a.format(root=files, out=out) for a in argv] + ["--no-progress"] * ("export" not in argv))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("learnguide ")
    assert not out.exists()
    assert sorted(p.name for p in files.rglob("*")) == before  # inputs untouched, nothing written beside them


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
