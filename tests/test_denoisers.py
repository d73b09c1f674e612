import pytest
import torch

from learnguide.core.denoisers import ExactMixtureDenoiser, PredictionAdapter, prediction_target, to_x0
from learnguide.core.networks import MLPDenoiserNet
from learnguide.core.schedules import RectifiedFlow, VPCosine, VPLinear
from learnguide.data.toy import GaussianMixture


@pytest.mark.parametrize("schedule", [VPCosine(), VPLinear(), RectifiedFlow()])
@pytest.mark.parametrize("prediction", ["x0", "eps", "v", "flow"])
def test_to_x0_inverts_the_training_target(schedule, prediction):
    g = torch.Generator().manual_seed(0)
    x0, noise = (
        torch.randn(64, 3, generator=g, dtype=torch.float64),
        torch.randn(64, 3, generator=g, dtype=torch.float64),
    )
    t = 0.02 + 0.96 * torch.rand(64, generator=g, dtype=torch.float64)
    x_t = schedule.add_noise(x0, t, noise)
    target = prediction_target(x0, noise, t, schedule, prediction)
    assert torch.allclose(to_x0(target, x_t, t, schedule, prediction), x0, atol=1e-8)


def test_unknown_prediction_is_an_error():
    with pytest.raises(ValueError, match="unknown prediction"):
        to_x0(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1) * 0.5, VPCosine(), "score")


def test_prediction_adapter_wraps_network_output():
    net = MLPDenoiserNet(2, 3, hidden=16, layers=2, fourier_features=2)
    model = PredictionAdapter(net, VPCosine(), "eps", null_id=3)
    x_t, t, c = torch.randn(5, 2), torch.rand(5) * 0.9 + 0.05, torch.tensor([0, 1, 2, 0, 1])
    expected = to_x0(net(x_t, t, c), x_t, t, VPCosine(), "eps")
    assert torch.allclose(model(x_t, t, c), expected)
    assert model.null_cond(c).tolist() == [3] * 5
    with pytest.raises(ValueError):
        PredictionAdapter(net, VPCosine(), "eps")
    with pytest.raises(ValueError):
        PredictionAdapter(net, VPCosine(), "score", null_id=3)


def test_exact_denoiser_single_gaussian_posterior_mean():
    mu, std = torch.tensor([[1.0, -2.0]], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    mix = GaussianMixture(mu, std, torch.ones(1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    sch = VPCosine()
    den = ExactMixtureDenoiser(mix, sch)
    x_t, t = torch.randn(7, 2, dtype=torch.float64), torch.full((7,), 0.4, dtype=torch.float64)
    a, s = sch.alpha(t)[:, None], sch.sigma(t)[:, None]
    expected = mu + a * 0.25 / (a**2 * 0.25 + s**2) * (x_t - a * mu)  # Gaussian conjugacy
    assert torch.allclose(den(x_t, t, torch.zeros(7, dtype=torch.long)), expected)


def test_exact_denoiser_is_the_posterior_mean(mixture, exact):
    """Monte-Carlo check: E[x_0 | x_t] estimated by importance weighting agrees with the closed form."""
    g = torch.Generator().manual_seed(1)
    labels = torch.zeros(200_000, dtype=torch.long)
    x0 = mixture.sample(labels, g)
    t = torch.tensor([0.5], dtype=torch.float64)
    a, s = exact.schedule.alpha(t), exact.schedule.sigma(t)
    x_t = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    w = torch.softmax(-((x_t - a * x0) ** 2).sum(1) / (2 * s**2), dim=0)
    mc = (w[:, None] * x0).sum(0)
    closed = exact(x_t, t, torch.tensor([0]))[0]
    assert torch.allclose(mc, closed, atol=0.02)


def test_exact_denoiser_null_class_is_the_unconditional_mixture(mixture, exact):
    t = torch.full((4,), 0.3, dtype=torch.float64)
    x_t = torch.randn(4, 2, dtype=torch.float64)
    uncond = GaussianMixture(
        mixture.means, mixture.stds, mixture.unconditional_weights()[None], torch.ones(1, dtype=torch.float64)
    )
    expected = ExactMixtureDenoiser(uncond, exact.schedule)(x_t, t, torch.zeros(4, dtype=torch.long))
    assert torch.allclose(exact(x_t, t, exact.null_cond(torch.zeros(4, dtype=torch.long))), expected)


def test_weakened_denoiser_is_undone_by_omega_star(exact):
    from learnguide.core.denoisers import WeakenedDenoiser
    from learnguide.core.transitions import guided_x0

    weak = WeakenedDenoiser(exact, 0.25)
    x, t, c = torch.randn(8, 2, dtype=torch.float64), torch.rand(8, dtype=torch.float64), torch.arange(8) % 4
    guided = guided_x0(weak(x, t, c), weak(x, t, weak.null_cond(c)), torch.full((8,), 0.25 / 0.75))
    assert torch.allclose(guided, exact(x, t, c))
    assert torch.equal(weak(x, t, weak.null_cond(c)), exact(x, t, exact.null_cond(c)))
    with pytest.raises(ValueError):
        WeakenedDenoiser(exact, 1.0)
