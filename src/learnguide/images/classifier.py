"""A small CNN classifier per image dataset: evaluation features (for FD, KID, precision/recall) and the
class accuracy of samples; with ``noisy``, a time-conditioned classifier of x_s ~ q(x_s | x_0) over s ∈ [0, 1]
whose features φ(x, s) can measure self-consistency (docs/design.md §3.2). Saved as ``config.json`` +
``model.safetensors`` like every learnguide checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from learnguide.checkpoints import SIZE, CheckpointError, Field, load_module, save_checkpoint
from learnguide.core.discrepancy import FeatureMap, data_scaled_features
from learnguide.core.networks import FourierFeatures, check_group_width
from learnguide.core.schedules import LOG_SNR_CLAMP, Schedule, VPCosine, get_schedule
from learnguide.data.images import ImageDataset

KIND = "learnguide.classifier"


ARCHITECTURES = ("cnn", "lenet", "cnn-spatial", "cnn-batchnorm")
FEATURE_LAYERS = ("pooled", "logits")  # what frozen_features compares particles in
S_FLOOR = 0.01
"""A time-conditioned classifier sees every s below this as s = S_FLOOR: it is trained on s ~ U[0, 1], so
log-SNR(s) near the clamp (s → 0, where a sampler ends) would be a time it has hardly seen (clean-image
accuracy 0.45 at s = 0 against 0.69 at s = 0.01 for one trained without the floor), while x_s below it is
clean to within noise a classifier cannot resolve."""
CONFIG_FIELDS = {  # what load_classifier reads from config.json
    "net": Field(
        dict,
        fields=dict.fromkeys(("channels", "num_classes", "width"), SIZE)
        | {
            "schedule": Field(dict, optional=True, parse=lambda c: get_schedule(c).config()),
            "arch": Field(str, choices=ARCHITECTURES, optional=True),
        },
    ),
    "data_id": Field(str, optional=True),
}


class ImageClassifier(nn.Module):
    """An image classifier ``[B, C, H, W] -> logits [B, K]`` of one of :data:`ARCHITECTURES`.

    - ``cnn`` (default; the evaluation classifiers, the noisy ones and the earlier searches' features):
      three 3×3 conv blocks with GroupNorm and SiLU, global average pooling; :meth:`features` is the pooled
      ``[B, 4·width]``. Only ``cnn`` can be time-conditioned (``schedule``).
    - ``lenet`` (the held-out evaluation classifiers, so that a method never judged by the features it
      trained in is also judged by another architecture): two 5×5 conv layers with ReLU and max pooling, a 2×2
      average pool and a fully connected layer whose ``[B, 128]`` output is :meth:`features`.
    - ``cnn-spatial``: ``cnn``'s conv blocks, then a 2×2 average pool and a fully connected layer with SiLU
      whose ``[B, 128]`` output is :meth:`features`: they keep the coarse layout that global pooling drops.
    - ``cnn-batchnorm``: ``cnn`` with BatchNorm instead of GroupNorm, a fixed affine map once trained, so that
      its features keep how strongly an image drives each channel, which GroupNorm divides out per image.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        width: int = 32,
        schedule: dict | None = None,
        arch: str = "cnn",
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown classifier architecture {arch!r}; choose one of {ARCHITECTURES}")
        if arch != "cnn" and schedule is not None:
            raise ValueError("only the cnn classifier can be time-conditioned (--noisy)")
        group_norm = arch in ("cnn", "cnn-spatial")
        if group_norm:
            check_group_width(width)  # GroupNorm(8, ·) in each block
        elif width < 1:
            raise ValueError(f"--width (width) must be >= 1, got {width}")
        self.config = {"channels": channels, "num_classes": num_classes, "width": width, "schedule": schedule}
        self.config.update({"arch": arch} if arch != "cnn" else {})
        self.schedule = get_schedule(schedule) if schedule is not None else None
        if (
            self.schedule is not None
        ):  # time-conditioned: log-SNR(s) features shift the first block's channels
            self.time_features = FourierFeatures(8, max_frequency=32.0, scale=LOG_SNR_CLAMP)
            self.time_proj = nn.Linear(16, width)
        if arch == "lenet":
            self.body = nn.Sequential(
                *(nn.Conv2d(channels, width, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2)),
                *(nn.Conv2d(width, 2 * width, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2)),
                *(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * width, 128), nn.ReLU()),
            )
            self.head = nn.Linear(128, num_classes)
            return

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            norm = nn.GroupNorm(8, c_out) if group_norm else nn.BatchNorm2d(c_out)
            return [nn.Conv2d(c_in, c_out, 3, stride, 1), norm, nn.SiLU()]

        blocks = [*block(channels, width, 1), *block(width, 2 * width, 2), *block(2 * width, 4 * width, 2)]
        if arch == "cnn-spatial":
            pool = [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16 * width, 128), nn.SiLU()]
            self.body, self.head = nn.Sequential(*blocks, *pool), nn.Linear(128, num_classes)
            return
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, images: Tensor, s: Tensor | None = None) -> Tensor:
        """Penultimate features ``[B, F]`` (:class:`ImageClassifier` gives F per architecture) of images
        ``[B, C, H, W]`` (clean data in [−1, 1]; for a time-conditioned classifier, x_s at the times
        ``s [B]``, which it needs)."""
        if self.schedule is None:
            return self.body(images)
        if s is None:
            raise ValueError("a time-conditioned (noisy) classifier needs the time s of its images")
        log_snr = self.schedule.log_snr(s.double().clamp_min(S_FLOOR))
        shift = self.time_proj(self.time_features(log_snr.float()))
        h = self.body[:3](images) + shift[:, :, None, None]
        return self.body[3:](h)

    def forward(self, images: Tensor, s: Tensor | None = None) -> Tensor:
        """Class logits ``[B, K]`` (``s [B]``: as in :meth:`features`)."""
        return self.head(self.features(images, s))


@dataclass
class ClassifierTrainingConfig:
    """Hyper-parameters of :func:`train_classifier`: epochs over the training split, batch, Adam lr,
    Gaussian pixel-noise augmentation (std in [−1, 1] units; makes features robust to sampler noise), whether
    the classifier is time-conditioned and trained on x_s ~ q(x_s | x_0) with s ~ U[0, 1] (``noisy``; the
    augmentation is then not used), seed, and the architecture (``arch``, :class:`ImageClassifier`)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    noise_std: float = 0.05
    noisy: bool = False
    seed: int = 0
    arch: str = "cnn"

    def validate(self, dataset: ImageDataset | None = None) -> None:
        """Raise ``ValueError`` naming the first invalid setting (by its ``train-classifier`` flag), or a
        ``dataset`` without test images to measure the classifier on."""
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"--epochs and --batch-size must be >= 1, got {self.epochs} and {self.batch_size}"
            )
        if not 0.0 < self.lr < math.inf or not 0.0 <= self.noise_std < math.inf:
            raise ValueError(f"--lr must be a finite number > 0 (and noise_std >= 0), got {self.lr}")
        if dataset is not None and not len(dataset.test_images):
            raise ValueError(
                f"{dataset.name} has no test images to measure the classifier on: give each class 2 or more"
            )


@torch.no_grad()
def predict(
    classifier: ImageClassifier, images: Tensor, batch_size: int = 512, s: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``(features [N, F], logits [N, K])`` of ``images [N, C, H, W]`` (at times ``s [N]`` for a
    time-conditioned classifier), in batches."""
    classifier.eval()
    feats, logits = [], []
    times = s.split(batch_size) if s is not None else [None] * len(images.split(batch_size))
    for chunk, t in zip(images.split(batch_size), times, strict=True):
        f = classifier.features(chunk.float(), t)
        feats.append(f)
        logits.append(classifier.head(f))
    return torch.cat(feats), torch.cat(logits)


@torch.enable_grad()  # trains even when the caller samples under no_grad
def train_classifier(
    dataset: ImageDataset,
    config: ClassifierTrainingConfig,
    width: int = 32,
    progress: bool = True,
    schedule: Schedule | None = None,
) -> tuple[ImageClassifier, dict]:
    """Train an :class:`ImageClassifier` on the training split; returns it and a record with its test
    accuracy on clean images (for a ``noisy`` one: at s = 0.01, the smallest training time self-consistency
    uses, and at s = 0.5 of ``schedule``, default VP-cosine)."""
    config.validate(dataset)
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    schedule = schedule or VPCosine()
    model = ImageClassifier(
        dataset.image_shape[0],
        dataset.num_classes,
        width,
        schedule.config() if config.noisy else None,
        config.arch,
    )
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = len(dataset.train_images)
    steps = config.epochs * ((n + config.batch_size - 1) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    began = time.perf_counter()
    bar = tqdm(total=steps, desc="train classifier", disable=not progress, leave=False)
    model.train()
    for _ in range(config.epochs):
        for idx in torch.randperm(n, generator=gen).split(config.batch_size):
            x, s = dataset.train_images[idx], None
            if config.noisy:
                s = torch.rand(len(idx), generator=gen, dtype=torch.float64)
                x = schedule.add_noise(x, s, torch.randn(x.shape, generator=gen))
            else:
                x = x + config.noise_std * torch.randn(x.shape, generator=gen)
            loss = nn.functional.cross_entropy(model(x, s), dataset.train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
    bar.close()
    clean = torch.full((len(dataset.test_images),), 0.01, dtype=torch.float64) if config.noisy else None
    _, logits = predict(model, dataset.test_images, s=clean)
    record = {"test_accuracy": (logits.argmax(1) == dataset.test_labels).float().mean().item()}
    if config.noisy:
        half = torch.full((len(dataset.test_images),), 0.5, dtype=torch.float64)
        noised = schedule.add_noise(
            dataset.test_images, half, torch.randn(dataset.test_images.shape, generator=gen)
        )
        _, logits = predict(model, noised, s=half)
        record["test_accuracy_at_s_0.5"] = (logits.argmax(1) == dataset.test_labels).float().mean().item()
    return model, {**record, "seconds": time.perf_counter() - began, "steps": steps}


def save_classifier(
    model: ImageClassifier,
    directory: str | Path,
    record: dict,
    training: ClassifierTrainingConfig,
    data_id: str,
) -> Path:
    """Write the classifier with its training settings, test accuracy and the data fingerprint."""
    config = {
        "kind": KIND,
        "net": model.config,
        "training": asdict(training),
        "record": record,
        "data_id": data_id,
    }
    return save_checkpoint(directory, model.state_dict(), config)


def load_classifier(directory: str | Path, data_id: str | None = None) -> ImageClassifier:
    """Load a classifier saved by :func:`save_classifier`; with ``data_id``, insist it was trained on that
    data (raises :class:`~learnguide.checkpoints.CheckpointError` otherwise)."""
    model, config = load_module(directory, KIND, CONFIG_FIELDS, lambda c: ImageClassifier(**c["net"]))
    if data_id is not None and config.get("data_id") != data_id:
        raise CheckpointError(
            f"{directory} is a classifier for other data "
            f"(data_id {config.get('data_id')}, expected {data_id})"
        )
    return model.eval()


def frozen_features(classifier: ImageClassifier, layer: str = "pooled") -> Callable[[Tensor, Tensor], Tensor]:
    """The feature map φ(x [B, C, H, W], s [B]) -> ``[B, F]`` of a classifier, its weights frozen (eval mode,
    no parameter gradients): gradients flow to x only. Output in x's dtype. ``layer``: ``"pooled"`` (the
    penultimate features: :meth:`ImageClassifier.features`) or ``"logits"`` (F = classes: the class evidence
    only).

    A time-conditioned (``--noisy``) classifier measures particles at any s. A clean one sees clean images
    only, so its φ compares final samples (s ≤ :data:`S_FLOOR`, a whole-trajectory rollout that ends at s = 0)
    and raises ``ValueError`` for particles at a larger s."""
    if layer not in FEATURE_LAYERS:
        raise ValueError(f"unknown feature layer {layer!r}; choose one of {FEATURE_LAYERS}")
    classifier.eval().requires_grad_(False)
    head = classifier.head if layer == "logits" else nn.Identity()

    def phi(x: Tensor, s: Tensor) -> Tensor:
        if classifier.schedule is None and bool((s > S_FLOOR).any()):
            raise ValueError(
                f"a clean classifier's features compare final samples only, got particles at s = "
                f"{float(s.max()):.3g}: roll out the whole trajectory (--rollout equal to --grid-steps) or "
                "use a time-conditioned classifier (train-classifier --noisy)"
            )
        features = classifier.features(x.float(), s if classifier.schedule is not None else None)
        return head(features).to(x.dtype)

    return phi


def classifier_features(
    classifier: ImageClassifier, layers: tuple[str, ...] = ("pooled",), x0: Tensor | None = None
) -> FeatureMap:
    """φ of one or several :data:`FEATURE_LAYERS` of a frozen classifier (:func:`frozen_features`). Several
    are joined, each divided by its mean pairwise distance on clean data ``x0 [B, C, H, W]`` (B ≥ 2; needed
    then), so that the pooled features and the logits count alike whatever their units (docs/design.md
    §3.2)."""
    if not layers:
        raise ValueError(f"give at least one feature layer of {FEATURE_LAYERS}")
    maps = [frozen_features(classifier, layer) for layer in layers]
    if len(maps) == 1:
        return maps[0]
    if x0 is None:
        raise ValueError("joining several feature layers needs clean data to scale each by")
    return data_scaled_features([(phi, 1.0) for phi in maps], x0)
