"""The default ω-network recovers a known ω*(c, t) that differs by class and time (docs/design.md §4, §9).

The exact denoiser of :func:`separated_mixture`, weakened by κ(c, t) (:func:`class_time_weakening`), is made
exact again by ω* = κ / (1 − κ): 0 for class 0, up to 2.33 for class 1 near t = 0.85, up to 1.5 for class 2
near t = 0.55. Every fit here uses ``OmegaNet(schedule, num_classes=3)`` with no other argument.
"""

import pytest
import torch

from learnguide.core.banks import BankConfig, FitConfig, fit_omega_on_bank, generate_bank, load_bank
from learnguide.core.denoisers import ExactMixtureDenoiser, WeakenedDenoiser
from learnguide.core.fit_checks import FitWarning
from learnguide.core.guidance import OmegaNet
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.schedules import VPCosine
from learnguide.data.toy import class_time_weakening, separated_mixture

# (class, t) where ω* > 1, and where ω* = 0
_OMEGA_STAR = WeakenedDenoiser(
    ExactMixtureDenoiser(separated_mixture(), VPCosine()), class_time_weakening
).omega_star
PEAKS = [(1, 0.85), (1, 0.8), (2, 0.55), (2, 0.6)]
ZEROS = [(0, 0.85), (0, 0.55), (0, 0.4), (1, 0.4), (2, 0.9)]


@pytest.fixture(scope="module")
def weakened():
    mixture = separated_mixture()
    return mixture, WeakenedDenoiser(ExactMixtureDenoiser(mixture, VPCosine()), class_time_weakening)


@pytest.fixture(scope="module")
def bank(weakened, tmp_path_factory):
    mixture, denoiser = weakened
    out = tmp_path_factory.mktemp("bank")
    generate_bank(denoiser, VPCosine(), mixture.data_sampler(), out, BankConfig(items=16384), progress=False)
    return load_bank(out)


def _learned(net: OmegaNet, points: list[tuple[int, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    cond = torch.tensor([c for c, _ in points])
    t = torch.tensor([t for _, t in points], dtype=torch.float64)
    with torch.no_grad():
        return net(cond, t - 0.1, t).double(), _OMEGA_STAR(cond, t)


def _assert_recovered(net: OmegaNet) -> None:
    learned, star = _learned(net, PEAKS)
    assert bool((star > 1).all()) and bool(((learned - star).abs() <= 0.25 * star).all()), (learned, star)
    learned, star = _learned(net, ZEROS)
    assert bool((star < 0.01).all()) and bool((learned <= 0.15).all()), learned


def test_default_fit_on_a_bank_recovers_a_class_and_time_dependent_omega(bank):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3)
    record = fit_omega_on_bank(net, bank, FitConfig(), progress=False)
    _assert_recovered(net)
    assert record.warnings == []


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["energy", "class-marginal"])
def test_default_online_fit_recovers_a_class_and_time_dependent_omega(weakened, objective):
    mixture, denoiser = weakened
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3)
    config = OnlineConfig(iterations=600, batch_size=256, objective=objective, group_size=16)
    record = train_omega_online(net, denoiser, mixture.data_sampler(), config, progress=False)
    _assert_recovered(net)
    assert record.warnings == []


def test_a_dead_fit_is_reported(bank):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3, output="softplus")
    torch.nn.init.constant_(net.body[-1].bias, -30.0)  # softplus'(−30) ≈ 1e-13: no gradient gets through
    with pytest.warns(FitWarning) as caught:
        record = fit_omega_on_bank(net, bank, FitConfig(epochs=3), progress=False)
    text = " ".join(record.warnings)
    assert "passed no gradient for 3 whole epoch(s)" in text
    assert "constant" in text and "far from the bank's own optimum" in text and "class 1" in text
    assert [str(w.message) for w in caught] == record.warnings


def test_a_straight_through_relu_fit_on_a_bank_recovers_the_same_omega(bank):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3, output="relu-st")  # ω ≥ 0 in the fit, gradient straight through
    record = fit_omega_on_bank(net, bank, FitConfig(), progress=False)
    _assert_recovered(net)
    assert record.warnings == []


@pytest.mark.parametrize("output", ["relu", "relu-st"])
def test_a_relu_fit_driven_below_zero_is_reported_as_constant_not_dead(bank, output):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3, output=output)
    torch.nn.init.constant_(net.body[-1].bias, -10.0)
    with pytest.warns(FitWarning):
        record = fit_omega_on_bank(net, bank, FitConfig(epochs=1, lr=1e-9), progress=False)
    assert any("constant (0)" in w for w in record.warnings)
    assert not any("no gradient" in w for w in record.warnings)  # the fit's gradient is unconstrained


def test_a_softplus_fit_driven_to_zero_is_reported_as_saturated(bank):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3, output="softplus")
    torch.nn.init.normal_(net.body[-1].weight, std=0.1)  # the unconstrained value varies over the inputs …
    torch.nn.init.constant_(net.body[-1].bias, -40.0)  # … and ω = softplus(it) is 0 to within 1e-6
    with pytest.warns(FitWarning):
        record = fit_omega_on_bank(net, bank, FitConfig(epochs=1, lr=1e-9), progress=False)
    assert any("constant (0)" in w and "softplus saturates" in w for w in record.warnings)
    assert not any("did not learn" in w for w in record.warnings)
