"""Checkpoint folders: ``config.json`` + ``model.safetensors``, written atomically, loaded without code."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or does not match what it is loaded for."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, state: dict[str, Tensor], config: dict) -> Path:
    """Write ``state`` (tensors) and ``config`` (must hold a ``"kind"``) into ``directory``; returns it."""
    if "kind" not in config:
        raise ValueError("a checkpoint config needs a 'kind'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
    os.replace(tmp, directory / WEIGHTS_FILE)
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2))
    return directory


def load_checkpoint(directory: str | Path, kind: str) -> tuple[dict, dict[str, Tensor]]:
    """Read a checkpoint folder written by :func:`save_checkpoint` and check that it is a ``kind``.

    Raises :class:`CheckpointError` naming the file and the reason when the folder is incomplete, the
    config is not valid JSON or not of this kind, or the weights are corrupted or truncated.
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: {directory} is not a {kind} checkpoint folder")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("kind") != kind:
        found = config.get("kind") if isinstance(config, dict) else None
        raise CheckpointError(f"{directory} holds a {found!r} checkpoint, expected {kind!r}")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights_path} is corrupted or truncated ({err})") from None
    return config, state


def load_state_strict(module: nn.Module, state: dict[str, Tensor], source: str | Path) -> None:
    """Load ``state`` into ``module`` after checking that names and shapes match exactly."""
    expected = module.state_dict()
    if set(state) != set(expected):
        diff = sorted(set(state) ^ set(expected))
        raise CheckpointError(f"{source} does not match its config: tensors {diff[:6]} differ")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{source} does not match its config: {key} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    module.load_state_dict(state)


def checkpoint_fingerprint(directory: str | Path) -> str:
    """A short SHA-256 of a checkpoint folder's weights: identifies the model a bank was made with."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {directory} is not a checkpoint folder")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
