"""Any diffusers denoising model as a learnguide x̂ denoiser, with its scheduler's noise schedule.

:class:`DiffusersDenoiser` wraps a class-conditional model (``UNet2DModel`` with ``num_class_embeds``,
``DiTTransformer2DModel``) or a text-conditional one (``UNet2DConditionModel`` with prompt embeddings) and
its scheduler: the scheduler fixes the schedule (:func:`schedule_from_scheduler`: ``alphas_cumprod`` of
DDPM-family schedulers exactly, or rectified flow for flow matching), what the model predicts
(``prediction_type``) and which timestep the model sees for our continuous time t. :func:`scheduler_grid`
turns the scheduler's inference timesteps into our time grid, so :func:`learnguide.core.sampling.sample` with
``grid=`` takes the same steps as the scheduler's own loop.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import diffusers
import torch
from torch import Tensor, nn

from learnguide.core.denoisers import null_class_ids, to_x0
from learnguide.core.schedules import DiscreteVP, RectifiedFlow, Schedule

PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler",)
SNAP = 1e-3  # fractional timesteps this close to an integer are float32 round-off of t·T: snapped


def load_scheduler(config: dict) -> Any:
    """A diffusers scheduler from its config dict (``scheduler_config.json``); the class is looked up by its
    ``_class_name`` among diffusers' schedulers only, so no code outside diffusers is run."""
    name = config.get("_class_name", "")
    cls = getattr(diffusers, name, None) if name.endswith("Scheduler") else None
    if cls is None:
        raise ValueError(f"{name!r} is not a diffusers scheduler class")
    return cls.from_config(config)


def schedule_from_scheduler(scheduler: Any) -> Schedule:
    """Our schedule for a diffusers scheduler (or its config dict): :class:`DiscreteVP` from its
    ``alphas_cumprod`` (DDPM, DDIM, PNDM, Euler, DPM-Solver, …), :class:`RectifiedFlow` for flow matching."""
    if isinstance(scheduler, dict):
        scheduler = load_scheduler(scheduler)
    if type(scheduler).__name__ in FLOW_SCHEDULERS:
        return RectifiedFlow()
    alphas_cumprod = getattr(scheduler, "alphas_cumprod", None)
    if alphas_cumprod is None:
        raise ValueError(f"cannot read a noise schedule from {type(scheduler).__name__}")
    return DiscreteVP(tuple(alphas_cumprod.double().tolist()))


def prediction_from_scheduler(scheduler: Any) -> str:
    """What the model predicts, in :func:`learnguide.core.denoisers.to_x0`'s names: ``eps``, ``v``, ``x0`` or
    ``flow`` (flow matching: the velocity noise − x_0)."""
    if type(scheduler).__name__ in FLOW_SCHEDULERS:
        return "flow"
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"unsupported prediction_type {kind!r}; supported: {sorted(PREDICTION_TYPES)}")
    return PREDICTION_TYPES[kind]


def scheduler_grid(scheduler: Any, steps: int) -> Tensor:
    """Our time grid ``[steps + 1]`` (float64, decreasing to the scheduler's last target) that reproduces
    ``scheduler.set_timesteps(steps)``: timesteps k at t = (k + 1)/T, flow matching at t = σ.

    Our sampler is DDIM (Euler for flow matching), so for other DDPM-family schedulers (PNDM, Euler, …) the
    grid is the one ``DDIMScheduler`` makes from the same config; ``scheduler`` itself is then left alone.
    """
    if type(scheduler).__name__ in FLOW_SCHEDULERS:
        scheduler.set_timesteps(steps)
        return scheduler.sigmas.double().clone()
    if not isinstance(scheduler, diffusers.DDIMScheduler):
        scheduler = diffusers.DDIMScheduler.from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    total = scheduler.config.num_train_timesteps
    timesteps = scheduler.timesteps.double()
    targets = timesteps - total // steps  # where DDIMScheduler.step goes from each timestep
    if not torch.equal(targets[:-1], timesteps[1:]):
        raise ValueError(
            "the scheduler's timesteps are not evenly spaced by num_train_timesteps // steps; use "
            'timestep_spacing="leading" or a step count that divides num_train_timesteps'
        )
    final_alpha = float(getattr(scheduler, "final_alpha_cumprod", torch.tensor(1.0)))
    last = 0.0 if final_alpha == 1.0 else 1.0 / total  # set_alpha_to_one=False ends at timestep 0
    return torch.cat([(timesteps + 1.0) / total, torch.tensor([last], dtype=torch.float64)])


def model_timestep(schedule: Schedule, t: Tensor, num_train_timesteps: int) -> Tensor:
    """A diffusers model's timestep for continuous times ``t`` (any shape): t·T − 1 for DDPM-family schedules
    (:class:`DiscreteVP`), σ·T for flow matching, with float32 round-off at integer timesteps removed."""
    if isinstance(schedule, DiscreteVP):
        steps = schedule.timestep(t.double())
        return torch.where((steps - steps.round()).abs() < SNAP, steps.round(), steps).to(t.dtype)
    return t * num_train_timesteps


def model_image_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of the samples a diffusers model takes, from its ``in_channels`` and ``sample_size``."""
    size = model.config.sample_size
    return (model.config.in_channels, *((size, size) if isinstance(size, int) else size))


class DiffusersDenoiser(nn.Module):
    """A diffusers model and its scheduler as an x̂ denoiser ``(x_t [B, C, H, W], t [B], cond) -> x̂_0``.

    Args:
        model: the diffusers model (put in eval mode: DiT drops labels itself in train mode).
        scheduler: its scheduler or scheduler config dict (schedule, prediction type, time map).
        null_class: the class id meaning ∅ for class-conditional models (default for
            ``DiTTransformer2DModel``: ``num_embeds_ada_norm``, its own null class).
        null_embedding: the ∅ condition of text-conditional models, the empty prompt's embedding ``[L, D]``;
            conditions are then prompt embeddings ``[B, L, D]`` passed as ``encoder_hidden_states``. Models
            that also take a pooled embedding (``pooled_projections``: SD3, Flux) take conditions packed by
            :func:`~learnguide.data.prompts.pack_prompt_condition`, ``[B, L + 1, max(D, P)]``, and a ∅
            packed the same way.

    Outputs with more channels than the input (learned variance) keep the first C channels.
    """

    def __init__(
        self,
        model: nn.Module,
        scheduler: Any,
        null_class: int | None = None,
        null_embedding: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.pooled_dims: tuple[int, int] | None = None
        scheduler = load_scheduler(scheduler) if isinstance(scheduler, dict) else scheduler
        self.model = model.eval().requires_grad_(False)
        self.schedule = schedule_from_scheduler(scheduler)
        self.prediction = prediction_from_scheduler(scheduler)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        accepts = inspect.signature(model.forward).parameters
        if null_embedding is not None:
            if "encoder_hidden_states" not in accepts:
                raise ValueError(
                    f"{type(model).__name__} takes no encoder_hidden_states (it is class-conditional): give "
                    "class-labelled images and --null-class (null_class=), not a prompt file"
                )
            self.cond_keyword, self.null_class = "encoder_hidden_states", None
            if "pooled_projections" in accepts:  # packed [B, L + 1, max(D, P)]: prompt rows, then pooled
                self.pooled_dims = (model.config.joint_attention_dim, model.config.pooled_projection_dim)
                if null_embedding.shape[-1] != max(self.pooled_dims):
                    raise ValueError(
                        f"{type(model).__name__} takes pooled projections: give a prompt file with "
                        "pooled_embeds and null_pooled (in Python: conditions and null_embedding packed by "
                        f"pack_prompt_condition, width {max(self.pooled_dims)})"
                    )
            elif isinstance(width := getattr(model.config, "cross_attention_dim", None), int):
                if null_embedding.shape[-1] != width:
                    raise ValueError(
                        f"{type(model).__name__} takes {width}-wide prompt embeddings (cross_attention_dim), "
                        f"got {null_embedding.shape[-1]}-wide ones: encode the prompts with this pipeline's "
                        "text encoder"
                    )
        else:
            config = model.config
            classes = getattr(config, "num_class_embeds", None) or getattr(
                config, "num_embeds_ada_norm", None
            )
            if "class_labels" not in accepts or classes is None:
                raise ValueError(
                    f"{type(model).__name__} has no class embedding (num_class_embeds, num_embeds_ada_norm): "
                    "it takes prompts: give a prompt file (--dataset / --prompts; null_embedding= in Python)"
                )
            null_class = (
                null_class if null_class is not None else getattr(model.config, "num_embeds_ada_norm", None)
            )
            if null_class is None:
                raise ValueError(
                    "give --null-class (null_class=): the class id the model was trained with as ∅"
                )
            table = classes if getattr(config, "num_class_embeds", None) else classes + 1  # DiT: K + ∅ rows
            if not 0 <= null_class < table:
                raise ValueError(
                    f"the null class must be one of the model's class ids [0, {table}), got {null_class}"
                )
            self.cond_keyword, self.null_class = "class_labels", int(null_class)
        self.register_buffer("null_embedding", null_embedding, persistent=False)

    def timestep(self, t: Tensor) -> Tensor:
        """The model's timestep ``[B]`` for continuous times ``t [B]`` (see :func:`model_timestep`)."""
        return model_timestep(self.schedule, t, self.num_train_timesteps)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x̂_0 ``[B, C, H, W]`` for x_t ``[B, C, H, W]``, t ``[B]`` and class ids ``[B]`` or prompt embeddings
        ``[B, L, D]`` (packed ``[B, L + 1, max(D, P)]`` for models with pooled projections)."""
        if self.pooled_dims is not None:
            prompt_dim, pooled_dim = self.pooled_dims
            conditioning = {"encoder_hidden_states": cond[:, :-1, :prompt_dim]}
            conditioning["pooled_projections"] = cond[:, -1, :pooled_dim]
        else:
            conditioning = {self.cond_keyword: cond}
        timestep = self.timestep(t).to(x_t.device)
        out = self.model(x_t, timestep=timestep, **conditioning, return_dict=False)[0]
        return to_x0(out[:, : x_t.shape[1]], x_t, t, self.schedule, self.prediction)

    def null_cond(self, cond: Tensor) -> Tensor:
        """The ∅ condition for a batch ``cond``: the null class id, or the empty prompt's embedding."""
        if self.null_class is not None:
            return null_class_ids(cond, self.null_class)
        return self.null_embedding.expand(cond.shape[0], *self.null_embedding.shape).to(cond.dtype)


MODEL_SUBFOLDERS = ("transformer", "unet")


def model_subfolder(folder: str | Path) -> Path:
    """The denoising model's sub-folder of a diffusers pipeline folder (``transformer/`` or ``unet/``)."""
    for name in MODEL_SUBFOLDERS:
        if (Path(folder) / name / "config.json").is_file():
            return Path(folder) / name
    raise FileNotFoundError(
        f"{folder} has no transformer/config.json or unet/config.json: give a diffusers pipeline folder "
        "(save_pretrained of the pipeline, or model and scheduler saved under unet/ and scheduler/)"
    )


def load_diffusers_model(folder: str | Path) -> tuple[nn.Module, Any]:
    """The denoising model and the scheduler of a local diffusers pipeline folder.

    Model and scheduler classes are looked up by their ``_class_name`` among diffusers' own classes, weights
    are read from safetensors only, and nothing is downloaded: no code outside diffusers runs.
    """
    sub = model_subfolder(folder)
    scheduler_file = Path(folder) / "scheduler" / "scheduler_config.json"
    if not scheduler_file.is_file():
        raise FileNotFoundError(f"{scheduler_file} is missing: the scheduler fixes the noise schedule")
    scheduler = load_scheduler(json.loads(scheduler_file.read_text()))
    name = json.loads((sub / "config.json").read_text()).get("_class_name", "")
    cls = getattr(diffusers, name, None) if name.endswith("Model") else None
    if cls is None:
        raise ValueError(f"{sub}/config.json names {name!r}, not a diffusers model class")
    model = cls.from_pretrained(sub, use_safetensors=True, local_files_only=True)
    return model, scheduler


def diffusers_fingerprint(folder: str | Path) -> str:
    """A short SHA-256 of the denoising model's safetensors weights, and of the VAE's for a latent model:
    identifies the model (and the latent space its data live in) in banks and ω-networks."""
    digest = hashlib.sha256()
    files = sorted(model_subfolder(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {model_subfolder(folder)}")
    for path in files + sorted((Path(folder) / "vae").glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
