"""Training class-conditional denoisers with label dropout, and their checkpoints.

``sample_data(n, generator) -> (x_0 [n, ...], class ids [n])`` is the data interface throughout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from learnguide.checkpoints import (
    SIZE,
    STATE_FILE,
    CheckpointError,
    Field,
    load_module,
    load_training_state,
    resumed_progress,
    save_checkpoint,
    save_training_state,
)
from learnguide.core.denoisers import PREDICTIONS, PredictionAdapter, prediction_target
from learnguide.core.items import DataSampler
from learnguide.core.networks import MLPDenoiserNet
from learnguide.core.schedules import get_schedule

CHECKPOINT_KIND = "learnguide.mlp_denoiser"
CONFIG_FIELDS = {  # what load_mlp_denoiser reads from config.json
    "net": Field(
        dict,
        fields=dict.fromkeys(("dim", "num_classes", "hidden"), SIZE)
        | {"layers": Field(int, 1, 256), "fourier_features": Field(int, 1, 4096)},
    ),
    "schedule": Field(parse=get_schedule),
    "prediction": Field(str, choices=PREDICTIONS),
    "data_id": Field(str, optional=True),
}


@dataclass
class DenoiserTrainingConfig:
    """Hyper-parameters of :func:`train_denoiser`.

    Attributes:
        steps: optimiser steps.
        batch_size: items per step.
        lr: peak Adam learning rate (cosine decay to 0 over ``steps``).
        label_dropout: probability of replacing a class id by the null id (trains x̂(·, ∅)).
        label_noise: probability of replacing a class id by the id of another item of the batch (a draw
            from the class prior, independent of x_0). The conditional branch then learns
            (1 − q) p(x | c) + q p(x): it under-commits to its condition, which guidance can undo
            (docs/design.md §9).
        condition_lr_scale: learning-rate multiplier for parameters whose name contains ``"class_embedding"``
            (the condition pathway). Below 1 the model learns its condition more slowly than the shared
            structure.
        ema_decay: decay of an exponential moving average of the weights (0: none), warmed up as
            min(decay, (1 + k) / (10 + k)) at step k. With it, the model ends the run holding the EMA
            weights (what sampling should use).
        seed: seeds data, noise, times and dropout.
    """

    steps: int = 4000
    batch_size: int = 512
    lr: float = 2e-3
    label_dropout: float = 0.2
    label_noise: float = 0.0
    condition_lr_scale: float = 1.0
    ema_decay: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                "--steps and --batch-size (steps, batch_size) must be >= 1, got "
                f"{self.steps} and {self.batch_size}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay (ema_decay) must be in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.lr < math.inf or not 0.0 <= self.condition_lr_scale < math.inf:
            raise ValueError(
                f"--lr (lr) must be a finite number > 0 and condition_lr_scale >= 0, got lr={self.lr}"
            )
        for name in ("label_dropout", "label_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                flag = f"--{name.replace('_', '-')} ({name})" if name == "label_dropout" else name
                raise ValueError(f"{flag} must be a probability in [0, 1], got {getattr(self, name)}")


@torch.enable_grad()  # trains even when the caller samples under no_grad
def train_denoiser(
    model: PredictionAdapter,
    sample_data: DataSampler,
    config: DenoiserTrainingConfig,
    progress: bool = True,
    state_dir: str | Path | None = None,
    checkpoint_every: int = 0,
) -> list[float]:
    """Train ``model.net`` by regression on its prediction target with label dropout; returns the loss curve.

    Times are drawn t ~ U(0, 1); the loss is the mean squared error of the network output against
    :func:`~learnguide.core.denoisers.prediction_target` for ``model.prediction``.

    Args:
        model: a class-conditional :class:`PredictionAdapter` (its ``null_id`` is the dropout label).
        sample_data: ``(n, generator) -> (x_0 [n, ...], class ids [n])``.
        config: hyper-parameters; ``config.seed`` makes the run reproducible.
        progress: show a progress bar with the running loss.
        state_dir: folder for a resumable trainer state (weights, EMA, optimiser, random state, losses),
            written atomically every ``checkpoint_every`` steps and at the end. A run pointed at a folder
            holding such a state continues from it and ends with the same weights as an uninterrupted run.
        checkpoint_every: steps between trainer states (0: only at the end).
    """
    config.validate()
    if model.null_id is None:
        raise ValueError("train_denoiser trains class-conditional models (a PredictionAdapter with null_id)")
    gen = torch.Generator().manual_seed(config.seed)
    cond_params = [p for n, p in model.net.named_parameters() if "class_embedding" in n]
    other_params = [p for n, p in model.net.named_parameters() if "class_embedding" not in n]
    opt = torch.optim.Adam(
        [
            {"params": other_params, "lr": config.lr},
            {"params": cond_params, "lr": config.lr * config.condition_lr_scale},
        ]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
    ema = {k: v.detach().clone() for k, v in model.net.state_dict().items()} if config.ema_decay else {}
    losses: list[float] = []
    start = 0
    if state_dir is not None and (Path(state_dir) / STATE_FILE).is_file():
        meta, tensors = load_training_state(state_dir, opt, gen)
        if meta.get("config") != asdict(config):
            raise CheckpointError(
                f"{state_dir} holds the state of a run with other settings; "
                "use another folder or the same settings"
            )
        model.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        sched.load_state_dict(meta["scheduler"])
        start, losses = meta["step"], meta["losses"]

    def save_state(step: int) -> None:
        tensors = {f"net.{k}": v for k, v in model.net.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in ema.items()})
        meta = {"step": step, "losses": losses, "scheduler": sched.state_dict(), "config": asdict(config)}
        save_training_state(state_dir, opt, gen, meta, tensors)

    if state_dir is not None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
    model.train()
    bar = resumed_progress(start, config.steps, "train denoiser", progress)
    for step in bar:
        x0, labels = sample_data(config.batch_size, gen)
        x0 = x0.float()
        noisy = torch.rand(labels.shape, generator=gen) < config.label_noise
        labels = torch.where(noisy, labels[torch.randperm(labels.shape[0], generator=gen)], labels)
        drop = torch.rand(labels.shape, generator=gen) < config.label_dropout
        labels = torch.where(drop, model.null_id, labels)
        t = torch.rand(x0.shape[0], generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        x_t = model.schedule.add_noise(x0, t, noise)
        target = prediction_target(x0, noise, t, model.schedule, model.prediction)
        loss = (model.net(x_t, t, labels) - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if ema:
            decay = min(config.ema_decay, (1 + step) / (10 + step))  # warm-up: early weights fade fast
            with torch.no_grad():
                for k, v in model.net.state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[k].lerp_(v, 1.0 - decay)
                    else:
                        ema[k].copy_(v)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if state_dir is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            save_state(step + 1)
    if state_dir is not None:
        save_state(config.steps)
    if ema:
        model.net.load_state_dict(ema)
    model.eval()
    return losses


def save_mlp_denoiser(
    model: PredictionAdapter, directory: str | Path, training: DenoiserTrainingConfig, data_id: str
) -> Path:
    """Save an :class:`MLPDenoiserNet`-based denoiser with its schedule, prediction and training record.

    ``data_id`` identifies the data it was trained on; :func:`load_mlp_denoiser` can insist on it.
    """
    config = {
        "kind": CHECKPOINT_KIND,
        "net": model.net.config,
        "schedule": model.schedule.config(),
        "prediction": model.prediction,
        "training": asdict(training),
        "data_id": data_id,
    }
    return save_checkpoint(directory, model.net.state_dict(), config)


def load_mlp_denoiser(directory: str | Path, data_id: str | None = None) -> PredictionAdapter:
    """Load a denoiser saved by :func:`save_mlp_denoiser` (JSON + safetensors; no code runs).

    Raises :class:`~learnguide.checkpoints.CheckpointError` if the folder is not such a checkpoint, is
    corrupted, or (when ``data_id`` is given) was trained on other data.
    """
    net, config = load_module(directory, CHECKPOINT_KIND, CONFIG_FIELDS, lambda c: MLPDenoiserNet(**c["net"]))
    if data_id is not None and config.get("data_id") != data_id:
        raise CheckpointError(f"{directory} was trained on other data than asked for")
    model = PredictionAdapter(
        net, config["schedule"], config["prediction"], null_id=config["net"]["num_classes"]
    )
    return model.eval()
