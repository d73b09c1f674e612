import json

import pytest
import torch

from learnguide.apps.cli import main
from learnguide.core.denoiser_training import DenoiserTrainingConfig, save_mlp_denoiser
from learnguide.core.guidance import OmegaNet


@pytest.fixture
def denoiser_dir(tmp_path, mlp_denoiser, mixture):
    return save_mlp_denoiser(
        mlp_denoiser, tmp_path / "denoiser", DenoiserTrainingConfig(), mixture.fingerprint()
    )


def test_bank_then_fit_through_the_cli(tmp_path, denoiser_dir, capsys):
    bank, fitted = tmp_path / "bank", tmp_path / "omega"
    args = [
        "bank",
        "--denoiser",
        str(denoiser_dir),
        "--out",
        str(bank),
        "--items",
        "600",
        "--shard-size",
        "256",
    ]
    assert main([*args, "--no-progress"]) == 0
    assert "this run wrote 3 shards" in capsys.readouterr().out
    assert main([*args, "--no-progress"]) == 0  # a finished bank: nothing left to do
    assert "this run wrote 0 shards" in capsys.readouterr().out
    fit = [
        "fit",
        "--bank",
        str(bank),
        "--out",
        str(fitted),
        "--epochs",
        "3",
        "--diagnostics",
        "--no-progress",
    ]
    assert main(fit) == 0
    net = OmegaNet.load(fitted)
    assert net.hparams["num_classes"] == 4
    assert net(torch.tensor([0, 1]), torch.tensor([0.2, 0.4]), torch.tensor([0.5, 0.6])).shape == (2,)
    table = json.loads((fitted / "diagnostics.json").read_text())
    assert len(table["omega"]) == 4 and table["omega"][0][0] is None  # no item has t < 0.1
    assert (fitted / "omega_heatmap.png").stat().st_size > 1000
    capsys.readouterr()
    frozen = tmp_path / "frozen"  # a fit that cannot move: its ω stays the constant it started at
    assert main([*fit[:4], str(frozen), "--epochs", "1", "--lr", "1e-12", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "learnguide fit: warning: the fitted ω is constant (1) over every input" in err
    saved = json.loads((frozen / "config.json").read_text())["extra"]["warnings"]
    assert len(saved) == 1 and saved[0] in err
    refit = [*fit[:4], str(frozen), "--epochs", "2", "--no-progress"]
    assert main(refit) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert main([*refit, "--overwrite"]) == 0  # the same kind, replaced on purpose
    assert json.loads((frozen / "config.json").read_text())["extra"]["fit"]["epochs"] == 2


def test_bank_and_fit_errors_are_one_line(tmp_path, denoiser_dir, capsys):
    assert main(["fit", "--bank", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not a transition bank" in capsys.readouterr().err
    bank = ["bank", "--denoiser", str(denoiser_dir), "--out", str(tmp_path / "b"), "--no-progress"]
    assert main([*bank, "--items", "64", "--particles", "1"]) == 2
    assert "at least 2 particles" in capsys.readouterr().err
    assert main([*bank, "--items", "64"]) == 0
    assert main([*bank, "--items", "128"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings" in err


def test_bank_from_an_image_denoiser_needs_and_uses_its_dataset(tmp_path, capsys):
    from learnguide.data.images import load_digits_dataset
    from learnguide.images.denoisers import train_image_denoiser

    digits = load_digits_dataset()
    ckpt = tmp_path / "unet"
    train_image_denoiser(digits, ckpt, DenoiserTrainingConfig(steps=1, batch_size=4), width=8, progress=False)
    args = [
        "bank",
        "--denoiser",
        str(ckpt),
        "--out",
        str(tmp_path / "bank"),
        "--items",
        "64",
        "--no-progress",
    ]
    assert main(args) == 2
    assert "pass --dataset" in capsys.readouterr().err
    assert main([*args, "--dataset", "digits", "--batch-size", "32"]) == 0
    manifest = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    assert manifest["denoiser_id"] and manifest["config"]["items"] == 64
