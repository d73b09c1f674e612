import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnguide.checkpoints import CheckpointError
from learnguide.core.banks import (
    Bank,
    BankConfig,
    FitConfig,
    binned_optimal_omega,
    fit_omega_on_bank,
    generate_bank,
    load_bank,
    per_item_optimal_omega,
    shard_generator,
)
from learnguide.core.denoisers import WeakenedDenoiser
from learnguide.core.guidance import OmegaNet
from learnguide.core.items import sample_times, simulate_items
from learnguide.core.objectives import energy_loss_particles, pair_statistics
from learnguide.core.schedules import VPCosine


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 4),
    m=st.integers(2, 5),
    d=st.integers(1, 6),
    beta=st.floats(0.1, 2.0),
    lam=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_bank_loss_and_gradient_equal_the_particle_computation(n, m, d, beta, lam, seed):
    g = torch.Generator().manual_seed(seed)
    a, b, x_true = (torch.randn(n, m, d, generator=g, dtype=torch.float64) for _ in range(3))
    bank = Bank(
        torch.zeros(n, dtype=torch.long), torch.zeros(n), torch.ones(n), pair_statistics(a, b, x_true), m, {}
    )
    omega = (3 * torch.rand(n, generator=g, dtype=torch.float64) - 1).requires_grad_()
    via_bank = bank.loss(omega, beta, lam)
    (grad_bank,) = torch.autograd.grad(via_bank.sum(), omega)
    omega_direct = omega.detach().clone().requires_grad_()
    direct = energy_loss_particles(a + omega_direct[:, None, None] * b, x_true, beta, lam)
    (grad_direct,) = torch.autograd.grad(direct.sum(), omega_direct)
    assert torch.allclose(via_bank, direct, rtol=1e-9, atol=1e-9)
    assert torch.allclose(grad_bank, grad_direct, rtol=1e-6, atol=1e-7)


def test_generated_bank_holds_the_statistics_of_the_simulated_items(mixture, exact, tmp_path):
    config = BankConfig(items=64, shard_size=64, batch_size=64, store_predictions=True, seed=3)
    record = generate_bank(
        exact, exact.schedule, mixture.data_sampler(), tmp_path, config, "exact", progress=False
    )
    assert record.denoiser_calls == 1 and record.denoiser_evals == 2 * 64 * 4
    bank = load_bank(tmp_path, denoiser_id="exact")
    gen = shard_generator(3, 0)  # replay shard 0's draws
    x0, cond = mixture.data_sampler()(64, gen)
    s, t = sample_times(64, 0.01, 0.01, 0.1, gen)
    items = simulate_items(exact, exact.schedule, x0, cond, s, t, 4, 1.0, gen)
    assert torch.equal(bank.cond, cond) and torch.equal(bank.t, t)
    omega = torch.linspace(-1, 3, 64, dtype=torch.float64)
    direct = energy_loss_particles((items.a + omega[:, None, None] * items.b).double(), items.x_true.double())
    assert torch.allclose(bank.loss(omega), direct, rtol=1e-6, atol=1e-7)
    assert torch.equal(bank.extras["delta"], items.delta.float()) and bank.extras["x0_cond"].shape == (
        64,
        4,
        2,
    )


class Crash(RuntimeError):
    pass


def test_resuming_a_killed_bank_run_gives_the_identical_bank(mixture, mlp_denoiser, tmp_path):
    config = BankConfig(items=300, shard_size=100, batch_size=64, seed=1)
    sch = mlp_denoiser.schedule
    generate_bank(mlp_denoiser, sch, mixture.data_sampler(), tmp_path / "full", config, "mlp", progress=False)

    calls = {"n": 0}

    def dies_in_the_second_shard(n, gen):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash
        return mixture.data_sampler()(n, gen)

    with pytest.raises(Crash):
        generate_bank(
            mlp_denoiser, sch, dies_in_the_second_shard, tmp_path / "resumed", config, "mlp", progress=False
        )
    with pytest.raises(CheckpointError, match="incomplete"):
        load_bank(tmp_path / "resumed")
    record = generate_bank(
        mlp_denoiser, sch, mixture.data_sampler(), tmp_path / "resumed", config, "mlp", progress=False
    )
    assert record.shards_written == 2
    for k in range(3):
        name = f"shard_{k:05d}.safetensors"
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()
    with pytest.raises(ValueError, match="other settings"):
        generate_bank(
            mlp_denoiser,
            sch,
            mixture.data_sampler(),
            tmp_path / "full",
            BankConfig(items=10),
            "mlp",
            progress=False,
        )


def test_bad_banks_give_clear_errors(mixture, exact, tmp_path):
    generate_bank(
        exact,
        exact.schedule,
        mixture.data_sampler(),
        tmp_path,
        BankConfig(items=32, shard_size=16),
        "exact",
        progress=False,
    )
    with pytest.raises(CheckpointError, match="another denoiser"):
        load_bank(tmp_path, denoiser_id="other")
    with pytest.raises(CheckpointError, match="not a transition bank"):
        load_bank(tmp_path / "nowhere")
    shard = tmp_path / "shard_00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_bank(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "kind": "something"}))
    with pytest.raises(CheckpointError, match="not a transition bank"):
        load_bank(tmp_path)
    for bad in (dict(items=0), dict(particles=1), dict(churn=2.0), dict(s_min=0.95)):
        with pytest.raises(ValueError):
            BankConfig(**bad).validate()


@pytest.fixture
def weakened_bank(mixture, exact, tmp_path):
    """A bank of the exact denoiser weakened by κ = 0.4: ω* = 2/3 makes it exact (docs/design.md §9)."""
    weak = WeakenedDenoiser(exact, 0.4)
    generate_bank(
        weak, exact.schedule, mixture.data_sampler(), tmp_path, BankConfig(items=8192), progress=False
    )
    return load_bank(tmp_path)


def test_fit_on_bank_recovers_the_known_omega_early_in_the_trajectory(weakened_bank):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=4)
    record = fit_omega_on_bank(net, weakened_bank, FitConfig(epochs=30), progress=False)
    t = torch.full((4,), 0.9, dtype=torch.float64)
    assert torch.allclose(net(torch.arange(4), t - 0.05, t), torch.full((4,), 2 / 3), atol=0.15)
    assert min(record.val_losses) == record.val_losses[record.best_epoch]
    with pytest.raises(ValueError, match="schedule"):
        from learnguide.core.schedules import RectifiedFlow

        fit_omega_on_bank(
            OmegaNet(RectifiedFlow(), num_classes=4), weakened_bank, FitConfig(), progress=False
        )


def test_a_fit_under_a_caller_s_no_grad_trains_as_usual(weakened_bank):
    """A caller that samples under no_grad may fit ω on a bank (backward raised before)."""
    nets = []
    for grad in (False, True):
        torch.manual_seed(0)
        nets.append(OmegaNet(VPCosine(), num_classes=4))
        with torch.set_grad_enabled(grad):
            fit_omega_on_bank(nets[-1], weakened_bank, FitConfig(epochs=2), progress=False)
            assert torch.is_grad_enabled() == grad  # the caller's mode is back
    assert all(torch.equal(p, q) for p, q in zip(*(n.parameters() for n in nets), strict=True))


def test_optimal_omega_diagnostics(weakened_bank):
    per_item = per_item_optimal_omega(weakened_bank)
    assert per_item.shape == (len(weakened_bank),)
    early = weakened_bank.t > 0.85
    assert abs(per_item[early].median().item() - 2 / 3) < 0.25
    omega, count = binned_optimal_omega(weakened_bank, torch.linspace(0, 1, 11))
    assert omega.shape == count.shape == (4, 10)
    assert torch.isnan(omega[:, 0]).all() and (count[:, 0] == 0).all()  # t ≥ s_min + δ: no item below 0.1
    assert (omega[:, -1] - 2 / 3).abs().max() < 0.15
    assert int(count.sum()) == len(weakened_bank)


@pytest.mark.slow
def test_bank_fit_matches_online_training_on_the_toy(mixture, exact, tmp_path):
    """Issue 3: ω fitted on a bank samples as well as ω trained online (same denoiser, same evaluation)."""
    from learnguide.core.metrics import class_metrics, median_bandwidth
    from learnguide.core.online import OnlineConfig, train_omega_online
    from learnguide.core.sampling import sample

    weak = WeakenedDenoiser(exact, 0.4)
    labels = torch.arange(4).repeat_interleave(2000)
    reference = mixture.sample(labels, torch.Generator().manual_seed(5)).float()
    bandwidth = median_bandwidth(reference)

    def energy(net):
        x = sample(
            weak, exact.schedule, net, labels, (2,), steps=20, generator=torch.Generator().manual_seed(6)
        )
        return class_metrics(x, labels, reference, labels, bandwidth, overall=False)["energy"]

    torch.manual_seed(0)
    online = OmegaNet(VPCosine(), num_classes=4)
    record = train_omega_online(
        online, weak, mixture.data_sampler(), OnlineConfig(iterations=800, batch_size=128), progress=False
    )
    generate_bank(
        weak, exact.schedule, mixture.data_sampler(), tmp_path, BankConfig(items=8192), progress=False
    )
    torch.manual_seed(0)
    banked = OmegaNet(VPCosine(), num_classes=4)
    fit_omega_on_bank(banked, load_bank(tmp_path), FitConfig(), progress=False)
    unguided = energy(OmegaNet(VPCosine(), num_classes=4, output="identity", init_omega=0.0))
    e_online, e_bank = energy(online), energy(banked)
    assert e_online < 0.5 * unguided and e_bank < 0.5 * unguided  # both learned something that helps
    assert e_bank < e_online + max(0.3 * e_online, 0.003)  # at least as good, within run-to-run spread
    assert record.denoiser_evals >= 10 * 8192 * 2 * 4  # with ≥ 10× fewer denoiser evaluations
