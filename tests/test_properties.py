"""Property-based tests (hypothesis) of the kernel and the losses on random shapes and values."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnguide.core.objectives import energy_loss_particles, marginal_energy_loss, reward_loss
from learnguide.core.schedules import RectifiedFlow, VPCosine, expand_as
from learnguide.core.transitions import ddim_step, guidance_coefficient, guided_x0, kernel_coefficients

SCHEDULES = st.sampled_from([VPCosine(), RectifiedFlow()])


def times(draw_s, draw_gap, batch):
    s = torch.full((batch,), draw_s, dtype=torch.float64)
    return s, s + draw_gap


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 4),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    s=st.floats(0.0, 0.6),
    gap=st.floats(0.05, 0.39),
    churn=st.floats(0.0, 1.0),
    omega=st.floats(-1.0, 4.0),
    schedule=SCHEDULES,
    seed=st.integers(0, 10_000),
)
def test_the_guided_step_is_affine_in_omega_and_equals_ddim_on_the_guided_prediction(
    batch, shape, s, gap, churn, omega, schedule, seed
):
    g = torch.Generator().manual_seed(seed)
    x_t, x0_c, x0_u, z = (torch.randn(batch, *shape, generator=g, dtype=torch.float64) for _ in range(4))
    s_, t_ = times(s, gap, batch)
    w = torch.full((batch,), omega, dtype=torch.float64)
    a = ddim_step(x_t, x0_c, s_, t_, schedule, churn=churn, noise=z)
    b = expand_as(guidance_coefficient(schedule, s_, t_, churn), x_t) * (x0_c - x0_u)
    direct = ddim_step(x_t, guided_x0(x0_c, x0_u, w), s_, t_, schedule, churn=churn, noise=z)
    assert a.shape == b.shape == x_t.shape
    assert torch.allclose(a + omega * b, direct, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    d=st.integers(1, 5),
    s=st.floats(0.02, 0.6),
    gap=st.floats(0.05, 0.37),
    churn=st.floats(0.0, 1.0),
    schedule=SCHEDULES,
    seed=st.integers(0, 10_000),
)
def test_an_exact_prediction_lands_on_the_right_marginal(batch, d, s, gap, churn, schedule, seed):
    """x_t = α_t x_0 + σ_t ε with x̂_0 = x_0 steps to α_s x_0 + σ_s (k ε + sqrt(1 − k²) z): the noise part has
    unit variance per coordinate, so the marginal is q(x_s | x_0) for every churn (docs/design.md §2)."""
    g = torch.Generator().manual_seed(seed)
    x0, eps, z = (torch.randn(batch, d, generator=g, dtype=torch.float64) for _ in range(3))
    s_, t_ = times(s, gap, batch)
    x_t = schedule.alpha(t_)[:, None] * x0 + schedule.sigma(t_)[:, None] * eps
    x_s = ddim_step(x_t, x0, s_, t_, schedule, churn=churn, noise=z)
    noise_part = (x_s - schedule.alpha(s_)[:, None] * x0) / schedule.sigma(s_)[:, None]
    k = kernel_coefficients(schedule, s_, t_, churn)[-1][:, None]
    assert bool(((k >= 0) & (k <= 1)).all())
    assert torch.allclose(noise_part, k * eps + (1 - k**2).sqrt() * z, atol=1e-8)
    if churn == 0.0:
        assert torch.allclose(noise_part, eps, atol=1e-8)  # deterministic DDIM keeps the noise direction


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    m=st.integers(2, 5),
    d=st.integers(1, 6),
    beta=st.floats(0.1, 2.0),
    lam=st.floats(0.0, 1.0),
    shift=st.floats(-5.0, 5.0),
    scale=st.floats(0.1, 10.0),
    seed=st.integers(0, 10_000),
)
def test_energy_loss_is_invariant_to_translation_permutation_and_scales_with_distance(
    n, m, d, beta, lam, shift, scale, seed
):
    g = torch.Generator().manual_seed(seed)
    guided, true = (torch.randn(n, m, d, generator=g, dtype=torch.float64) for _ in range(2))
    loss = energy_loss_particles(guided, true, beta, lam)
    assert loss.shape == (n,) and bool(loss.isfinite().all())
    assert torch.allclose(energy_loss_particles(guided + shift, true + shift, beta, lam), loss, atol=1e-9)
    perm = torch.randperm(m, generator=g)
    assert torch.allclose(energy_loss_particles(guided[:, perm], true, beta, lam), loss, atol=1e-9)
    scaled = energy_loss_particles(guided * scale, true * scale, beta, lam)
    assert torch.allclose(scaled, loss * scale**beta, rtol=1e-6, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    groups=st.integers(1, 4),
    per=st.integers(1, 3),
    m=st.integers(2, 4),
    d=st.integers(1, 4),
    beta=st.floats(0.1, 2.0),
    seed=st.integers(0, 10_000),
)
def test_marginal_loss_pools_particles_within_groups(groups, per, m, d, beta, seed):
    g = torch.Generator().manual_seed(seed)
    guided, true = (torch.randn(groups * per, m, d, generator=g, dtype=torch.float64) for _ in range(2))
    pooled = marginal_energy_loss(guided, true, beta, 1.0, groups)
    by_hand = energy_loss_particles(
        guided.reshape(groups, per * m, d), true.reshape(groups, per * m, d), beta, 1.0
    ).mean()
    assert torch.allclose(pooled, by_hand)
    if per == 1:  # groups of one item are the per-item loss
        assert torch.allclose(pooled, energy_loss_particles(guided, true, beta, 1.0).mean())


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 4),
    m=st.integers(1, 3),
    d=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_reward_loss_is_minus_the_mean_reward_of_the_guided_prediction(n, m, d, seed):
    g = torch.Generator().manual_seed(seed)
    x0_cond, delta = (torch.randn(n, m, d, generator=g, dtype=torch.float64) for _ in range(2))
    omega = torch.randn(n, generator=g, dtype=torch.float64)
    cond = torch.randint(0, 3, (n,), generator=g)
    target = torch.randn(3, d, generator=g, dtype=torch.float64)

    def reward(x, c):  # −‖x − target_c‖²: differentiable, depends on the condition
        return -(x - target[c]).pow(2).sum(-1)

    value = reward_loss(reward, x0_cond, delta, omega, cond)
    guided = x0_cond + omega[:, None, None] * delta
    expected = (guided - target[cond][:, None]).pow(2).sum(-1).mean()
    assert torch.allclose(value, expected)
