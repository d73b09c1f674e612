"""A user's frozen encoder as the feature map φ, and a latent model's particles in φ (docs/design.md §3.2)."""

import json
import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from known_omega import save_noisy_digits_classifier
from learnguide.checkpoints import CheckpointError
from learnguide.core import encoders
from learnguide.core.encoders import (
    class_path,
    encoder_features,
    load_encoder,
    register_encoder,
    registered_encoder,
    save_encoder,
)
from learnguide.integrations.diffusers_latents import LatentCodec, decoded_features
from tiny_models import save_latent_pipeline, tiny_vae

DIGITS = ["--denoiser", "checkpoints/digits/under_trained", "--dataset", "digits", "--no-progress"]
SEARCH = ["--samples", "20", "--grid-steps", "3", "--omegas", "0", "0.5", "1", "--seed", "0"]


@register_encoder
class ConvEncoder(nn.Module):
    """``[B, C, 8, 8] -> [B, width, 2, 2]``."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 3, padding=1)
        self.pool = nn.AvgPool2d(4)

    def forward(self, x):
        return self.pool(torch.tanh(self.conv(x)))


@register_encoder
class Pixels(nn.Module):
    """The identity: its features are the pixels (no weights)."""

    def forward(self, x):
        return x


@register_encoder
class TimeScaled(nn.Module):
    """A time-conditioned encoder: x · (1 + s)."""

    def forward(self, x, s):
        return x * (1 + s[:, None, None, None])


class Unlisted(nn.Module):
    """Not registered."""

    def forward(self, x):
        return x


def test_an_encoder_folder_loads_back_the_same_features(tmp_path):
    torch.manual_seed(0)
    module = ConvEncoder(1, 4)
    save_encoder(module, tmp_path / "enc", init={"channels": 1, "width": 4}, input_shape=(1, 8, 8))
    loaded, config = load_encoder(tmp_path / "enc")
    assert type(loaded) is ConvEncoder and config["input_shape"] == [1, 8, 8]
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["class"] == class_path(ConvEncoder)
    x, s = torch.randn(5, 1, 8, 8), torch.rand(5)
    features = encoder_features(loaded, config)(x, s)
    assert features.shape == (5, 16)
    assert torch.allclose(features, module(x).flatten(1))


def test_an_encoders_gradient_reaches_the_particles_only(tmp_path):
    save_encoder(ConvEncoder(1, 4), tmp_path / "enc", init={"channels": 1, "width": 4})
    module, config = load_encoder(tmp_path / "enc")
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    out = encoder_features(module, config)(x, torch.zeros(3))
    assert out.dtype == torch.float64
    out.square().sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    assert all(not p.requires_grad and p.grad is None for p in module.parameters())


def test_a_time_conditioned_encoder_sees_the_particles_time(tmp_path):
    save_encoder(TimeScaled(), tmp_path / "enc", time_conditioned=True)
    phi = encoder_features(*load_encoder(tmp_path / "enc"))
    x = torch.ones(2, 1, 2, 2)
    assert phi(x, torch.tensor([0.0, 1.0])).tolist() == [[1.0] * 4, [2.0] * 4]


def test_an_encoder_refuses_particles_of_another_shape(tmp_path):
    save_encoder(Pixels(), tmp_path / "enc", input_shape=(4, 4, 4))
    phi = encoder_features(*load_encoder(tmp_path / "enc"))
    with pytest.raises(ValueError, match=r"takes particles of shape \[4, 4, 4\], got \[1, 8, 8\]"):
        phi(torch.zeros(2, 1, 8, 8), torch.zeros(2))


def test_only_registered_classes_are_saved_or_loaded(tmp_path):
    with pytest.raises(ValueError, match="Unlisted is not registered"):
        save_encoder(Unlisted(), tmp_path / "unlisted")
    assert not (tmp_path / "unlisted").exists()
    save_encoder(Pixels(), tmp_path / "enc")
    config = json.loads((tmp_path / "enc" / "config.json").read_text())
    config["class"] = "os:system"  # a folder cannot make the loader import or call anything
    (tmp_path / "enc" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="names the class os:system, which is not registered"):
        load_encoder(tmp_path / "enc")


def test_an_encoder_whose_config_or_weights_do_not_fit_is_a_one_line_error(tmp_path):
    save_encoder(ConvEncoder(1, 4), tmp_path / "enc", init={"channels": 1, "width": 4})
    path = tmp_path / "enc" / "config.json"
    config = json.loads(path.read_text())
    for init, expected in (({"channels": 1, "width": 8}, "does not match its config"),
                           ({"channels": 1, "depth": 4}, "does not describe a valid model")):  # fmt: skip
        path.write_text(json.dumps({**config, "init": init}))
        with pytest.raises(CheckpointError, match=expected) as err:
            load_encoder(tmp_path / "enc")
        assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="is not a learnguide.encoder checkpoint folder"):
        load_encoder(tmp_path / "nowhere")


def test_an_installed_packages_entry_point_registers_its_class(monkeypatch, tmp_path):
    save_encoder(Pixels(), tmp_path / "enc")
    path = class_path(Pixels)
    monkeypatch.delitem(encoders._REGISTERED, path)
    monkeypatch.setattr(encoders, "entry_points", lambda group: [])
    assert registered_encoder(path) is None
    with pytest.raises(CheckpointError, match="not registered"):
        load_encoder(tmp_path / "enc")
    point = SimpleNamespace(name="pixels", value=path.replace(":", " : "), load=lambda: Pixels)
    monkeypatch.setattr(
        encoders, "entry_points", lambda group: [point] if group == "learnguide.encoders" else []
    )
    assert type(load_encoder(tmp_path / "enc")[0]) is Pixels
    monkeypatch.delitem(encoders._REGISTERED, path)

    def broken():
        raise ImportError("no module named my_pkg")

    monkeypatch.setattr(
        encoders, "entry_points", lambda group: [SimpleNamespace(name="p", value=path, load=broken)]
    )
    with pytest.raises(
        CheckpointError, match="does not load an nn.Module class .ImportError: no module named"
    ):
        load_encoder(tmp_path / "enc")


def test_the_line_search_measures_final_samples_in_an_encoders_features(tmp_path, capsys):
    from learnguide.apps.cli import main

    save_encoder(Pixels(), tmp_path / "pixels-encoder", input_shape=(1, 8, 8))
    losses = {}
    for name, features in (("encoder", ["--features", str(tmp_path / "pixels-encoder")]), ("pixels", [])):
        assert main(["fit", "--line-search", *DIGITS, *SEARCH, *features, "--out", str(tmp_path / name)]) == 0
        losses[name] = json.loads((tmp_path / name / "config.json").read_text())["extra"]["found"]["losses"]
    assert losses["encoder"] == pytest.approx(losses["pixels"], rel=1e-5)  # the identity encoder is pixels
    save_encoder(ConvEncoder(1, 4), tmp_path / "conv", init={"channels": 1, "width": 4})
    assert main(["fit", "--line-search", *DIGITS, *SEARCH, "--features", str(tmp_path / "conv"),
                 "--out", str(tmp_path / "conv-search")]) == 0  # fmt: skip
    conv = json.loads((tmp_path / "conv-search" / "config.json").read_text())["extra"]["found"]["losses"]
    assert conv != pytest.approx(losses["pixels"], rel=1e-3)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--feature-layer", "logits"], "--feature-layer picks a classifier's layers; {enc} is an encoder"),
        (["--features-of", "latents"], "--features-of latents measures a latent model's latents"),
    ],
)
def test_encoder_flags_that_do_not_apply_are_one_line_errors(tmp_path, capsys, extra, message):
    from learnguide.apps.cli import main

    save_encoder(Pixels(), tmp_path / "enc")
    args = ["fit", "--line-search", *DIGITS, *SEARCH, "--features", str(tmp_path / "enc"), *extra]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message.format(enc=tmp_path / "enc") in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_features_that_cannot_take_the_particles_are_refused_before_the_search(tmp_path, capsys):
    from learnguide.apps.cli import main

    save_encoder(ConvEncoder(3, 4), tmp_path / "rgb", init={"channels": 3, "width": 4})
    args = ["fit", "--line-search", *DIGITS, *SEARCH, "--features", str(tmp_path / "rgb")]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"--features {tmp_path / 'rgb'} cannot take this denoiser's particles of shape [1, 8, 8]" in err
    assert (
        main(["fit", "--line-search", *DIGITS, "--features-of", "latents", "--out", str(tmp_path / "o")]) == 2
    )
    assert "--features-of says how --features sees a latent model's particles: add --features" in (
        capsys.readouterr().err
    )


def test_decoded_features_pass_the_gradient_through_the_frozen_vae():
    codec = LatentCodec(tiny_vae(1))
    phi = decoded_features(lambda x, s: x.flatten(1), codec)
    z = torch.randn(2, 4, 4, 4, requires_grad=True)
    features = phi(z, torch.zeros(2))
    assert features.shape == (2, 64) and torch.allclose(features, codec.decode(z.detach()).flatten(1))
    features.sum().backward()
    assert bool(z.grad.abs().sum() > 0)
    assert all(p.grad is None for p in codec.parameters())


def test_a_latent_models_search_measures_decoded_images_or_latents(tmp_path):
    from learnguide.apps.cli import main

    folder = save_latent_pipeline(tmp_path / "pipe")
    save_noisy_digits_classifier(tmp_path / "clean", noisy=False)  # takes 8×8 grey images, not latents
    save_encoder(Pixels(), tmp_path / "latent-encoder", input_shape=(4, 4, 4))
    model = ["--model", str(folder), "--dataset", "digits", "--no-progress", *SEARCH]
    runs = {
        "decoded": ["--features", str(tmp_path / "clean")],
        "latents": ["--features", str(tmp_path / "latent-encoder"), "--features-of", "latents"],
        "pixels-of-latents": [],
    }
    losses = {}
    for name, features in runs.items():
        assert main(["fit", "--line-search", *model, *features, "--out", str(tmp_path / name)]) == 0
        losses[name] = json.loads((tmp_path / name / "config.json").read_text())["extra"]["found"]["losses"]
    assert losses["latents"] == pytest.approx(losses["pixels-of-latents"], rel=1e-5)
    assert losses["decoded"] != pytest.approx(losses["latents"], rel=1e-3)
    wrong = ["--features", str(tmp_path / "latent-encoder"), "--out", str(tmp_path / "wrong")]
    assert main(["fit", "--line-search", *model, *wrong]) == 2  # decoded images are [1, 8, 8]


def test_an_online_fit_compares_particles_in_a_time_conditioned_encoders_features(tmp_path, capsys):
    from learnguide.apps.cli import main
    from learnguide.core.guidance import OmegaNet

    save_encoder(TimeScaled(), tmp_path / "enc", time_conditioned=True, input_shape=(1, 8, 8))
    args = ["fit", "--online", *DIGITS, "--features", str(tmp_path / "enc"), "--iterations", "2"]
    assert main([*args, "--batch-size", "20", "--particles", "2", "--out", str(tmp_path / "omega")]) == 0
    saved = json.loads((tmp_path / "omega" / "config.json").read_text())["extra"]
    assert saved["features"] == str((tmp_path / "enc").resolve())
    assert OmegaNet.load(tmp_path / "omega").hparams["num_classes"] == 10
    assert re.search(r"denoiser evals and [1-9]\d* feature evals", capsys.readouterr().out)


@register_encoder
class Tied(nn.Module):
    """Two layers sharing one weight (safetensors refuses shared tensors unless they are copied)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
        self.second.weight = self.first.weight

    def forward(self, x):
        return self.second(self.first(x.flatten(1)))


def test_an_encoder_with_tied_weights_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    module = Tied()
    save_encoder(module, tmp_path / "enc", input_shape=(1, 2, 2))
    x = torch.randn(3, 1, 2, 2)
    assert torch.allclose(encoder_features(*load_encoder(tmp_path / "enc"))(x, torch.zeros(3)), module(x))
