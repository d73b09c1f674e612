"""What the commands do, called from Python (apps.loading, apps.sample_folder, apps.learning)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from learnguide.apps.learning import export_omega, fit_bank_folder, make_bank
from learnguide.apps.loading import DenoiserSource, build_reward, pick_conditions
from learnguide.apps.sample_folder import SampleRequest, evaluate_folder, sample_to_folder
from learnguide.core.banks import BankConfig, FitConfig
from learnguide.core.denoiser_training import DenoiserTrainingConfig, save_mlp_denoiser
from learnguide.core.guidance import OmegaNet
from learnguide.data.images import load_digits_dataset
from learnguide.integrations.rewards import ClassifierLogProb

DIGITS = "checkpoints/digits"


@pytest.fixture
def toy_source(tmp_path, mlp_denoiser, mixture):
    folder = save_mlp_denoiser(
        mlp_denoiser, tmp_path / "toy", DenoiserTrainingConfig(), mixture.fingerprint()
    )
    return DenoiserSource(denoiser=str(folder))


def test_a_denoiser_source_loads_a_toy_or_an_image_denoiser_with_its_data(toy_source):
    toy = toy_source.load()
    x0, cond = toy.sample_data(5, torch.Generator().manual_seed(0))
    assert x0.shape == (5, 2) and cond.shape == (5,) and len(toy.denoiser_id) > 8
    image = DenoiserSource(denoiser=f"{DIGITS}/under_trained", dataset="digits").load()
    x0, cond = image.sample_data(3, torch.Generator().manual_seed(0))
    assert x0.shape == (3, 1, 8, 8) and image.denoiser(x0, torch.full((3,), 0.5), cond).shape == x0.shape
    recorded = DenoiserSource(denoiser=f"{DIGITS}/under_trained").load()  # learnguide.json names digits
    assert recorded.denoiser_id == image.denoiser_id
    with pytest.raises(ValueError, match="--denoiser DIR or --model DIR"):
        DenoiserSource().load()


def test_target_data_replaces_the_training_split_as_the_data_drawn(toy_source, tmp_path):
    training = DenoiserSource(denoiser=f"{DIGITS}/under_trained").load().sample_data  # the training split
    source = DenoiserSource(denoiser=f"{DIGITS}/under_trained", dataset="digits", target_data="digits")
    x0, cond = source.load().sample_data(64, torch.Generator().manual_seed(0))
    digits = load_digits_dataset()
    in_test = (x0.flatten(1)[:, None] == digits.test_images.flatten(1)[None]).all(-1)  # [64, N_test]
    assert bool(in_test.any(1).all()) and bool((digits.test_labels[in_test.float().argmax(1)] == cond).all())
    x_train, _ = training(64, torch.Generator().manual_seed(0))
    assert not torch.equal(x0, x_train)
    everything = dataclasses.replace(source, target_split="all", balanced_classes=True).load()
    assert torch.equal(everything.sample_data(20, torch.Generator())[1], torch.arange(20) % 10)
    _write_class_folders(tmp_path / "two", 8)  # 2 classes of 8 × 8 grey images
    with pytest.raises(ValueError, match="has 2 classes of images .* digits has 10"):
        dataclasses.replace(source, target_data=str(tmp_path / "two")).load()
    with pytest.raises(ValueError, match="--target-data draws class-labelled images; the toy"):
        dataclasses.replace(toy_source, target_data="digits").load()


def _write_class_folders(root, size: int) -> None:
    """Two class sub-folders of ``root``, each with three grey PNGs ``size`` × ``size``."""
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((size, size), 40 * k + i, dtype=np.uint8)).save(root / name / f"{i}.png")


def test_pick_conditions_takes_class_ids_or_prompts_and_checks_their_range():
    cond, names = pick_conditions([2, 0], 3)
    assert cond.tolist() == [2, 0] and names == ["2", "0"]
    assert pick_conditions(None, 2)[0].tolist() == [0, 1]
    prompts, names = pick_conditions([1], None, torch.randn(2, 4, 6))
    assert prompts.shape == (1, 4, 6) and names == ["1"]
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
        pick_conditions([3], 3)
    with pytest.raises(ValueError, match="pass --prompts"):
        pick_conditions(None, None)


def test_build_reward_loads_a_classifier_reward_and_names_what_is_missing():
    assert isinstance(build_reward("classifier", f"{DIGITS}/classifier"), ClassifierLogProb)
    with pytest.raises(ValueError, match="needs --reward-model"):
        build_reward("classifier", None)
    with pytest.raises(ValueError, match="needs --prompts"):
        build_reward("clip", "some/clip")


def test_bank_fit_and_export_from_python(tmp_path, toy_source):
    record = make_bank(toy_source, tmp_path / "bank", BankConfig(items=256, shard_size=128), progress=False)
    assert record.shards_written == 2
    net, fit = fit_bank_folder(tmp_path / "bank", tmp_path / "omega", FitConfig(epochs=2), diagnostics=True)
    assert isinstance(net, OmegaNet) and len(fit.val_losses) == 2
    assert (tmp_path / "omega" / "omega_heatmap.png").is_file()
    assert OmegaNet.load(tmp_path / "omega").hparams["num_classes"] == 4
    table = export_omega(tmp_path / "omega", 5, tmp_path / "omega.json", classes=[1, 3])
    assert set(table["omega"]) == {"1", "3"} and len(table["omega"]["1"]) == 5
    assert json.loads((tmp_path / "omega.json").read_text())["steps"] == 5


def test_sample_to_folder_then_evaluate_it(tmp_path):
    request = SampleRequest(denoiser=f"{DIGITS}/under_trained", constant=0.5, steps=3, classes=[0, 7])
    request = dataclasses.replace(request, per_class=3, batch_size=4)
    done = sample_to_folder(request, tmp_path / "s", progress=False)
    samples = load_file(str(tmp_path / "s" / "samples.safetensors"))
    assert done["n"] == 6 and samples["images"].shape == (6, 1, 8, 8)
    assert samples["labels"].tolist() == [0, 0, 0, 7, 7, 7] and not (tmp_path / "s" / "partial").exists()
    scores = evaluate_folder(tmp_path / "s", "digits", f"{DIGITS}/classifier", cache=str(tmp_path / "c"))
    assert scores["n"] == 6 and scores["fd"] > 0 and 0 <= scores["accuracy"] <= 1
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["fd"] == scores["fd"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(constant=1.0, steps=0), "--steps, --per-class and --batch-size must be >= 1"),
        (dict(constant=1.0, batch_size=0), "--steps, --per-class and --batch-size must be >= 1"),
        (dict(), "exactly one of --omega or --constant"),
        (dict(constant=1.0, prompts="p.safetensors"), "--prompts needs --model"),
    ],
)
def test_a_sample_request_is_validated(bad, message):
    with pytest.raises(ValueError, match=message):
        SampleRequest(denoiser=f"{DIGITS}/under_trained", **bad).validate()
