import pytest
import torch

from learnguide.data.toy import GaussianMixture, ring_mixture


def test_ring_mixture_classes_overlap_and_sample_correctly():
    mix = ring_mixture(num_classes=4, components_per_class=3)
    assert mix.num_classes == 4 and mix.dim == 2
    shared = (mix.weights > 0).float()
    assert (shared[0] * shared[1]).sum() == 1  # adjacent classes share one component
    labels = torch.full((50_000,), 2, dtype=torch.long)
    x = mix.sample(labels, torch.Generator().manual_seed(0))
    expected_mean = mix.weights[2] @ mix.means
    assert torch.allclose(x.mean(0), expected_mean, atol=0.02)
    assert mix.unconditional_weights().sum().item() == pytest.approx(1.0)


def test_sampling_is_seeded_and_round_trips_through_dict():
    mix = ring_mixture()
    a = mix.sample_batch(10, torch.Generator().manual_seed(1))
    b = mix.sample_batch(10, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    again = GaussianMixture.from_dict(mix.to_dict())
    assert again.fingerprint() == mix.fingerprint()
    assert ring_mixture(std=0.2).fingerprint() != mix.fingerprint()


def test_mixture_validation():
    means, stds = torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(
            means, stds, torch.tensor([[0.5, 0.2]], dtype=torch.float64), torch.ones(1, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="agree on K"):
        GaussianMixture(
            means, stds, torch.ones(1, 3, dtype=torch.float64) / 3, torch.ones(1, dtype=torch.float64)
        )
    with pytest.raises(ValueError):
        ring_mixture(num_classes=1)


def test_a_balanced_draw_takes_the_classes_in_turn_from_their_own_components():
    mixture = ring_mixture()
    x0, labels = mixture.data_sampler(balanced=True)(400, torch.Generator().manual_seed(0))
    assert x0.dtype == torch.float32 and x0.shape == (400, 2)
    assert torch.equal(labels, torch.arange(400) % 4)
    nearest = torch.cdist(x0.double(), mixture.means).argmin(1)  # components are 0.3 wide, ~1 apart
    owned = mixture.weights[labels, nearest] > 0
    assert owned.float().mean() > 0.95
    again, _ = mixture.data_sampler(balanced=True)(400, torch.Generator().manual_seed(0))
    assert torch.equal(x0, again)
