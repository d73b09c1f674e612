import io
from dataclasses import replace

import pytest
import torch
from tqdm import tqdm

from learnguide.core import online
from learnguide.core.denoisers import WeakenedDenoiser
from learnguide.core.guidance import OmegaNet
from learnguide.core.items import class_groups, sample_times, simulate_items
from learnguide.core.online import OnlineConfig, simulate_sharded, train_omega_online
from learnguide.core.schedules import VPCosine
from learnguide.distributed import Processes


def test_time_sampling_respects_s_min_zeta_delta():
    s, t = sample_times(100_000, 0.01, 0.01, 0.1, torch.Generator().manual_seed(0))
    assert s.min() >= 0.01 and s.max() <= 0.89 and (t - s).min() >= 0.1 - 1e-12 and t.max() <= 0.99 + 1e-12


@pytest.mark.parametrize(
    "bad",
    [
        dict(beta=0.0),
        dict(lam=2.0),
        dict(objective="l3"),
        dict(iterations=0),
        dict(blocks=0),
        dict(particles=1),
        dict(s_min=0.95),
        dict(lr_decay="linear"),
    ],
)
def test_online_config_is_validated(bad):
    with pytest.raises(ValueError):
        OnlineConfig(**bad).validate()


@pytest.mark.parametrize(
    "objective, group_size, batch_size, allowed",
    [("energy", 8, 80, False), ("class-marginal", 1, 80, False), ("class-marginal", 8, 80, True),
     ("marginal", 8, 80, True), ("marginal", 8, 1, False)],
)  # fmt: skip
def test_repulsion_with_one_particle_needs_a_pooled_set_of_two(objective, group_size, batch_size, allowed):
    config = OnlineConfig(particles=1, objective=objective, group_size=group_size, batch_size=batch_size)
    if allowed:
        config.validate()
    else:
        with pytest.raises(ValueError, match="at least 2 particles per compared set"):
            config.validate()


def _run(mixture, denoiser, **kw):
    torch.manual_seed(123)  # the ω-network's initial weights
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    record = train_omega_online(
        net,
        denoiser,
        mixture.data_sampler(),
        OnlineConfig(batch_size=32, **kw),
        progress=False,
        out_dir=kw.pop("out_dir", None),
    )
    return net, record


def test_training_is_reproducible_and_counts_denoiser_work(mixture, exact):
    (a, rec), (b, _) = _run(mixture, exact, iterations=5), _run(mixture, exact, iterations=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert rec.denoiser_calls == 5 and rec.denoiser_evals == 5 * 2 * 32 * 4 and len(rec.losses) == 5


def test_training_under_a_caller_s_no_grad_trains_as_usual(mixture, exact):
    """A caller that samples under no_grad may fit ω (the gradient raised before)."""
    with torch.no_grad():
        a, _ = _run(mixture, exact, iterations=2)
        assert not torch.is_grad_enabled()  # the caller's mode is back
    b, _ = _run(mixture, exact, iterations=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_on_step_sees_every_iteration_s_loss_and_the_weights_after_it(mixture, exact):
    torch.manual_seed(123)
    net, seen = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2), []

    def on_step(iteration, loss):
        seen.append((iteration, loss, net.body[-1].bias.item()))

    config = OnlineConfig(iterations=3, batch_size=32)
    record = train_omega_online(net, exact, mixture.data_sampler(), config, progress=False, on_step=on_step)
    assert [(i, loss) for i, loss, _ in seen] == list(enumerate(record.losses))
    assert len({bias for *_, bias in seen}) == 3 and seen[-1][2] == net.body[-1].bias.item()


def test_the_progress_bar_shows_every_step_s_loss(mixture, exact, monkeypatch):
    """Short fits too: the bar once showed only the first step's loss on fits of under 50 steps."""
    shown = io.StringIO()

    def bar(start, total, desc, progress):  # the real bar, written at every step
        return tqdm(range(start, total), desc=desc, file=shown, mininterval=0, miniters=1, initial=start)

    monkeypatch.setattr(online, "resumed_progress", bar)
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    record = train_omega_online(net, exact, mixture.data_sampler(), OnlineConfig(iterations=3, batch_size=32))
    assert all(f"loss={loss:.4f}" in shown.getvalue() for loss in record.losses)


@pytest.mark.parametrize("blocks", [1, 3, 8, 100])
def test_blocks_of_a_batch_simulate_the_same_items_as_one_call(mixture, exact, blocks):
    x0, cond = mixture.data_sampler()(20, torch.Generator().manual_seed(0))
    s, t = sample_times(20, 0.01, 0.01, 0.1, torch.Generator().manual_seed(1))
    config = OnlineConfig(particles=3, blocks=blocks)
    gen = torch.Generator().manual_seed(2)
    items = simulate_sharded(exact, VPCosine(), x0, cond, (s, t), config, gen, Processes())
    gen.manual_seed(2)
    noise = torch.randn((3, 60, x0.shape[1]), generator=gen, dtype=x0.dtype)
    whole = simulate_items(exact, VPCosine(), x0, cond, s, t, 3, config.churn, gen, noise)
    for field, expected in zip(items, whole, strict=True):
        assert field.shape == (20, 3, x0.shape[1]) and torch.allclose(field, expected, atol=1e-12)


def test_resume_gives_the_same_network_as_an_uninterrupted_run(mixture, exact, tmp_path):
    full, _ = _run(mixture, exact, iterations=6)
    torch.manual_seed(123)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    data = mixture.data_sampler()
    train_omega_online(net, exact, data, OnlineConfig(iterations=3, batch_size=32), tmp_path, progress=False)
    # "killed" after 3 of 6 iterations (its state is on disk); a new process starts from scratch:
    fresh = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    record = train_omega_online(
        fresh, exact, data, OnlineConfig(iterations=6, batch_size=32), tmp_path, progress=False
    )
    assert all(torch.equal(p, q) for p, q in zip(full.parameters(), fresh.parameters(), strict=True))
    assert len(record.losses) == 6 and (tmp_path / "model.safetensors").is_file()


def test_a_cosine_decay_falls_to_zero_changes_the_fit_and_resumes_exactly(mixture, exact, tmp_path):
    config = OnlineConfig(iterations=6, batch_size=32, lr=1e-2, lr_decay="cosine", checkpoint_every=3)
    assert config.learning_rate(0) == 1e-2 and config.learning_rate(3) == pytest.approx(5e-3)
    assert config.learning_rate(6) == pytest.approx(0.0, abs=1e-12)
    (decayed, _), (constant, _) = (
        _run(mixture, exact, iterations=6, lr=1e-2, lr_decay=d) for d in ("cosine", "constant")
    )
    assert not all(
        torch.equal(p, q) for p, q in zip(decayed.parameters(), constant.parameters(), strict=True)
    )
    fresh = _killed_and_resumed(exact, mixture.data_sampler(), config, tmp_path, killed_in=4)
    assert all(torch.equal(p, q) for p, q in zip(decayed.parameters(), fresh.parameters(), strict=True))


def _killed_and_resumed(exact, data, config, folder, killed_in):
    """A fit of ``config`` into ``folder`` killed in iteration ``killed_in`` (1-based, one data draw each),
    then resumed by a new process with a fresh network; returns that network."""
    calls = []

    def killed(n, generator):
        calls.append(n)
        if len(calls) >= killed_in:
            raise RuntimeError("killed")
        return data(n, generator)

    torch.manual_seed(123)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    with pytest.raises(RuntimeError, match="killed"):
        train_omega_online(net, exact, killed, config, folder, progress=False)
    fresh = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    train_omega_online(fresh, exact, data, config, folder, progress=False)
    return fresh


def test_iterate_averaging_returns_the_mean_of_the_last_steps_weights_and_resumes_exactly(
    mixture, exact, tmp_path
):
    """average = 0.5 of 6 iterations: the fit returns the mean of the weights after steps 3, 4 and 5 (what
    ``on_step`` saw), not step 5's; killed in step 5 and resumed, it ends with the same mean."""
    config = OnlineConfig(iterations=6, batch_size=32, lr=1e-2, average=0.5, checkpoint_every=2)
    assert config.first_averaged() == 3 and replace(config, average=0.0).first_averaged() == 6
    data, seen = mixture.data_sampler(), []

    def on_step(iteration, loss):
        seen.append([p.detach().clone() for p in net.parameters()])

    torch.manual_seed(123)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    train_omega_online(net, exact, data, config, progress=False, on_step=on_step)
    for i, p in enumerate(net.parameters()):
        assert torch.allclose(p, sum(step[i] for step in seen[3:]) / 3, atol=1e-6)
    assert not all(torch.equal(p, q) for p, q in zip(net.parameters(), seen[-1], strict=True))
    fresh = _killed_and_resumed(exact, data, config, tmp_path, killed_in=6)  # resumes at iteration 4
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), fresh.parameters(), strict=True))


@pytest.mark.parametrize("average", [-0.1, 1.0, float("nan")])
def test_the_averaged_fraction_is_validated(average):
    with pytest.raises(ValueError, match="--average"):
        OnlineConfig(average=average).validate()


def test_learns_the_known_omega_of_a_weakened_exact_denoiser(mixture, exact):
    """x̂'_c = 0.6 x̂_c + 0.4 x̂_∅ is made exact by ω* = 0.4 / 0.6 (docs/design.md §9). Early in the
    trajectory, where the per-item objective identifies ω, the learned ω must be close to ω* (starts at 1)."""

    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=4)
    train_omega_online(
        net,
        WeakenedDenoiser(exact, 0.4),
        mixture.data_sampler(),
        OnlineConfig(iterations=400, batch_size=128),
        progress=False,
    )
    t = torch.full((4,), 0.9, dtype=torch.float64)
    learned = net(torch.arange(4), t - 0.05, t)
    assert torch.allclose(learned, torch.full((4,), 0.4 / 0.6), atol=0.15)


@pytest.mark.slow
def test_class_marginal_objective_recovers_the_known_omega_along_the_whole_trajectory(mixture, exact):
    """Where the per-item loss is biased (mid-trajectory it wants ω < 0 for the weakened denoiser,
    docs/design.md §9),
    comparing the guided step from p(x_t | c) with p(x_s | c) over groups sharing (c, s, t) recovers ω*."""
    weakened, times = WeakenedDenoiser(exact, 0.4), (0.9, 0.7, 0.5, 0.35)
    learned = {}
    for objective in ("energy", "class-marginal"):
        torch.manual_seed(0)
        net = OmegaNet(VPCosine(), num_classes=4)
        config = OnlineConfig(iterations=600, batch_size=256, objective=objective, group_size=16)
        train_omega_online(net, weakened, mixture.data_sampler(), config, progress=False)
        t = torch.tensor(times, dtype=torch.float64).repeat_interleave(4)
        learned[objective] = (
            net(torch.arange(4).repeat(len(times)), t - 0.1, t).reshape(len(times), 4).mean(1)
        )
    assert torch.allclose(learned["class-marginal"], torch.full((4,), 0.4 / 0.6), atol=0.1)
    assert learned["energy"][2:].max() < 0.3  # the per-item loss misses ω* at t = 0.5 and 0.35


def test_class_groups_share_a_class_and_drop_the_remainder():
    x0 = torch.arange(10.0)[:, None]
    cond = torch.tensor([2, 0, 2, 1, 0, 2, 0, 2, 0, 1])
    xg, cg = class_groups(x0, cond, 2)
    assert cg.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert sorted(xg[cg == 1].flatten().tolist()) == [3.0, 9.0]
    with pytest.raises(ValueError, match="raise --batch-size"):
        class_groups(x0, cond, 5)
    with pytest.raises(ValueError, match="class id"):
        class_groups(x0, torch.zeros(10, 3), 2)


def test_a_diverged_run_stops_before_it_saves(mixture, exact, tmp_path):
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    torch.nn.init.constant_(net.body[-1].bias, float("nan"))  # every ω, loss and step is NaN
    config = OnlineConfig(iterations=2, batch_size=32, checkpoint_every=1)
    with pytest.raises(ValueError, match=r"learned into .* at iteration 1 \(try a lower --lr\).*NaN or Inf"):
        train_omega_online(net, exact, mixture.data_sampler(), config, tmp_path / "omega", progress=False)
    assert not (tmp_path / "omega").exists()
