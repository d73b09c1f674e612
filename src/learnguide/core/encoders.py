"""A user's frozen torch module as the feature map φ of the discrepancy (docs/design.md §3.2).

An *encoder* is any ``nn.Module`` mapping particles ``x [B, ...]`` (or ``(x, s)`` when it is time-conditioned)
to features ``[B, ...]``, flattened to ``[B, F]``. It is saved as a checkpoint folder, ``config.json`` (the
class path, its keyword arguments, whether it takes s, the particle shape) plus ``model.safetensors``, and
loaded without running code from the folder: the class must be *registered*, either in Python with
:func:`register_encoder` (a decorator) or by an installed package's entry point in the group
``learnguide.encoders`` (``my_encoder = "my_pkg.features:MyEncoder"`` in its ``pyproject.toml``), which is
how a command-line run finds a user's class.

    @register_encoder
    class MyEncoder(nn.Module):
        def __init__(self, width: int): ...
        def forward(self, x): ...

    save_encoder(MyEncoder(width=64), "runs/encoder", init={"width": 64}, input_shape=(1, 28, 28))
    phi = encoder_features(*load_encoder("runs/encoder"))   # φ(x [B, 1, 28, 28], s [B]) -> [B, F]
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

import torch
from torch import Tensor, nn

from learnguide.checkpoints import SIZE, CheckpointError, Field, load_module, save_checkpoint
from learnguide.core.discrepancy import FeatureMap

KIND = "learnguide.encoder"
ENTRY_POINT_GROUP = "learnguide.encoders"

_REGISTERED: dict[str, type[nn.Module]] = {}


def class_path(cls: type) -> str:
    """The name a checkpoint gives ``cls``: ``"module:QualifiedName"`` (an entry point's form)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def register_encoder(cls: type[nn.Module]) -> type[nn.Module]:
    """Register ``cls`` (an ``nn.Module`` subclass) so that encoder folders naming it can be loaded; returns
    it, so it can decorate the class."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_encoder takes an nn.Module subclass, got {cls!r}")
    _REGISTERED[class_path(cls)] = cls
    return cls


def registered_encoder(path: str) -> type[nn.Module] | None:
    """The class registered as ``path`` ("module:QualifiedName"): by :func:`register_encoder`, or by an
    installed package's entry point of :data:`ENTRY_POINT_GROUP` whose value is ``path`` (imported then, and
    only then). None when neither registers it."""
    if path in _REGISTERED:
        return _REGISTERED[path]
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.value.replace(" ", "") == path:
            try:
                return register_encoder(point.load())
            except Exception as err:  # an installed package's import: any error it raises
                raise CheckpointError(
                    f"the entry point {point.name} = {point.value} of {ENTRY_POINT_GROUP} does not load an "
                    f"nn.Module class ({type(err).__name__}: {err})"
                ) from None
    return None


def _registered_class(path: str) -> type[nn.Module]:
    """The ``class`` of an encoder's config.json resolved by :func:`registered_encoder`; ``ValueError``
    (a :class:`~learnguide.checkpoints.CheckpointError` naming the file, through ``Field.parse``) when it is
    not registered."""
    cls = registered_encoder(path)
    if cls is None:
        raise ValueError(
            f"it names the class {path}, which is not registered: decorate it with "
            f"learnguide.core.encoders.register_encoder, or declare it as an entry point of the group "
            f"{ENTRY_POINT_GROUP} of an installed package"
        )
    return cls


CONFIG_FIELDS = {  # what load_encoder reads from config.json
    "class": Field(str, parse=_registered_class),
    "init": Field(dict),
    "time_conditioned": Field(bool),
    "input_shape": Field(list, items=SIZE, optional=True),
}


def save_encoder(
    module: nn.Module,
    directory: str | Path,
    init: dict | None = None,
    time_conditioned: bool = False,
    input_shape: Sequence[int] | None = None,
) -> Path:
    """Save ``module`` as an encoder folder that :func:`load_encoder` rebuilds as ``type(module)(**init)``.

    Args:
        module: an instance of a registered class (:func:`register_encoder`).
        directory: the folder to write (``config.json`` + ``model.safetensors``, atomically).
        init: the JSON keyword arguments that rebuild ``module``'s architecture.
        time_conditioned: ``module(x, s)`` takes the particles' time s ``[B]`` (t ∈ [0, 1], 0 = data);
            otherwise ``module(x)``.
        input_shape: the particle shape it takes (e.g. ``(C, H, W)``); checked on every call when given.
    """
    path, init = class_path(type(module)), dict(init or {})
    if registered_encoder(path) is not type(module):
        raise ValueError(f"{path} is not registered: decorate it with register_encoder before saving it")
    config = {"kind": KIND, "class": path, "init": init, "time_conditioned": time_conditioned}
    config["input_shape"] = list(input_shape) if input_shape is not None else None
    state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}  # tied: copies
    return save_checkpoint(directory, state, config)


def load_encoder(directory: str | Path) -> tuple[nn.Module, dict]:
    """The encoder saved in ``directory`` (eval mode) and its config (``class`` resolved to the registered
    class); a folder that is not an encoder, a class that is not registered, or weights that do not fit the
    class is a one-line :class:`~learnguide.checkpoints.CheckpointError`."""
    module, config = load_module(directory, KIND, CONFIG_FIELDS, lambda c: c["class"](**c["init"]))
    return module.eval(), config


def encoder_features(module: nn.Module, config: dict) -> FeatureMap:
    """φ(x [B, ...], s [B]) -> ``[B, F]`` of a frozen encoder (eval mode, no parameter gradients: gradients
    reach x only), computed in float32 and returned in x's dtype. ``config``: :func:`load_encoder`'s (whether
    the module takes s; the particle shape it takes, checked)."""
    module.eval().requires_grad_(False)
    shape = tuple(config["input_shape"]) if config.get("input_shape") else None

    def phi(x: Tensor, s: Tensor) -> Tensor:
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise ValueError(f"the encoder takes particles of shape {list(shape)}, got {list(x.shape[1:])}")
        args = (x.float(), s.float()) if config["time_conditioned"] else (x.float(),)
        return torch.flatten(module(*args), start_dim=1).to(x.dtype)

    return phi
