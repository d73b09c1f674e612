import json

import pytest
import torch

from learnguide.checkpoints import CheckpointError
from learnguide.core.denoiser_training import DenoiserTrainingConfig, train_denoiser
from learnguide.core.schedules import VPCosine
from learnguide.data.images import ImageDataset
from learnguide.images.classifier import (
    ClassifierTrainingConfig,
    ImageClassifier,
    frozen_features,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
)
from learnguide.images.denoisers import (
    build_image_denoiser,
    image_denoiser_fingerprint,
    load_image_denoiser,
    save_image_denoiser,
    train_image_denoiser,
    unet_config,
)


def tiny_dataset(n: int = 40, classes: int = 3) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    images = (labels[:, None, None, None] / classes - 0.5 + 0.1 * torch.randn(n, 1, 8, 8, generator=g)).clamp(
        -1, 1
    )
    return ImageDataset("tiny", images, labels, images[:12], labels[:12], tuple("abc"[:classes]))


def tiny_denoiser(classes: int = 3):
    torch.manual_seed(0)
    return build_image_denoiser(unet_config((1, 8, 8), classes, width=8), VPCosine(), "v")


def test_unet_config_sizes_and_null_class():
    small, large = unet_config((1, 8, 8), 10), unet_config((1, 28, 28), 10)
    assert small["num_class_embeds"] == 11 and len(small["block_out_channels"]) == 2
    assert len(large["block_out_channels"]) == 3 and large["sample_size"] == [28, 28]
    model = tiny_denoiser()
    assert model.null_id == 3 and model.net.image_shape == (1, 8, 8)
    out = model(torch.randn(4, 1, 8, 8), torch.rand(4), torch.tensor([0, 1, 2, 3]))
    assert out.shape == (4, 1, 8, 8) and torch.isfinite(out).all()


def test_image_denoiser_save_load_roundtrip_and_errors(tmp_path):
    model = tiny_denoiser().eval()
    save_image_denoiser(model, tmp_path / "ckpt", DenoiserTrainingConfig(steps=1), "data-1", ("a", "b", "c"))
    assert (tmp_path / "ckpt" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_image_denoiser(tmp_path / "ckpt", data_id="data-1")
    x, t, c = torch.randn(3, 1, 8, 8), torch.rand(3), torch.tensor([0, 2, 3])
    with torch.no_grad():
        assert torch.equal(model(x, t, c), loaded(x, t, c))
    assert loaded.prediction == "v" and loaded.null_id == 3
    assert len(image_denoiser_fingerprint(tmp_path / "ckpt")) == 16
    with pytest.raises(CheckpointError, match="other data"):
        load_image_denoiser(tmp_path / "ckpt", data_id="data-2")
    with pytest.raises(CheckpointError, match="is missing"):
        load_image_denoiser(tmp_path)
    weights = tmp_path / "ckpt" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(
        CheckpointError, match="diffusion_pytorch_model.safetensors is corrupted or truncated"
    ):
        load_image_denoiser(tmp_path / "ckpt")


class Interrupt(Exception):
    pass


def test_denoiser_training_resumes_to_the_uninterrupted_result(tmp_path):
    data = tiny_dataset()
    config = DenoiserTrainingConfig(steps=6, batch_size=8, ema_decay=0.9, seed=3)
    full = tiny_denoiser()
    losses = train_denoiser(full, data.data_sampler(), config, progress=False)

    calls = {"n": 0}

    def dies_after_four(n, gen):
        calls["n"] += 1
        if calls["n"] > 4:
            raise Interrupt
        return data.data_sampler()(n, gen)

    resumed = tiny_denoiser()
    with pytest.raises(Interrupt):
        train_denoiser(resumed, dies_after_four, config, False, state_dir=tmp_path, checkpoint_every=2)
    resumed = tiny_denoiser()  # a fresh process: nothing but the state on disk survives
    resumed_losses = train_denoiser(resumed, data.data_sampler(), config, False, state_dir=tmp_path)
    assert resumed_losses == losses
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="other settings"):
        train_denoiser(tiny_denoiser(), data.data_sampler(), DenoiserTrainingConfig(steps=7), False, tmp_path)


def test_ema_weights_differ_from_raw_and_decay_is_validated():
    data = tiny_dataset()
    raw, ema = tiny_denoiser(), tiny_denoiser()
    train_denoiser(raw, data.data_sampler(), DenoiserTrainingConfig(steps=20, batch_size=8), False)
    train_denoiser(
        ema, data.data_sampler(), DenoiserTrainingConfig(steps=20, batch_size=8, ema_decay=0.9), False
    )
    diffs = [(a - b).abs().max() for a, b in zip(raw.net.parameters(), ema.net.parameters(), strict=True)]
    assert max(diffs) > 0
    with pytest.raises(ValueError, match="ema_decay"):
        DenoiserTrainingConfig(ema_decay=1.0).validate()


def test_train_image_denoiser_writes_a_loadable_checkpoint(tmp_path):
    data = tiny_dataset()
    train_image_denoiser(
        data, tmp_path, DenoiserTrainingConfig(steps=2, batch_size=4), width=8, progress=False
    )
    meta = json.loads((tmp_path / "learnguide.json").read_text())
    assert meta["data_id"] == data.fingerprint() and meta["class_names"] == ["a", "b", "c"]
    assert load_image_denoiser(tmp_path, data_id=data.fingerprint()).null_id == 3


def test_classifier_features_roundtrip_and_data_check(tmp_path):
    torch.manual_seed(0)
    model = ImageClassifier(1, 3, width=8)
    save_classifier(model, tmp_path, {"test_accuracy": 0.5}, ClassifierTrainingConfig(), "data-1")
    loaded = load_classifier(tmp_path, data_id="data-1")
    x = torch.randn(5, 1, 8, 8)
    features, logits = predict(loaded, x)
    assert features.shape == (5, 32) and logits.shape == (5, 3)
    assert torch.equal(logits, model.eval()(x).detach())
    with pytest.raises(CheckpointError, match="other data"):
        load_classifier(tmp_path, data_id="data-2")


def test_a_classifier_trains_when_called_under_no_grad():
    """Callers that sample under no_grad may train a missing classifier first (it raised before)."""
    config = ClassifierTrainingConfig(epochs=1)
    with torch.no_grad():
        model, record = train_classifier(tiny_dataset(), config, width=8, progress=False)
        assert not torch.is_grad_enabled()  # the caller's mode is back
    again, _ = train_classifier(tiny_dataset(), config, width=8, progress=False)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    assert 0.0 <= record["test_accuracy"] <= 1.0


def test_a_noisy_classifier_is_time_conditioned_and_learns_from_noised_images(tmp_path):
    from learnguide.data.images import load_dataset

    data = load_dataset("digits")
    config = ClassifierTrainingConfig(epochs=10, noisy=True)
    model, record = train_classifier(data, config, width=16, progress=False)
    assert model.config["schedule"] == VPCosine().config() and record["test_accuracy_at_s_0.5"] > 0.5
    x, s = data.test_images[:6], torch.full((6,), 0.3, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs the time s"):
        model.features(x)
    assert not torch.equal(model.features(x, s), model.features(x, s + 0.5))  # the time input is used
    save_classifier(model, tmp_path, record, config, data.fingerprint())
    features, _ = predict(load_classifier(tmp_path), x, s=s)
    assert torch.allclose(features, model.features(x, s).detach(), atol=1e-6)


@pytest.mark.parametrize(
    ("arch", "norm", "width"),
    [
        ("lenet", None, 128),
        ("cnn-spatial", torch.nn.GroupNorm, 128),
        ("cnn-batchnorm", torch.nn.BatchNorm2d, 32),
    ],
)
def test_the_other_architectures_learn_and_round_trip(tmp_path, arch, norm, width):
    from learnguide.apps.cli import main
    from learnguide.data.images import load_dataset

    args = ["train-classifier", "--dataset", "digits", "--arch", arch, "--epochs", "8", "--seed", "1"]
    assert main([*args, "--width", "8", "--out", str(tmp_path / arch), "--no-progress"]) == 0
    data = load_dataset("digits")
    model = load_classifier(tmp_path / arch, data_id=data.fingerprint())
    assert model.config["arch"] == arch
    norms = {type(m) for m in model.modules() if isinstance(m, torch.nn.GroupNorm | torch.nn.BatchNorm2d)}
    assert norms == ({norm} if norm else set())
    for m in model.modules():  # BatchNorm's running statistics are saved and loaded with the weights
        if isinstance(m, torch.nn.BatchNorm2d):
            assert not torch.allclose(m.running_var, torch.ones_like(m.running_var)) and not m.training
    features, logits = predict(model, data.test_images)
    assert features.shape == (len(data.test_images), width)  # F for --width 8
    phi, x = frozen_features(model), data.test_images[:8]  # an image's features do not depend on its batch
    assert torch.allclose(phi(x[:3], torch.zeros(3)), phi(x, torch.zeros(8))[:3], atol=1e-5)
    assert (logits.argmax(1) == data.test_labels).float().mean() > 0.8
    assert ImageClassifier(1, 10, width=8, arch=arch).features(torch.randn(2, 1, 28, 28)).shape == (2, width)
    with pytest.raises(ValueError, match="only the cnn"):
        ImageClassifier(1, 10, schedule=VPCosine().config(), arch=arch)
    with pytest.raises(ValueError, match="unknown classifier architecture"):
        ImageClassifier(1, 10, arch="vit")


def test_cnn_spatial_features_see_where_a_stroke_is_which_global_pooling_does_not():
    torch.manual_seed(0)
    image = torch.zeros(2, 1, 28, 28)  # a background the zero padding continues: no border effects
    image[0, :, 8:12, 8:12] = 1.0  # the same blob, moved by twice the conv blocks' total stride (4)
    image[1, :, 16:20, 16:20] = 1.0
    with torch.no_grad():
        pooled = ImageClassifier(1, 10, width=8).features(image)
        spatial = ImageClassifier(1, 10, width=8, arch="cnn-spatial").features(image)
    assert torch.allclose(pooled[0], pooled[1], atol=1e-5)
    assert (spatial[0] - spatial[1]).norm() > 0.1 * spatial[0].norm()
