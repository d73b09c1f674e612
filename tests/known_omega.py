"""Helpers shared by the tests of the trajectory-aware variants (on-policy starts, rollouts)."""

from pathlib import Path

import torch

from learnguide.core.denoisers import ExactMixtureDenoiser, WeakenedDenoiser
from learnguide.core.guidance import OmegaNet
from learnguide.core.schedules import VPCosine
from learnguide.data.toy import GaussianMixture, class_time_weakening, separated_mixture


def weakened_toy() -> tuple[GaussianMixture, WeakenedDenoiser]:
    """The separated 3-class mixture and its exact denoiser weakened by κ(c, t) (tests/test_recovery.py)."""
    mixture = separated_mixture()
    return mixture, WeakenedDenoiser(ExactMixtureDenoiser(mixture, VPCosine()), class_time_weakening)


def assert_recovered_on_the_sampler_grid(net: OmegaNet, denoiser: WeakenedDenoiser, steps: int = 25) -> None:
    """The learned ω on the sampler's own steps (s = t − 0.99/steps) is within 25 % of ω* where ω* > 1 and
    ≤ 0.15 where ω* = 0."""
    points = [(1, 0.85), (2, 0.55), (0, 0.85), (0, 0.55), (1, 0.45), (2, 0.95)]
    cond = torch.tensor([c for c, _ in points])
    t = torch.tensor([t for _, t in points], dtype=torch.float64)
    with torch.no_grad():
        learned, star = net(cond, t - 0.99 / steps, t).double(), denoiser.omega_star(cond, t)
    assert bool(((learned[:2] - star[:2]).abs() <= 0.25 * star[:2]).all()), (learned, star)
    assert bool((star[2:] < 0.01).all()) and bool((learned[2:] <= 0.15).all()), learned


def save_noisy_digits_classifier(folder: Path, noisy: bool = True) -> Path:
    """An untrained width-8 classifier for digits, time-conditioned unless ``noisy`` is False, saved in
    ``folder`` (a feature map)."""
    from learnguide.data.images import load_dataset
    from learnguide.images.classifier import ClassifierTrainingConfig, ImageClassifier, save_classifier

    torch.manual_seed(0)
    classifier = ImageClassifier(1, 10, width=8, schedule=VPCosine().config() if noisy else None)
    config = ClassifierTrainingConfig(noisy=noisy)
    save_classifier(classifier, folder, {}, config, load_dataset("digits").fingerprint())
    return folder
