import pytest
import torch

from learnguide.core.schedules import (
    LOG_SNR_CLAMP,
    RectifiedFlow,
    VPCosine,
    VPLinear,
    get_schedule,
    step_grid,
)

SCHEDULES = [VPCosine(), VPLinear(), RectifiedFlow()]
T = torch.linspace(0.001, 0.999, 101, dtype=torch.float64)


@pytest.mark.parametrize("schedule", [VPCosine(), VPLinear()])
def test_variance_preserving(schedule):
    assert torch.allclose(schedule.alpha(T) ** 2 + schedule.sigma(T) ** 2, torch.ones_like(T))


def test_rectified_flow_is_linear():
    rf = RectifiedFlow()
    assert torch.allclose(rf.alpha(T), 1 - T) and torch.allclose(rf.sigma(T), T)


def test_vp_linear_matches_ddpm_beta_integral():
    sch = VPLinear(beta_min=0.1, beta_max=20.0)
    t = torch.tensor([0.3], dtype=torch.float64)
    integral = 0.1 * t + 0.5 * (20.0 - 0.1) * t**2  # ∫_0^t β(u) du with β linear
    assert torch.allclose(sch.alpha(t), torch.exp(-0.5 * integral))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_derivatives_match_finite_differences(schedule):
    h = 1e-6
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    assert torch.allclose(
        schedule.d_alpha(t), (schedule.alpha(t + h) - schedule.alpha(t - h)) / (2 * h), atol=1e-6
    )
    assert torch.allclose(
        schedule.d_sigma(t), (schedule.sigma(t + h) - schedule.sigma(t - h)) / (2 * h), atol=1e-6
    )


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_log_snr_decreases_and_is_clamped(schedule):
    lam = schedule.log_snr(torch.cat([torch.tensor([0.0], dtype=torch.float64), T, torch.tensor([1.0])]))
    assert bool((lam[1:-1].diff() < 0).all())
    assert lam.abs().max() <= LOG_SNR_CLAMP and torch.isfinite(lam).all()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_add_noise_and_config_round_trip(schedule):
    x0, noise, t = torch.randn(5, 3), torch.randn(5, 3), torch.rand(5)
    expected = schedule.alpha(t)[:, None] * x0 + schedule.sigma(t)[:, None] * noise
    assert torch.allclose(schedule.add_noise(x0, t, noise), expected.float())
    assert get_schedule(schedule.config()).config() == schedule.config()


def test_get_schedule_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown schedule"):
        get_schedule("sigmoid")


def test_step_grid():
    grid = step_grid(10, t_max=0.99)
    assert grid.shape == (11,) and grid.dtype == torch.float64
    assert grid[0] == 0.99 and grid[-1] == 0.0 and bool((grid.diff() < 0).all())
    with pytest.raises(ValueError):
        step_grid(0)
