import pytest
import torch

from learnguide.core.guidance import OmegaNet
from learnguide.core.items import simulate_items
from learnguide.core.objectives import (
    check_energy_params,
    energy_loss_from_stats,
    energy_loss_particles,
    marginal_energy_loss,
    pair_statistics,
)
from learnguide.core.online import Discrepancy, OnlineConfig, train_omega_online
from learnguide.core.schedules import VPCosine


def _items(n=6, m=4, shape=(3,), seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn((n, m, *shape), generator=g, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize("beta,lam", [(1.0, 1.0), (1.75, 1.0), (2.0, 0.0), (0.5, 0.3)])
@pytest.mark.parametrize("m,shape", [(2, (1,)), (4, (3,)), (5, (2, 3))])
def test_statistics_loss_equals_particle_loss(beta, lam, m, shape):
    a, b, x_true = _items(m=m, shape=shape)
    omega = torch.linspace(-1.0, 3.0, 6, dtype=torch.float64)
    direct = energy_loss_particles(a + omega.view(-1, 1, *[1] * len(shape)) * b, x_true, beta, lam)
    via_stats = energy_loss_from_stats(pair_statistics(a, b, x_true), omega, m, beta, lam)
    assert torch.allclose(via_stats, direct, rtol=1e-10, atol=1e-10)


def test_particle_loss_is_eq9_written_out():
    a, b, x_true = _items(n=1, m=3)
    g, x = a[0] + 0.7 * b[0], x_true[0]
    att = sum((g[j] - x[k]).norm() ** 1.5 for j in range(3) for k in range(3)) / 9
    rep = sum((g[j] - g[k]).norm() ** 1.5 for j in range(3) for k in range(3) if j != k) / 6
    expected = att - 0.5 * 0.8 * rep
    assert torch.allclose(energy_loss_particles(g[None], x[None], 1.5, 0.8), expected[None])


@pytest.mark.parametrize("beta,lam", [(1.75, 1.0), (2.0, 0.0), (1.0, 0.5)])
def test_loss_gradient_matches_finite_difference(beta, lam):
    a, b, x_true = _items(n=5, m=4, seed=1)
    stats = pair_statistics(a, b, x_true)
    omega = torch.tensor([0.3, 1.1, -0.4, 2.0, 0.9], dtype=torch.float64, requires_grad=True)
    energy_loss_from_stats(stats, omega, 4, beta, lam).sum().backward()
    h = 1e-6
    fd = (
        energy_loss_from_stats(stats, omega.detach() + h, 4, beta, lam)
        - energy_loss_from_stats(stats, omega.detach() - h, 4, beta, lam)
    ) / (2 * h)
    assert torch.allclose(omega.grad, fd, rtol=1e-6, atol=1e-8)


def test_loss_gradient_wrt_omega_network_matches_finite_difference(exact, mixture):
    """End to end: d loss / d(one ω-network weight) through ω(c, s, t) equals a finite difference."""
    torch.manual_seed(0)
    net = OmegaNet(
        VPCosine(), num_classes=4, hidden=16, layers=2, fourier_features=2, output="identity"
    ).double()
    torch.nn.init.normal_(net.body[-1].weight, std=0.3)
    g = torch.Generator().manual_seed(3)
    x0, c = mixture.sample_batch(32, g)
    s, t = torch.full((32,), 0.3, dtype=torch.float64), torch.full((32,), 0.6, dtype=torch.float64)
    a, b, x_true, _, _ = simulate_items(exact, VPCosine(), x0, c, s, t, 4, 1.0, g)
    config = OnlineConfig(particles=4)

    def loss():
        return Discrepancy(config).affine(net(c, s, t).double(), a, b, x_true)

    param = net.body[-1].weight
    loss().backward()
    analytic = param.grad[0, 0].item()
    with torch.no_grad():
        param[0, 0] += 1e-6
        up = loss().item()
        param[0, 0] -= 2e-6
        down = loss().item()
    assert analytic == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-9)


def test_no_gradient_reaches_the_denoiser(mlp_denoiser, mixture):
    before = {k: v.clone() for k, v in mlp_denoiser.state_dict().items()}
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    start = [p.clone() for p in net.parameters()]

    train_omega_online(
        net, mlp_denoiser, mixture.data_sampler(), OnlineConfig(iterations=3, batch_size=16), progress=False
    )
    assert all(p.grad is None for p in mlp_denoiser.parameters())
    assert all(torch.equal(v, mlp_denoiser.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(p, q) for p, q in zip(start, net.parameters(), strict=True))  # ω did learn


def test_marginal_loss_pools_the_batch():
    a, b, x_true = _items(n=3, m=2)
    g = a + b
    pooled = energy_loss_particles(g.reshape(1, 6, 3), x_true.reshape(1, 6, 3), 1.75, 1.0)[0]
    assert torch.allclose(marginal_energy_loss(g, x_true), pooled)
    assert not torch.allclose(marginal_energy_loss(g, x_true), energy_loss_particles(g, x_true).mean())


def test_energy_parameters_are_validated():
    for beta, lam in [(0.0, 1.0), (2.5, 1.0), (1.0, -0.1), (1.0, 1.5)]:
        with pytest.raises(ValueError):
            check_energy_params(beta, lam)
    with pytest.raises(ValueError, match="pairs"):
        energy_loss_from_stats(torch.zeros(2, 10, 3), torch.zeros(2), 4)


def test_marginal_loss_in_groups_averages_the_blocks():
    a, b, x_true = _items(n=4, m=2)
    g = a + 0.5 * b
    blocks = [marginal_energy_loss(g[i : i + 2], x_true[i : i + 2]) for i in (0, 2)]
    assert torch.allclose(marginal_energy_loss(g, x_true, groups=2), torch.stack(blocks).mean())
    with pytest.raises(ValueError, match="equal groups"):
        marginal_energy_loss(g, x_true, groups=3)
