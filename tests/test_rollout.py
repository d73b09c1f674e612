"""K-step rollouts (docs/design.md §3.4): K guided steps on the sampler's grid, differentiated through the
denoiser."""

import itertools
from dataclasses import replace

import pytest
import torch

from known_omega import assert_recovered_on_the_sampler_grid, weakened_toy
from learnguide.core.guidance import OmegaNet
from learnguide.core.items import guided_rollout, simulate_items
from learnguide.core.online import Discrepancy, OnlineConfig, rollout_batch, train_omega_online
from learnguide.core.schedules import VPCosine


@pytest.mark.parametrize("objective", ["energy", "class-marginal"])
def test_a_one_step_rollout_is_the_papers_step_and_loss(mixture, exact, objective):
    x0, cond = mixture.data_sampler()(16, torch.Generator().manual_seed(0))
    cond = cond.sort().values
    s, t = torch.full((16,), 0.3, dtype=torch.float64), torch.full((16,), 0.7, dtype=torch.float64)
    noise = torch.randn((3, 16 * 4, 2), generator=torch.Generator().manual_seed(1), dtype=x0.dtype)
    items = simulate_items(exact, VPCosine(), x0, cond, s, t, 4, 1.0, torch.Generator(), noise)
    omega = torch.linspace(0.0, 2.0, 16, requires_grad=True)
    x_t = VPCosine().add_noise(x0.repeat_interleave(4, 0), t.repeat_interleave(4), noise[1])
    times = torch.stack([t, s]).repeat_interleave(4, 1)
    per_particle = omega.repeat_interleave(4)
    rolled = guided_rollout(
        exact,
        VPCosine(),
        lambda c, s_, t_: per_particle,
        x_t,
        cond.repeat_interleave(4),
        times,
        1.0,
        noise[2:],
    ).reshape(16, 4, 2)
    assert torch.allclose(rolled, items.a + omega[:, None, None] * items.b, atol=1e-6)
    discrepancy = Discrepancy(OnlineConfig(objective=objective, group_size=4))
    one_step = discrepancy.affine(omega, items.a, items.b, items.x_true)
    assert torch.allclose(discrepancy(rolled, items.x_true).double(), one_step.double(), rtol=1e-5)
    (g_rolled,) = torch.autograd.grad(discrepancy(rolled, items.x_true), omega)
    (g_step,) = torch.autograd.grad(discrepancy.affine(omega, items.a, items.b, items.x_true), omega)
    assert torch.allclose(g_rolled.double(), g_step.double(), rtol=1e-4, atol=1e-7)


def test_a_later_steps_omega_reaches_through_the_denoiser(mixture, exact):
    """In a 2-step rollout the first step's ω moves the second step's denoiser input: its gradient differs
    from what a detached second step would give."""
    x0, cond = mixture.data_sampler()(8, torch.Generator().manual_seed(0))
    times = torch.tensor([[0.8], [0.6], [0.4]], dtype=torch.float64).expand(3, 8)
    noise = torch.randn((2, 8, 2), generator=torch.Generator().manual_seed(2), dtype=x0.dtype)
    x_t = VPCosine().add_noise(x0, times[0], torch.randn(8, 2, dtype=x0.dtype))
    w = torch.tensor([0.5, 1.5], requires_grad=True)

    def omega(c, s, t):
        return torch.where(t > 0.7, w[0], w[1]).expand(len(c))

    out = guided_rollout(exact, VPCosine(), omega, x_t, cond, times, 1.0, noise)
    (grad,) = torch.autograd.grad(out.pow(2).sum(), w)
    with torch.no_grad():
        mid = guided_rollout(exact, VPCosine(), omega, x_t, cond, times[:2], 1.0, noise[:1])
    detached = guided_rollout(exact, VPCosine(), omega, mid.requires_grad_(), cond, times[1:], 1.0, noise[1:])
    (grad_mid,) = torch.autograd.grad(detached.pow(2).sum(), mid)
    assert grad[0].abs() > 0 and grad[1].abs() > 0 and grad_mid.abs().sum() > 0


def test_rollout_training_leaves_the_denoiser_untouched(mlp_denoiser, mixture):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    before = [p.detach().clone() for p in mlp_denoiser.parameters()]
    config = OnlineConfig(iterations=2, batch_size=16, particles=2, rollout=3, grid_steps=6)
    record = train_omega_online(net, mlp_denoiser, mixture.data_sampler(), config, progress=False)
    assert record.denoiser_evals == 2 * 2 * 3 * 16 * 2 and record.denoiser_calls == 2 * 3
    assert all(p.grad is None for p in mlp_denoiser.parameters())
    assert all(torch.equal(p, q) for p, q in zip(mlp_denoiser.parameters(), before, strict=True))


@pytest.mark.parametrize(
    "bad",
    [
        dict(rollout=0),
        dict(rollout=4, grid_steps=3),
        dict(rollout=2, start="on-policy", objective="class-marginal"),
        dict(rollout=2, reward_weight=1.0),
        dict(rollout=2, objective="marginal", reference=0),
        dict(rollout=2, objective="class-marginal", reference=2),
        dict(rollout=1, objective="marginal", reference=2),
        dict(rollout=3, grid_steps=4, start="prior"),
        dict(rollout=1, grid_steps=1, start="prior"),
    ],
)
def test_rollout_settings_are_validated(bad):
    with pytest.raises(ValueError):
        OnlineConfig(**bad).validate(reward=lambda x, c: x.sum((1,)))


def _rollout(exact, net, data, config, seed):
    """:func:`rollout_batch` of the exact toy denoiser under VP-cosine, guided by ``net``, drawn from a new
    generator of ``seed``."""
    return rollout_batch(exact, VPCosine(), net.fit_omega, data, config, torch.Generator().manual_seed(seed))


def test_a_larger_reference_keeps_the_samples_and_adds_data_noised_to_their_times(mixture, exact):
    """reference = r: the same rollouts and the batch's own true items first, then (r − 1)·n more data items,
    true item k noised to the s of item k mod n."""
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    ones = lambda n, gen: (torch.ones(n, 2, dtype=torch.float64), torch.arange(n) % 4)  # noqa: E731
    config = OnlineConfig(batch_size=64, particles=1, objective="marginal", rollout=2, grid_steps=4)
    batches = [_rollout(exact, net, ones, replace(config, reference=r), seed=3) for r in (1, 9)]
    (guided, true, _, s, _), (guided_9, true_9, _, s_9, _) = batches
    assert torch.equal(guided, guided_9) and torch.equal(s, s_9) and torch.equal(true, true_9[:64])
    assert true_9.shape == (9 * 64, 1, 2)
    times = s.repeat(9)[64:]
    alpha, sigma = VPCosine().alpha(times)[:, None], VPCosine().sigma(times)[:, None]
    noisy = sigma[:, 0] > 0
    assert torch.equal(true_9[64:, 0][~noisy], torch.ones_like(true_9[64:, 0][~noisy]))  # s = 0: the data
    standard = (true_9[64:, 0] - alpha)[noisy] / sigma[noisy]  # ε ~ N(0, 1) where s > 0
    assert noisy.sum() > 100 and standard.mean().abs() < 0.15 and 0.85 < standard.std() < 1.15


def test_a_prior_start_begins_each_rollout_where_the_sampler_does(mixture, exact, monkeypatch):
    """start = "prior": every rollout starts from N(0, I) at t = 1 − ζ whatever the data (the samples do not
    change when the data do), and runs the whole grid; start = "data" starts from the data noised there."""
    from learnguide.core import online

    starts = []

    def recording(denoiser, schedule, omega, x_t, *rest):
        starts.append((x_t.clone(), rest[1][0].clone()))  # the start and its times [B]
        return guided_rollout(denoiser, schedule, omega, x_t, *rest)

    monkeypatch.setattr(online, "guided_rollout", recording)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    config = OnlineConfig(batch_size=512, particles=1, objective="marginal", rollout=4, grid_steps=4)
    guided = {}
    for start, shift in itertools.product(("prior", "data"), (0.0, 3.0)):
        data = lambda n, gen, c=shift: (torch.full((n, 2), c, dtype=torch.float64), torch.arange(n) % 4)  # noqa: E731
        guided[start, shift] = _rollout(exact, net, data, replace(config, start=start), seed=1)[0]
    assert torch.equal(guided["prior", 0.0], guided["prior", 3.0])
    assert not torch.allclose(guided["data", 0.0], guided["data", 3.0])
    x_t, t = starts[0]
    assert torch.all(t == config.sampler_grid()[0]) and abs(float(x_t.mean())) < 0.1
    assert abs(float(x_t.std()) - 1.0) < 0.05  # N(0, I), not σ_t·ε + α_t·x0
    assert not torch.equal(starts[2][0], x_t)  # the data start is σ_t·ε + α_t·x0


def test_a_larger_reference_lowers_the_noise_of_the_pooled_gradient(mixture, exact):
    """The gradient in a constant ω of the pooled rollout loss, over independent balanced batches, varies less
    when the same number of samples is compared with 8× the data; a reference of another class mix is
    refused (it adds noise: 1.5× the spread on this toy)."""
    omega = torch.tensor(0.5, requires_grad=True)
    constant = lambda c, s, t: omega.expand(len(c))  # noqa: E731

    def balanced(n, gen):  # class i mod 4, as ImageDataset.data_sampler(balanced=True)
        labels = torch.arange(n) % 4
        return mixture.sample(labels, gen).float(), labels

    spread = {}
    for r in (1, 8):
        config = OnlineConfig(
            batch_size=32, particles=1, objective="marginal", rollout=4, grid_steps=4, reference=r
        )
        grads = []
        for seed in range(64):
            guided, true, _, s, _ = rollout_batch(
                exact, VPCosine(), constant, balanced, config, torch.Generator().manual_seed(seed)
            )
            grads.append(torch.autograd.grad(Discrepancy(config)(guided, true, s), omega)[0])
        spread[r] = torch.stack(grads).std()
    assert spread[8] < 0.9 * spread[1]


@pytest.mark.parametrize("strata", [True, False])
def test_a_pooled_rollout_fit_weighs_its_pairs_by_class_unless_told(mixture, exact, strata):
    """The fit's first loss is the discrepancy of its first batch with the items' class ids (class_strata) or
    without them; the two differ on a balanced batch, and class-marginal groups ignore the ids."""

    def balanced(n, gen):
        labels = torch.arange(n) % 4
        return mixture.sample(labels, gen).float(), labels

    config = OnlineConfig(
        iterations=1,
        batch_size=16,
        particles=1,
        objective="marginal",
        rollout=2,
        grid_steps=4,
        class_strata=strata,
    )
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        nets.append(OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2))
    guided, true, cond, s, _ = rollout_batch(
        exact, VPCosine(), nets[0].fit_omega, balanced, config, torch.Generator().manual_seed(config.seed)
    )
    with_ids = Discrepancy(replace(config, class_strata=True))(guided, true, s, cond)
    without = Discrepancy(config)(guided, true, s)
    record = train_omega_online(nets[1], exact, balanced, config, progress=False)
    assert record.losses[0] == pytest.approx(float(with_ids if strata else without), rel=1e-6)
    assert torch.equal(Discrepancy(config)(guided, true, s, cond), with_ids if strata else without)
    assert abs(float(with_ids - without)) > 1e-4
    grouped = replace(config, objective="class-marginal", group_size=4)
    assert torch.equal(Discrepancy(grouped)(guided, true, s, cond), Discrepancy(grouped)(guided, true, s))


@pytest.mark.slow
def test_a_three_step_rollout_recovers_a_class_and_time_dependent_omega():
    """The weakened toy's ω* (tests/test_recovery.py) makes every step exact, so K exact steps are too."""
    mixture, denoiser = weakened_toy()
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3)
    config = OnlineConfig(iterations=300, batch_size=256, rollout=3)
    record = train_omega_online(net, denoiser, mixture.data_sampler(), config, progress=False)
    assert record.warnings == []
    assert_recovered_on_the_sampler_grid(net, denoiser)


def test_fit_learns_with_a_rollout_through_the_cli(tmp_path):
    import json

    from learnguide.apps.cli import main

    args = ["fit", "--online", "--denoiser", "checkpoints/digits/under_trained", "--dataset", "digits"]
    args += [
        "--rollout",
        "2",
        "--grid-steps",
        "5",
        "--iterations",
        "2",
        "--batch-size",
        "8",
        "--particles",
        "2",
    ]
    assert main([*args, "--out", str(tmp_path / "omega"), "--no-progress"]) == 0
    online = json.loads((tmp_path / "omega" / "config.json").read_text())["extra"]["online"]
    assert (
        online["rollout"] == 2 and online["grid_steps"] == 5 and online["churn"] == 0.0
    )  # the sampler's DDIM
    assert main([*args[:-10], "--rollout", "9", "--grid-steps", "5", "--out", str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()
    whole = [*args[:-10], "--rollout", "3", "--grid-steps", "3", "--iterations", "1", "--batch-size", "8"]
    assert main([*whole, "--start", "prior", "--out", str(tmp_path / "prior"), "--no-progress"]) == 0
    online = json.loads((tmp_path / "prior" / "config.json").read_text())["extra"]["online"]
    assert online["start"] == "prior" and online["churn"] == 0.0
