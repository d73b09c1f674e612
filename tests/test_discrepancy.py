"""Every kernel of the discrepancy against a direct float64 computation (docs/design.md §3.2)."""

import itertools
import math
from dataclasses import replace

import pytest
import torch

from learnguide.core import discrepancy
from learnguide.core.discrepancy import KernelConfig, kernel_loss
from learnguide.core.objectives import energy_loss_particles
from learnguide.images.evaluation import kernel_inception_distance


def _direct(x, y, config):
    """The loss of one group written as loops over pairs, in float64."""
    pooled = [*x, *y]
    pairs = sorted(float((a - b).pow(2).sum()) for a, b in itertools.combinations(pooled, 2))
    h2 = pairs[(len(pairs) - 1) // 2]  # torch's median: the lower middle value

    def k(a, b):
        if config.name == "polynomial":
            return (float(a @ b) / len(a) + 1.0) ** 3
        d2 = max(float((a - b).pow(2).sum()), 1e-12)
        if config.name == "energy":
            return -(d2 ** (config.beta / 2))
        terms = [d2 / (s * s * h2) for s in config.scales]
        if config.name == "rbf":
            return sum(math.exp(-0.5 * r) for r in terms) / len(terms)
        return sum((1 + r) ** -0.5 for r in terms) / len(terms)

    attraction = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    repulsion = sum(k(x[i], x[j]) for i, j in itertools.combinations(range(len(x)), 2))
    repulsion /= len(x) * (len(x) - 1) / 2
    return 0.5 * config.lam * repulsion - attraction


@pytest.mark.parametrize("name", discrepancy.KERNELS)
@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_each_kernel_equals_a_direct_float64_computation(name, lam):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(3, 5, 4, generator=g, dtype=torch.float64), torch.randn(3, 6, 4, generator=g).double()
    config = KernelConfig(name, beta=1.3, lam=lam, scales=(0.5, 2.0))
    expected = torch.tensor([_direct(x[i], y[i], config) for i in range(3)], dtype=torch.float64)
    assert torch.allclose(kernel_loss(x, y, config), expected, rtol=1e-10, atol=1e-12)


def test_the_energy_kernel_is_the_papers_loss():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 2, 5, generator=g, dtype=torch.float64), torch.randn(4, 3, 2, 5).double()
    config = KernelConfig("energy", beta=1.75, lam=1.0)
    assert torch.allclose(kernel_loss(x, y, config), energy_loss_particles(x, y, 1.75, 1.0), atol=1e-12)


def test_the_polynomial_kernel_with_full_repulsion_is_half_of_kid_up_to_a_constant():
    """λ = 1: 2·(L + the true set's own mean kernel / 2) is the unbiased MMD² that the evaluation's KID
    reports for the same two sets (one subset holding every item)."""
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(1, 9, 6, generator=g, dtype=torch.float64), torch.randn(1, 9, 6, generator=g).double()
    config = KernelConfig("polynomial", lam=1.0)
    ones = torch.ones(1, dtype=torch.float64)
    kyy = discrepancy.kernel_matrix(config, y, y, ones)[0]
    own = (kyy.sum() - kyy.diagonal().sum()) / (9 * 8)  # the mean over distinct pairs
    mmd2 = 2 * (kernel_loss(x, y, config) + 0.5 * own)
    kid, _ = kernel_inception_distance(x[0], y[0], subsets=1, subset_size=9)
    assert float(mmd2) == pytest.approx(kid, rel=1e-10)


def test_the_polynomial_kernel_is_refused_where_only_distances_are_given():
    with pytest.raises(ValueError, match="not a function of distances"):
        discrepancy.kernel_values(KernelConfig("polynomial"), torch.ones(1, 2, 2), torch.ones(1))


def test_the_gradient_reaches_omega_with_the_bandwidth_held_fixed(monkeypatch):
    """The median-heuristic bandwidth is a constant of each step (detached), as usual for MMD training: the
    gradient is the loss's derivative at that bandwidth. Checked numerically with the bandwidth frozen."""
    g = torch.Generator().manual_seed(1)
    a, b, y = (torch.randn(2, 4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    omega = torch.tensor([0.3, 1.2], dtype=torch.float64, requires_grad=True)
    config = KernelConfig("imq", scales=(1.0,))
    h2 = discrepancy.median_squared_distance(a + omega.detach()[:, None, None] * b, y)
    monkeypatch.setattr(discrepancy, "median_squared_distance", lambda x, y: h2)

    def loss(w):
        return kernel_loss(a + w[:, None, None] * b, y, config).sum()

    (grad,) = torch.autograd.grad(loss(omega), omega)
    for i in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[i] = 1e-6
        numeric = (loss(omega.detach() + step) - loss(omega.detach() - step)) / 2e-6
        assert math.isclose(float(grad[i]), float(numeric), rel_tol=1e-6, abs_tol=1e-10)


@pytest.mark.parametrize("name", ["energy", "rbf", "polynomial"])
def test_class_weighted_pairs_equal_a_direct_float64_computation(name):
    """With class ids, the repulsion is the mean over class pairs (c, c'), weighted n_c·n_c' / n², of the
    mean kernel over distinct pairs of those classes; the attraction is unchanged."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(2, 7, 3, generator=g, dtype=torch.float64), torch.randn(2, 6, 3, generator=g).double()
    labels = torch.tensor([[0, 0, 0, 1, 1, 2, 2], [1, 0, 1, 0, 1, 0, 1]])
    config = KernelConfig(name, beta=1.3, scales=(1.0,))
    h2 = discrepancy.median_squared_distance(x.flatten(2), y)
    expected = []
    for i in range(2):
        one = x[i : i + 1]
        kern = discrepancy.kernel_matrix(config, one, one, h2[i : i + 1])
        classes, n = labels[i].unique().tolist(), x.shape[1]
        repulsion = 0.0
        for c, d in itertools.product(classes, classes):
            rows, cols = (labels[i] == c).nonzero()[:, 0], (labels[i] == d).nonzero()[:, 0]
            pairs = [float(kern[0, j, k]) for j in rows for k in cols if j != k]
            repulsion += len(rows) * len(cols) / n**2 * sum(pairs) / len(pairs)
        plain = kernel_loss(x[i : i + 1], y[i : i + 1], config)
        lone = kernel_loss(x[i : i + 1], y[i : i + 1], replace(config, lam=0.0))  # −attraction
        assert not math.isclose(float(plain), float(lone + 0.5 * repulsion), rel_tol=1e-6)
        expected.append(float(lone) + 0.5 * repulsion)
    got = kernel_loss(x, y, config, labels)
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_class_weighted_pairs_are_unbiased_for_the_class_mix_where_plain_pairs_are_not():
    """Balanced batches of 2 items per class from two well-separated classes: over many batches, the class-
    weighted mean distance matches two independent draws from the 50/50 mixture; the plain mean over distinct
    pairs gives same-class pairs 1/3 of the weight instead of 1/2 and overshoots."""
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1]).repeat(20000, 1)
    x = (labels * 6.0 + torch.randn(labels.shape, generator=g, dtype=torch.float64))[..., None]
    dist = (x[:, :, None] - x[:, None]).abs().squeeze(-1)
    weighted = (discrepancy.class_pair_weights(labels) * dist).sum((1, 2)).mean()
    plain = dist.sum((1, 2)).mean() / 12
    pool = torch.arange(400000) % 2 * 6.0 + torch.randn(400000, generator=g, dtype=torch.float64)
    other = pool[torch.randperm(400000, generator=g)]
    mixture = (pool - other).abs().mean()  # (nearly) independent pairs from the mix
    assert abs(weighted - mixture) < 0.03 and plain - mixture > 0.5


def test_a_class_with_one_item_is_left_out_of_the_same_class_weight():
    weights = discrepancy.class_pair_weights(torch.tensor([[0, 0, 1, 1, 2]]))
    assert math.isclose(float(weights.sum()), 1.0) and float(weights[0].diagonal().abs().sum()) == 0.0
    assert float(weights[0, 4, 4]) == 0.0 and float(weights[0, 0, 1]) > float(weights[0, 0, 2]) > 0


@pytest.mark.parametrize(
    "bad", [dict(name="laplace"), dict(beta=0.0), dict(lam=1.5), dict(scales=()), dict(scales=(1.0, -1.0))]
)
def test_kernel_settings_are_validated(bad):
    with pytest.raises(ValueError):
        KernelConfig(**bad).validate()


def test_a_joint_feature_map_adds_each_spaces_weighted_squared_distances():
    g = torch.Generator().manual_seed(0)
    x, y, s = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g), torch.zeros(2)

    def double(x, s):
        return 2 * x.flatten(1)[:, :5]

    phi = discrepancy.joint_features([(discrepancy.pixel_features, 0.5), (double, 3.0)])
    d_joint = (phi(x, s) - phi(y, s)).pow(2).sum(1)
    d_pixels = (x - y).flatten(1).pow(2).sum(1)
    d_double = (double(x, s) - double(y, s)).pow(2).sum(1)
    assert torch.allclose(d_joint, 0.25 * d_pixels + 9.0 * d_double)
    with pytest.raises(ValueError, match="finite weights > 0"):
        discrepancy.joint_features([(double, float("nan"))])


def test_a_spaces_scale_is_the_mean_distance_between_distinct_samples():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])
    assert discrepancy.mean_pairwise_distance(points) == pytest.approx((5.0 + 4.0 + 3.0) / 3)
    with pytest.raises(ValueError, match="at least 2"):
        discrepancy.mean_pairwise_distance(points[:1])


def test_data_scaled_features_put_each_space_at_its_weight():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 2, 3, generator=g)

    def big(x, s):
        return 100 * x.flatten(1)

    phi = discrepancy.data_scaled_features([(big, 1.0), (discrepancy.pixel_features, 2.0)], x0)
    f = phi(x0, torch.zeros(6))
    assert discrepancy.mean_pairwise_distance(f[:, :6]) == pytest.approx(1.0, rel=1e-5)
    assert discrepancy.mean_pairwise_distance(f[:, 6:]) == pytest.approx(2.0, rel=1e-5)
