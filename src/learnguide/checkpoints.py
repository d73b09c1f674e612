"""Checkpoint folders: ``config.json`` + ``model.safetensors``, written atomically, loaded without code."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
STATE_FILE = "trainer_state.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or does not match what it is loaded for."""


M = TypeVar("M", bound=nn.Module)
_KIND_NAMES = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}
_KIND_NAMES |= {list: "a list", dict: "a JSON object", object: "a value"}


@dataclass(frozen=True)
class Field:
    """What one key of a checkpoint's JSON config must hold (see :func:`checked_config`).

    Attributes:
        kind: the accepted JSON type, or a tuple of them: ``int`` (not a boolean), ``float`` (a finite
            integer or float), ``str``, ``bool``, ``list``, ``dict``; ``object`` accepts any value.
        low, high: the inclusive range of a number.
        choices: the allowed values.
        optional: the key may be absent (it is then left out of the result) or null (kept as None).
        items: what each element of a list must hold.
        fields: what the keys of an object must hold (checked recursively; other keys are dropped).
        parse: turns the checked value into what the loader uses (e.g. a schedule from its config); a
            ``TypeError`` or ``ValueError`` it raises becomes a :class:`CheckpointError` naming the key.
    """

    kind: type | tuple[type, ...] = object
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    optional: bool = False
    items: Field | None = None
    fields: Mapping[str, Field] = field(default_factory=dict)
    parse: Callable[[Any], Any] | None = None

    def describe(self) -> str:
        """What the value must be, in words (for error messages)."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        text = " or ".join(_KIND_NAMES[k] for k in kinds)
        if self.low is not None or self.high is not None:
            low, high = ("-inf" if b is None else b for b in (self.low, self.high))
            text += f" in [{low}, {high}]"
        if self.choices is not None:
            text = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        return text + (" (or null)" if self.optional else "")

    def _matches(self, value: Any) -> bool:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        for kind in kinds:
            if kind is object or (kind is bool and isinstance(value, bool)):
                return True
            if kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
                if kind is int and not isinstance(value, int) or not math.isfinite(value):
                    continue
                return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
            if kind in (str, list, dict) and isinstance(value, kind):
                return True
        return False

    def check(self, value: Any, name: str, source: str | Path) -> Any:
        """``value`` (of the key ``name`` in the file ``source``) checked, its parts checked and parsed;
        raises :class:`CheckpointError` naming the file and the key otherwise."""
        if value is None and self.optional:
            return None
        if not self._matches(value) or (self.choices is not None and value not in self.choices):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise CheckpointError(f"{source}: '{name}' must be {self.describe()}, got {shown}")
        if isinstance(value, list) and self.items is not None:
            value = [self.items.check(v, f"{name}[{i}]", source) for i, v in enumerate(value)]
        if isinstance(value, dict) and self.fields:
            value = checked_config(value, self.fields, source, prefix=f"{name}.")
        if self.parse is None:
            return value
        try:
            return self.parse(value)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: '{name}' is not valid ({err})") from None


SIZE = Field(int, 1, 2**24)
"""A width, a channel or a class count (the weights file bounds what is then allocated: see
:func:`check_module_fits`)."""


def checked_config(config: Any, fields: Mapping[str, Field], source: str | Path, prefix: str = "") -> dict:
    """The keys ``fields`` names of a JSON ``config`` read from the file ``source``, each checked against
    its :class:`Field` (type, range, choices; nested objects and lists too) and parsed.

    Every checkpoint loader checks its config with this before it builds anything, so a value of the wrong
    type or range is a one-line :class:`CheckpointError` naming the file and the key (``net.hidden``),
    never a traceback from deep inside a constructor. Optional keys that are absent are left out.
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: '{prefix.rstrip('.') or 'the config'}' must be a JSON object")
    return {
        key: spec.check(config.get(key), prefix + key, source)
        for key, spec in fields.items()
        if key in config or not spec.optional
    }


def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of a safetensors file, read from its header (no data loaded)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is corrupted or truncated ({err})") from None


def check_module_fits(
    build: Callable[[], nn.Module], shapes: Mapping[str, tuple[int, ...]], source: str | Path
) -> None:
    """Raise :class:`CheckpointError` unless the module ``build()`` makes holds exactly the tensors
    ``shapes`` lists (names and shapes: a checkpoint's weights).

    The module is built on the ``meta`` device, so nothing is allocated: a config asking for a huge
    network is refused before any memory is spent, whatever the sizes it names. ``build``'s errors
    (any ``Exception``: third-party constructors raise many kinds) become the :class:`CheckpointError` too.
    """
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except Exception as err:  # any error of a constructor given these values (diffusers' raise many kinds)
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{source}: its config does not describe a valid model ({first})") from None
    if set(shapes) != set(expected):
        diff = sorted(set(shapes) ^ set(expected))
        raise CheckpointError(f"{source} does not match its config: tensors {diff[:6]} differ")
    for key, shape in shapes.items():
        if tuple(shape) != tuple(expected[key]):
            raise CheckpointError(
                f"{source} does not match its config: {key} has shape {tuple(shape)}, "
                f"expected {tuple(expected[key])}"
            )


def load_module(
    directory: str | Path, kind: str, fields: Mapping[str, Field], build: Callable[[dict], M]
) -> tuple[M, dict]:
    """Load the ``kind`` checkpoint folder ``directory`` as the module ``build(config)`` makes from its
    config, checked key by key against ``fields`` (:func:`checked_config`); returns ``(module, config)``.

    The weights must fit the module exactly (:func:`check_module_fits`, before anything is allocated), so
    a config of the wrong type, range or size is a one-line :class:`CheckpointError` naming the file and
    the key, never a traceback or an allocation the weights do not justify.
    """
    config, state = load_checkpoint(directory, kind)
    config = checked_config(config, fields, Path(directory) / CONFIG_FILE)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    check_module_fits(lambda: build(config), shapes, Path(directory) / WEIGHTS_FILE)
    module = build(config)
    module.load_state_dict(state)
    return module, config


def check_finite(tensors: Mapping[str, Tensor], where: str, error: type[ValueError] = ValueError) -> None:
    """Raise ``error`` naming ``where`` (a file, a folder, a run) and the tensor when a floating-point tensor
    of ``tensors`` holds NaN or Inf: weights, statistics and samples are checked with this where they are
    read or written, so a NaN stops the run at the boundary it crossed instead of spreading."""
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise error(f"{where}: {name} holds NaN or Inf")


def _os_error(err: BaseException, path: Path) -> BaseException:
    """``err`` as an ``OSError`` naming ``path`` when it is one (safetensors reports a full disk as a
    ``SafetensorError`` ending in "(os error 28)"; ``Path.write_text`` raises one without a file name)."""
    found = re.search(r"\(os error (\d+)\)", str(err)) if isinstance(err, SafetensorError) else None
    if found:
        code = int(found.group(1))
        return OSError(code, os.strerror(code), str(path))
    if isinstance(err, OSError) and err.filename is None:
        return OSError(err.errno, err.strerror, str(path))
    return err


@contextlib.contextmanager
def _through_temporary(path: Path, tag: str = "") -> Iterator[Path]:
    """The temporary file to write ``path``'s new content into: renamed onto ``path`` when the block ends,
    removed when it fails (a full disk, say; then re-raised as an ``OSError`` naming ``path``), so a failed
    write leaves the old file or none, and no stray temporary file."""
    tmp = path.with_name(path.name + tag + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        error = _os_error(err, path)
        if error is err:
            raise
        raise error from None


def strict_json(value: object, **dumps_kwargs) -> str:
    """JSON text of ``value`` (``json.dumps`` keywords pass through) with every NaN or ±Inf float written as
    ``null``: JSON has no such numbers, and strict readers refuse Python's ``NaN``."""

    def finite(v: object) -> object:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), allow_nan=False, **dumps_kwargs)


def atomic_write_text(path: Path, text: str, tag: str = "") -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file
    (``tag`` names the temporary file apart when several processes write the same path)."""
    with _through_temporary(path, tag) as tmp:
        tmp.write_text(text)


def plain_file_mode(*paths: Path) -> None:
    """Give ``paths`` the mode every other file learnguide writes has, 0666 less the umask (usually 0644):
    safetensors creates its files 0600, readable by their owner only."""
    umask = os.umask(0)
    os.umask(umask)
    for path in paths:
        os.chmod(path, 0o666 & ~umask)


def atomic_save_tensors(path: str | Path, tensors: dict[str, Tensor], metadata: dict | None = None) -> None:
    """Write ``tensors`` (and string ``metadata``) to the safetensors file ``path`` through a temporary file
    and a rename: a kill at any moment leaves the old file or the new one, never half of one."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with _through_temporary(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        plain_file_mode(tmp)


def save_checkpoint(directory: str | Path, state: dict[str, Tensor], config: dict) -> Path:
    """Write ``state`` (tensors) and ``config`` (must hold a ``"kind"``) into ``directory``; returns it.
    Raises ``ValueError`` naming the folder and the tensor, before anything is written, when a weight holds
    NaN or Inf (e.g. a diverged training run)."""
    if "kind" not in config:
        raise ValueError("a checkpoint config needs a 'kind'")
    directory = Path(directory)
    check_finite(state, f"the weights to be saved in {directory} (the run diverged: try a lower --lr)")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(directory / WEIGHTS_FILE, state)
    atomic_write_text(directory / CONFIG_FILE, strict_json(config, indent=2))
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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
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
    config is not valid JSON or not of this kind, or the weights are corrupted, truncated or not finite.
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
    check_finite(state, str(weights_path), CheckpointError)
    return config, state


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


def training_state_meta(directory: str | Path) -> dict:
    """The ``meta`` a trainer saved with :func:`save_training_state` into ``directory`` (its step or
    iteration, record, …), read from the file's header without loading a tensor; ``{}`` when ``directory``
    holds no readable trainer state (a fresh run)."""
    path = Path(directory) / STATE_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
    except (SafetensorError, OSError, KeyError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


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
