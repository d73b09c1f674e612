"""On-policy starts (docs/design.md §3.3): items whose x_t are the guided sampler's own states."""

import json

import pytest
import torch

from known_omega import assert_recovered_on_the_sampler_grid, save_noisy_digits_classifier, weakened_toy
from learnguide.core.guidance import ConstantGuidance, OmegaNet
from learnguide.core.items import on_policy_items
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.sampling import sample
from learnguide.core.schedules import VPCosine, step_grid


def test_the_trajectory_is_the_guided_samplers_own(mixture, exact):
    """With churn 0 the last step's A + ωB is what :func:`sample` draws from the same noise."""
    x0, cond = mixture.data_sampler()(12, torch.Generator().manual_seed(0))
    grid = step_grid(6)
    items, s, t = on_policy_items(
        exact, VPCosine(), lambda c, s, t: torch.full((len(c),), 0.7), x0, cond, grid, 0.0,
        torch.Generator().manual_seed(5),
    )  # fmt: skip
    assert items.a.shape == (6 * 12, 1, 2) and s.shape == t.shape == (72,)
    assert torch.equal(t[:12], grid[0].expand(12)) and torch.equal(
        s[-12:], torch.zeros(12, dtype=torch.float64)
    )
    last = items.a[-12:, 0] + 0.7 * items.b[-12:, 0]
    expected = sample(
        exact,
        VPCosine(),
        ConstantGuidance(0.7),
        cond,
        (2,),
        steps=6,
        generator=torch.Generator().manual_seed(5),
    )
    assert torch.allclose(last, expected, atol=1e-5)
    assert torch.equal(items.x_true[-12:, 0], x0)  # s = 0: the true particles are the data items themselves


@pytest.mark.parametrize(
    "bad",
    [
        dict(start="policy"),
        dict(start="on-policy"),  # needs the class-marginal objective
        dict(start="on-policy", objective="class-marginal", refresh=3, checkpoint_every=4),
        dict(grid_steps=0),
        dict(refresh=0),
    ],
)
def test_on_policy_settings_are_validated(bad):
    with pytest.raises(ValueError):
        OnlineConfig(**bad).validate()


def test_on_policy_training_counts_one_trajectory_batch_per_refresh(mixture, exact):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)
    config = OnlineConfig(iterations=4, batch_size=32, objective="class-marginal", group_size=4)
    config.start, config.grid_steps, config.refresh = "on-policy", 5, 2
    record = train_omega_online(net, exact, mixture.data_sampler(), config, progress=False)
    assert len(record.losses) == 4 and record.denoiser_calls == 2 * 5
    assert record.denoiser_evals % (2 * 5 * 4) == 0 and 0 < record.denoiser_evals <= 2 * 2 * 5 * 32


@pytest.mark.slow
def test_on_policy_fit_recovers_a_class_and_time_dependent_omega():
    """The exact denoiser weakened by κ(c, t) is made exact by ω* (tests/test_recovery.py); the guided
    sampler's states under ω* are then distributed as the data noised, so on-policy self-consistency is
    minimised at ω* too. Checked on the sampler's own steps (s = t − 0.99/25)."""
    mixture, denoiser = weakened_toy()
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3)
    config = OnlineConfig(
        iterations=300, batch_size=768, objective="class-marginal", group_size=32, start="on-policy"
    )
    record = train_omega_online(net, denoiser, mixture.data_sampler(), config, progress=False)
    assert record.warnings == []
    assert_recovered_on_the_sampler_grid(net, denoiser)


def test_fit_learns_on_policy_in_a_noisy_classifiers_features_through_the_cli(tmp_path):
    from learnguide.apps.cli import main

    save_noisy_digits_classifier(tmp_path / "noisy")
    args = ["fit", "--online", "--denoiser", "checkpoints/digits/under_trained", "--dataset", "digits"]
    args += ["--features", str(tmp_path / "noisy"), "--objective", "class-marginal", "--start", "on-policy"]
    args += [
        "--grid-steps",
        "4",
        "--refresh",
        "2",
        "--iterations",
        "2",
        "--batch-size",
        "80",
        "--no-progress",
    ]
    assert main([*args, "--out", str(tmp_path / "omega")]) == 0
    online = json.loads((tmp_path / "omega" / "config.json").read_text())["extra"]["online"]
    assert online["start"] == "on-policy" and online["churn"] == 0.0 and online["grid_steps"] == 4
    per_item = [a if a != "class-marginal" else "energy" for a in args]
    assert main([*per_item, "--out", str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()
