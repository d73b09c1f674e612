import pytest
import torch

from learnguide.core.guidance import ConstantGuidance
from learnguide.core.metrics import energy_distance
from learnguide.core.sampling import sample
from learnguide.core.schedules import RectifiedFlow, VPCosine, step_grid
from learnguide.core.transitions import ddim_step, guidance_coefficient, guided_x0, kernel_coefficients


class CountingDenoiser(torch.nn.Module):
    """Wraps a denoiser and records the batch size of every call."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x_t, t, cond):
        self.calls.append(x_t.shape[0])
        return self.inner(x_t, t, cond)

    def null_cond(self, cond):
        return self.inner.null_cond(cond)


def _sample_2d(denoiser, omega, cond, steps, seed):
    """Sampler output for 2-D data, and the initial noise x_T it started from."""
    out = sample(
        denoiser,
        VPCosine(),
        ConstantGuidance(omega),
        cond,
        (2,),
        steps=steps,
        generator=torch.Generator().manual_seed(seed),
    )
    return out, torch.randn(1, cond.shape[0], 2, generator=torch.Generator().manual_seed(seed))[0]


def test_zero_omega_is_plain_conditional_ddim(mlp_denoiser):
    counting = CountingDenoiser(mlp_denoiser)
    cond = torch.tensor([0, 1, 2, 3, 1])
    out, x = _sample_2d(counting, 0.0, cond, 8, 3)
    grid = step_grid(8)
    for i in range(8):
        t, s = grid[i].expand(5), grid[i + 1].expand(5)
        with torch.no_grad():
            x0 = mlp_denoiser(x, t.float(), cond)
        x = ddim_step(x, x0, s, t, VPCosine())
    assert torch.equal(out, x)
    assert counting.calls == [5] * 8  # the unconditional pass is skipped at ω = 0


def test_constant_omega_is_the_textbook_cfg_update(mlp_denoiser):
    g = torch.Generator().manual_seed(0)
    cond_out, uncond_out, omega = (
        torch.randn(6, 3, generator=g),
        torch.randn(6, 3, generator=g),
        torch.rand(6) * 4,
    )
    textbook = uncond_out + (1 + omega[:, None]) * (cond_out - uncond_out)
    assert torch.allclose(guided_x0(cond_out, uncond_out, omega), textbook, atol=1e-6)
    # and through the sampler: one step with ω = 2.5 uses the textbook mixture of both passes, batched
    counting = CountingDenoiser(mlp_denoiser)
    cond = torch.tensor([0, 3, 2])
    out, x = _sample_2d(counting, 2.5, cond, 1, 5)
    t, s = torch.full((3,), 0.99, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        c, u = mlp_denoiser(x, t.float(), cond), mlp_denoiser(x, t.float(), mlp_denoiser.null_cond(cond))
    expected = ddim_step(x, u + 3.5 * (c - u), s, t, VPCosine())
    assert torch.allclose(out, expected, atol=1e-6)
    assert counting.calls == [6]  # conditional and unconditional in one forward


@pytest.mark.parametrize("churn", [0.0, 0.5, 1.0])
def test_kernel_keeps_marginals_given_the_true_x0(churn):
    """docs/design.md §2: with x̂_0 = x_0, every churn maps p(x_t | x_0) to p(x_s | x_0) = N(α_s x_0, σ_s²)."""
    g = torch.Generator().manual_seed(7)
    n, sch = 200_000, VPCosine()
    x0 = torch.tensor([[1.5, -0.5]], dtype=torch.float64).expand(n, 2)
    t, s = torch.full((n,), 0.8, dtype=torch.float64), torch.full((n,), 0.3, dtype=torch.float64)
    x_t = sch.add_noise(x0, t, torch.randn(n, 2, generator=g, dtype=torch.float64))
    x_s = ddim_step(x_t, x0, s, t, sch, churn, torch.randn(n, 2, generator=g, dtype=torch.float64))
    assert torch.allclose(x_s.mean(0), sch.alpha(s[:1]) * x0[0], atol=0.01)
    assert torch.allclose(x_s.var(0), sch.sigma(s[:1]) ** 2 * torch.ones(2, dtype=torch.float64), rtol=0.02)


@pytest.mark.parametrize("t_val,s_val", [(0.94, 0.89), (0.54, 0.49), (0.15, 0.10)])
def test_ddpm_step_keeps_marginals_with_exact_denoiser(mixture, exact, t_val, s_val):
    """One DDPM step of the 20-step grid, with the exact posterior-mean denoiser, maps p_t samples to p_s
    samples (for large gaps it cannot: the posterior spread of x_0 is missing from a one-step kernel)."""
    g = torch.Generator().manual_seed(11)
    n = 4000
    labels = torch.arange(4).repeat_interleave(n // 4)
    sch = exact.schedule
    t, s = torch.full((n,), t_val, dtype=torch.float64), torch.full((n,), s_val, dtype=torch.float64)
    x_t = sch.add_noise(mixture.sample(labels, g), t, torch.randn(n, 2, generator=g, dtype=torch.float64))
    x_s = ddim_step(
        x_t,
        exact(x_t, t, labels),
        s,
        t,
        sch,
        churn=1.0,
        noise=torch.randn(n, 2, generator=g, dtype=torch.float64),
    )
    fresh = [
        sch.add_noise(mixture.sample(labels, g), s, torch.randn(n, 2, generator=g, dtype=torch.float64))
        for _ in range(2)
    ]
    noise_floor = energy_distance(fresh[0], fresh[1])
    assert energy_distance(x_s, fresh[0]) < 3 * noise_floor + 1e-3
    # the test has power: a denoiser that ignores the data (x̂_0 = 0) fails it where the data still shows
    if t_val < 0.9:
        wrong = ddim_step(
            x_t,
            torch.zeros_like(x_t),
            s,
            t,
            sch,
            churn=1.0,
            noise=torch.randn(n, 2, generator=g, dtype=torch.float64),
        )
        assert energy_distance(wrong, fresh[0]) > 10 * noise_floor


@pytest.mark.parametrize("churn", [0.0, 0.5, 1.0])
def test_affine_form_equals_direct_guided_step(churn):
    g = torch.Generator().manual_seed(2)
    b = 16
    x_t, xc, xu = (torch.randn(b, 3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t = 0.1 + 0.85 * torch.rand(b, generator=g, dtype=torch.float64)
    s = t * torch.rand(b, generator=g, dtype=torch.float64)
    z, omega = torch.randn(b, 3, 4, generator=g, dtype=torch.float64), 5 * torch.rand(b, generator=g) - 1
    a = ddim_step(x_t, xc, s, t, VPCosine(), churn=churn, noise=z)
    bb = guidance_coefficient(VPCosine(), s, t, churn)[:, None, None] * (xc - xu)
    direct = ddim_step(x_t, guided_x0(xc, xu, omega.double()), s, t, VPCosine(), churn=churn, noise=z)
    assert torch.allclose(a + omega.double()[:, None, None] * bb, direct, atol=1e-12)


def test_ddim_on_rectified_flow_is_an_euler_step():
    g = torch.Generator().manual_seed(4)
    x_t, x0 = (
        torch.randn(5, 2, generator=g, dtype=torch.float64),
        torch.randn(5, 2, generator=g, dtype=torch.float64),
    )
    t, s = torch.full((5,), 0.7, dtype=torch.float64), torch.full((5,), 0.4, dtype=torch.float64)
    velocity = (x_t - x0) / 0.7  # dx/dt = ε − x_0 with ε = (x_t − (1 − t) x_0) / t
    euler = x_t + (s - t)[:, None] * velocity
    assert torch.allclose(ddim_step(x_t, x0, s, t, RectifiedFlow()), euler)


def test_ddpm_coefficient_is_the_snr_ratio():
    s, t = torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.6], dtype=torch.float64)
    a_s, sig_s, a_t, sig_t, k = kernel_coefficients(VPCosine(), s, t, 1.0)
    assert torch.allclose(k, a_t * sig_s / (a_s * sig_t))
    assert torch.equal(kernel_coefficients(VPCosine(), s, t, 0.0)[4], torch.ones(1, dtype=torch.float64))


def test_kernel_rejects_bad_arguments():
    s, t = torch.tensor([0.5]), torch.tensor([0.4])
    with pytest.raises(ValueError, match="s < t"):
        ddim_step(torch.zeros(1, 2), torch.zeros(1, 2), s, t, VPCosine())
    with pytest.raises(ValueError, match="churn"):
        ddim_step(torch.zeros(1, 2), torch.zeros(1, 2), t, s, VPCosine(), churn=1.5)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(torch.zeros(1, 2), torch.zeros(1, 2), t, s, VPCosine(), churn=0.5)
