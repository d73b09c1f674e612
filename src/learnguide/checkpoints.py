"""Checkpoint folders: ``config.json`` + ``model.safetensors``, written atomically, loaded without code."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
STATE_FILE = "trainer_state.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or does not match what it is loaded for."""


def atomic_write_text(path: Path, text: str, tag: str = "") -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file
    (``tag`` names the temporary file apart when several processes write the same path)."""
    tmp = path.with_name(path.name + tag + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_tensors(path: str | Path, tensors: dict[str, Tensor], metadata: dict | None = None) -> None:
    """Write ``tensors`` (and string ``metadata``) to the safetensors file ``path`` through a temporary file
    and a rename: a kill at any moment leaves the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, state: dict[str, Tensor], config: dict) -> Path:
    """Write ``state`` (tensors) and ``config`` (must hold a ``"kind"``) into ``directory``; returns it."""
    if "kind" not in config:
        raise ValueError("a checkpoint config needs a 'kind'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(directory / WEIGHTS_FILE, state)
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2))
    return directory


def folder_kind(directory: str | Path) -> str | None:
    """The kind of artefact ``directory`` holds: a checkpoint's ``"kind"`` (``learnguide.omega_net``, …), a
    bank's (``learnguide.bank``), ``"diffusers pipeline"``, ``"samples"`` (``learnguide sample``),
    ``"results"`` (demo, experiment); None when it does not exist or holds none of these."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for name in (CONFIG_FILE, "learnguide.json", "manifest.json"):
        try:
            kind = json.loads((directory / name).read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind:
            return str(kind)
    if any((directory / sub).is_dir() for sub in ("unet", "transformer")):
        return "diffusers pipeline"
    if (directory / "samples.safetensors").is_file():
        return "samples"
    if (directory / "results.json").is_file():
        return "results"
    return None


def folder_contents(directory: str | Path) -> str:
    """What ``directory`` holds, in words for an error message: a learnguide checkpoint of some kind, a
    transition bank, a diffusers pipeline, samples, results, or nothing of these."""
    kind = folder_kind(directory)
    if not Path(directory).is_dir():
        return "it does not exist"
    if kind == "learnguide.bank":
        return "it holds a transition bank"
    if kind == "diffusers pipeline":
        return "it holds a diffusers pipeline (pass it as --model)"
    if kind in ("samples", "results"):
        return f"it holds {kind}"
    return f"it holds a {kind} checkpoint" if kind else "it holds no learnguide checkpoint"


def check_output_folder(out: str | Path, writes: str, resumable: bool, overwrite: bool) -> None:
    """Raise ``ValueError`` unless a command that writes a ``writes`` artefact may write into ``out``: never
    into a folder holding another kind; into one of the same kind only to resume (``resumable``) or with
    ``overwrite``. A missing or unrecognised folder passes."""
    kind = folder_kind(out)
    if kind is None or (kind == writes and (resumable or overwrite)):
        return
    if kind != writes:
        raise ValueError(f"--out {out}: {folder_contents(out)}; choose another folder (nothing was changed)")
    raise ValueError(f"--out {out} already holds {writes}; pass --overwrite to replace it")


def read_json_config(path: str | Path, kind: str) -> dict:
    """Read a checkpoint's JSON config at ``path`` and check that its ``"kind"`` is ``kind``.

    Raises :class:`CheckpointError` naming the file when it is missing, not valid JSON, or of another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing: {path.parent} is not a {kind} checkpoint folder "
            f"({folder_contents(path.parent)})"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("kind") != kind:
        found = config.get("kind") if isinstance(config, dict) else None
        raise CheckpointError(f"{path.parent} holds a {found!r} checkpoint, expected {kind!r}")
    return config


def installed_package_file(package: str, relative: str) -> Path | None:
    """The file ``relative`` inside the installed package ``package`` (without importing it), or None."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return next((Path(p) / relative for p in locations if (Path(p) / relative).is_file()), None)


def load_checkpoint(directory: str | Path, kind: str) -> tuple[dict, dict[str, Tensor]]:
    """Read a checkpoint folder written by :func:`save_checkpoint` and check that it is a ``kind``.

    Raises :class:`CheckpointError` naming the file and the reason when the folder is incomplete, the
    config is not valid JSON or not of this kind, or the weights are corrupted or truncated.
    """
    directory = Path(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(
            f"{weights_path} is missing: {directory} is not a {kind} checkpoint folder "
            f"({folder_contents(directory)})"
        )
    config = read_json_config(directory / CONFIG_FILE, kind)
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


def save_training_state(
    directory: str | Path,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    meta: dict,
    tensors: dict[str, Tensor] | None = None,
) -> None:
    """Write a trainer's resumable state into ``directory/trainer_state.safetensors`` in one atomic file.

    It holds the optimiser's per-parameter state and parameter groups (learning rates), the random
    generator's state, any extra ``tensors``
    (e.g. raw and EMA weights) and ``meta`` (JSON-serialisable: step, losses, …) as safetensors metadata,
    so a kill at any moment leaves either the previous state or the new one, never a mix.
    """
    state = {"generator": gen.get_state()}
    for idx, st in opt.state_dict()["state"].items():
        for name, value in st.items():
            state[f"opt.{idx}.{name}"] = torch.as_tensor(value)
    state.update({f"extra.{k}": v for k, v in (tensors or {}).items()})
    groups = json.dumps(opt.state_dict()["param_groups"])  # learning rates that schedulers changed
    metadata = {"meta": json.dumps(meta), "param_groups": groups}
    atomic_save_tensors(Path(directory) / STATE_FILE, state, metadata)


def load_training_state(
    directory: str | Path, opt: torch.optim.Optimizer, gen: torch.Generator
) -> tuple[dict, dict[str, Tensor]]:
    """Restore ``opt`` and ``gen`` from :func:`save_training_state`; returns ``(meta, extra tensors)``."""
    path = Path(directory) / STATE_FILE
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
            groups = json.loads(f.metadata()["param_groups"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{path} is not a readable trainer state ({err}); delete it to start over"
        ) from None
    gen.set_state(tensors.pop("generator"))
    opt_state: dict[int, dict[str, Tensor]] = {}
    extra = {}
    for key, value in tensors.items():
        kind, rest = key.split(".", 1)
        if kind == "extra":
            extra[rest] = value
        else:
            idx, name = rest.split(".", 1)
            opt_state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": opt_state, "param_groups": groups})
    return meta, extra


def resumed_progress(start: int, total: int, desc: str, progress: bool) -> tqdm:
    """A progress bar over steps ``start … total − 1`` of a resumable loop, showing the steps already done."""
    return tqdm(range(start, total), desc=desc, disable=not progress, leave=False, initial=start, total=total)
