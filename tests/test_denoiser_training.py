import json

import pytest
import torch

from learnguide.checkpoints import CheckpointError
from learnguide.core.denoiser_training import (
    DenoiserTrainingConfig,
    load_mlp_denoiser,
    save_mlp_denoiser,
    train_denoiser,
)
from learnguide.core.denoisers import PredictionAdapter
from learnguide.core.networks import MLPDenoiserNet
from learnguide.core.schedules import VPCosine


def _model():
    torch.manual_seed(0)
    return PredictionAdapter(
        MLPDenoiserNet(2, 4, hidden=32, layers=3, fourier_features=4), VPCosine(), "v", null_id=4
    )


def test_training_lowers_the_loss_and_is_seeded(mixture):
    config = DenoiserTrainingConfig(steps=150, batch_size=128, label_noise=0.3)
    a, b = _model(), _model()
    g = torch.Generator().manual_seed(99)
    x0, c = mixture.data_sampler()(2048, g)
    t, noise = torch.rand(2048, generator=g) * 0.98 + 0.01, torch.randn(2048, 2, generator=g)
    x_t = a.schedule.add_noise(x0, t, noise)

    def held_out():
        with torch.no_grad():
            return (a(x_t, t, c) - x0).pow(2).mean().item()

    before = held_out()
    train_denoiser(a, mixture.data_sampler(), config, progress=False)
    train_denoiser(b, mixture.data_sampler(), config, progress=False)
    assert held_out() < 0.9 * before
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(
    "bad", [dict(steps=0), dict(label_dropout=1.5), dict(label_noise=-0.1), dict(lr=0.0)]
)
def test_training_config_is_validated(bad, mixture):
    with pytest.raises(ValueError):
        train_denoiser(_model(), mixture.data_sampler(), DenoiserTrainingConfig(**bad), progress=False)


def test_save_load_round_trip_and_errors(tmp_path, mixture):
    model = _model()
    save_mlp_denoiser(model, tmp_path / "d", DenoiserTrainingConfig(steps=1), mixture.fingerprint())
    loaded = load_mlp_denoiser(tmp_path / "d", data_id=mixture.fingerprint())
    x, t, c = torch.randn(6, 2), torch.rand(6), torch.tensor([0, 1, 2, 3, 4, 0])
    assert torch.equal(loaded(x, t, c), model(x, t, c))
    with pytest.raises(CheckpointError, match="other data"):
        load_mlp_denoiser(tmp_path / "d", data_id="something else")
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    cfg["prediction"] = "score"
    (tmp_path / "d" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json: 'prediction' must be one of"):
        load_mlp_denoiser(tmp_path / "d")


def test_training_under_a_caller_s_no_grad_trains_as_usual(mixture):
    """A caller that samples under no_grad may train a denoiser (backward raised before)."""
    config = DenoiserTrainingConfig(steps=3, batch_size=16)
    a, b = _model(), _model()
    with torch.no_grad():
        train_denoiser(a, mixture.data_sampler(), config, progress=False)
        assert not torch.is_grad_enabled()  # the caller's mode is back
    train_denoiser(b, mixture.data_sampler(), config, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
