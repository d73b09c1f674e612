"""Property tests (hypothesis) of every loader of user files: random bytes and random JSON in a checkpoint
folder (config.json + model.safetensors), an ω-network, a bank manifest, a prompt file and an image folder
give either a value or the project's one-line error (what ``learnguide`` turns into exit code 2), never a
traceback."""

import json
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnguide.checkpoints import CheckpointError
from learnguide.core.banks import BankConfig, generate_bank, load_bank
from learnguide.core.denoiser_training import DenoiserTrainingConfig, load_mlp_denoiser, save_mlp_denoiser
from learnguide.core.denoisers import PredictionAdapter
from learnguide.core.guidance import OmegaNet
from learnguide.core.networks import MLPDenoiserNet
from learnguide.core.schedules import VPCosine
from learnguide.data.images import load_dataset
from learnguide.data.prompts import load_prompt_images, save_prompt_images
from learnguide.data.toy import ring_mixture
from learnguide.images.classifier import (
    ClassifierTrainingConfig,
    ImageClassifier,
    load_classifier,
    save_classifier,
)
from learnguide.images.denoisers import (
    build_image_denoiser,
    load_image_denoiser,
    save_image_denoiser,
    unet_config,
)

SETTINGS = settings(max_examples=30, deadline=None)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from([-3, 0, 1, 2, 10**12, 1e12, "1", "vp-cosine", "v", "relu", {"name": "vp-linear"}]),
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """One valid artefact of every kind a loader reads."""
    root = tmp_path_factory.mktemp("artefacts")
    torch.manual_seed(0)
    mixture = ring_mixture()
    net = MLPDenoiserNet(2, 4, hidden=8, layers=2, fourier_features=2)
    denoiser = PredictionAdapter(net, VPCosine(), "v", null_id=4).eval()
    save_mlp_denoiser(denoiser, root / "denoiser", DenoiserTrainingConfig(), mixture.fingerprint())
    OmegaNet(VPCosine(), num_classes=4, hidden=8, layers=2, fourier_features=2).save(root / "omega")
    save_classifier(
        ImageClassifier(1, 3, width=8), root / "classifier", {}, ClassifierTrainingConfig(), "toy"
    )
    image_denoiser = build_image_denoiser(unet_config((1, 8, 8), 3, width=8), VPCosine())
    save_image_denoiser(
        image_denoiser, root / "image-denoiser", DenoiserTrainingConfig(), "toy", ("a", "b", "c")
    )
    bank = BankConfig(items=8, particles=2, shard_size=4, batch_size=4)
    generate_bank(denoiser, VPCosine(), mixture.data_sampler(), root / "bank", bank, progress=False)
    prompts = torch.randn(2, 3, 4)
    save_prompt_images(root / "prompts.safetensors", prompts, prompts[0], torch.zeros(2, 1, 8, 8))
    from PIL import Image

    for name in ("a", "b"):
        (root / "images" / name).mkdir(parents=True)
        for k in range(2):
            pixels = np.random.default_rng(k).integers(0, 255, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / name / f"{k}.png")
    return root


CHECKPOINTS: dict[str, tuple[Callable, tuple[str, ...]]] = {  # folder: (loader, files it reads)
    "denoiser": (load_mlp_denoiser, ("config.json", "model.safetensors")),
    "omega": (OmegaNet.load, ("config.json", "model.safetensors")),
    "classifier": (load_classifier, ("config.json", "model.safetensors")),
    "image-denoiser": (
        load_image_denoiser,
        ("learnguide.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"),
    ),
    "bank": (load_bank, ("manifest.json", "shard_00000.safetensors")),
}
FILES = [(folder, name) for folder, (_, names) in CHECKPOINTS.items() for name in names]
JSON_FILES = [(folder, name) for folder, name in FILES if name.endswith(".json")]


def value_or_one_line_error(load: Callable[[], object], errors: tuple[type[Exception], ...]) -> None:
    """Call ``load``: it returns a value or raises one of ``errors`` with a one-line message."""
    try:
        load()
    except errors as err:
        assert str(err) and "\n" not in str(err), repr(err)


def mangled_bytes(data: st.DataObject, original: bytes) -> bytes:
    """Random bytes, a truncated or bit-flipped ``original``, or a safetensors header of random JSON."""
    kind = data.draw(st.sampled_from(["random", "truncated", "flipped", "header"]))
    if kind == "random":
        return data.draw(st.binary(max_size=300))
    if kind == "truncated":
        return original[: data.draw(st.integers(0, max(0, len(original) - 1)))]
    if kind == "flipped":
        at = data.draw(st.integers(0, len(original) - 1))
        return original[:at] + bytes([original[at] ^ data.draw(st.integers(1, 255))]) + original[at + 1 :]
    header = json.dumps(data.draw(JSON)).encode()
    return struct.pack("<Q", len(header)) + header + data.draw(st.binary(max_size=64))


def key_paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path (dict keys and list indices) inside a JSON value."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    return [p for key, child in items for p in [(*prefix, key), *key_paths(child, (*prefix, key))]]


def mutated_json(data: st.DataObject, original: object) -> object:
    """Random JSON, or ``original`` with one key (at any depth) replaced by random JSON or removed."""
    if data.draw(st.integers(0, 4)) == 0:
        return data.draw(JSON)
    path = data.draw(st.sampled_from(key_paths(original)))
    copy = json.loads(json.dumps(original))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON)
    return copy


def load_mangled(artefacts: Path, folder: str, name: str, contents: Callable[[bytes], bytes]) -> None:
    """Copy ``folder``, replace its file ``name`` by ``contents(original bytes)`` and load the copy."""
    load = CHECKPOINTS[folder][0]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / folder
        shutil.copytree(artefacts / folder, copy)
        (copy / name).write_bytes(contents((copy / name).read_bytes()))
        value_or_one_line_error(lambda: load(copy), (CheckpointError,))


@pytest.mark.parametrize("folder, name", FILES, ids=[f"{f}/{n}" for f, n in FILES])
@SETTINGS
@given(data=st.data())
def test_checkpoint_loaders_give_a_value_or_one_line_on_random_bytes(artefacts, folder, name, data):
    load_mangled(artefacts, folder, name, lambda original: mangled_bytes(data, original))


@pytest.mark.parametrize("folder, name", JSON_FILES, ids=[f"{f}/{n}" for f, n in JSON_FILES])
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_checkpoint_loaders_give_a_value_or_one_line_on_random_json(artefacts, folder, name, data):
    load_mangled(
        artefacts,
        folder,
        name,
        lambda original: json.dumps(mutated_json(data, json.loads(original))).encode(),
    )


DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool])
TENSORS = st.builds(
    lambda shape, dtype: torch.zeros(shape).to(dtype) + 1,
    st.lists(st.integers(0, 3), max_size=4).map(tuple),
    DTYPES,
)
PROMPT_KEYS = ("prompt_embeds", "null_embedding", "images", "pooled_embeds", "null_pooled", "other")


@SETTINGS
@given(data=st.data())
def test_prompt_file_loader_gives_a_value_or_one_line(artefacts, data):
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prompts.safetensors"
        if data.draw(st.booleans()):
            path.write_bytes(mangled_bytes(data, (artefacts / "prompts.safetensors").read_bytes()))
        else:
            tensors = data.draw(st.dictionaries(st.sampled_from(PROMPT_KEYS), TENSORS, max_size=5))
            save_file(tensors, str(path))
        value_or_one_line_error(lambda: load_prompt_images(path), (ValueError,))


@SETTINGS
@given(data=st.data())
def test_image_folder_loader_gives_a_value_or_one_line(artefacts, data):
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        shutil.copytree(artefacts / "images", root)
        files = sorted(root.rglob("*.png"))
        for _ in range(data.draw(st.integers(1, 3))):
            target = data.draw(st.sampled_from(files + [root / "c" / "new.png", root / "stray.png"]))
            target.parent.mkdir(exist_ok=True)
            if data.draw(st.booleans()):
                target.write_bytes(mangled_bytes(data, files[0].read_bytes()))
            else:
                mode = data.draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16", "LA"]))
                size = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
                Image.new(mode, size).save(target)
        value_or_one_line_error(lambda: load_dataset(str(root)), (ValueError, OSError))
