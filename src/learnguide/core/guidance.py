"""Guidance schedules ω(c, s, t) behind one interface, with the learned ω-network (docs/design.md §4, §5).

Every schedule here uses the **paper convention**: ω = 0 is the plain conditional model and the guided
prediction is x̂_c + ω (x̂_c − x̂_∅). The usual "guidance scale" (diffusers, k-diffusion, EDM2, DiT) is
w = 1 + ω; convert with :func:`omega_to_scale` and :func:`scale_to_omega`.

``omega(cond, s, t)`` returns the weight ``[B]`` for the step from t down to s of each item.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from learnguide.checkpoints import SIZE, CheckpointError, Field, load_module, save_checkpoint
from learnguide.core.memory import FLOAT32, FLOAT64, check_memory
from learnguide.core.networks import FourierFeatures, mlp
from learnguide.core.schedules import LOG_SNR_CLAMP, Schedule, get_schedule

METHODS = ("unguided", "constant", "interval", "increasing", "learned")  # the schedules compared in reports
OUTPUT_MAPS = ("relu", "softplus", "identity", "relu-st")
ENVELOPES = ("none", "increasing-linear", "increasing-cosine")  # OmegaNet's fixed time profiles e(t)
CHECKPOINT_KIND = "learnguide.omega_net"
HPARAMS = (
    "num_classes", "cond_dim", "hidden", "layers", "fourier_features", "output", "init_omega", "shared",
    "envelope",
)  # fmt: skip
CONFIG_FIELDS = {  # what OmegaNet.load reads from config.json
    "schedule": Field(parse=get_schedule),
    "num_classes": Field(int, 1, SIZE.high, optional=True),
    "cond_dim": Field(int, 1, SIZE.high, optional=True),
    "hidden": SIZE,
    "layers": Field(int, 1, 256),
    "fourier_features": Field(int, 0, 4096),
    "output": Field(str, choices=OUTPUT_MAPS),
    "init_omega": Field(float, -1e6, 1e6),
    "shared": Field(bool, optional=True),  # absent in networks saved before it existed: per condition
    "envelope": Field(str, choices=ENVELOPES, optional=True),  # absent before it existed: "none"
    "extra": Field(dict, optional=True, fields={"denoiser_id": Field(str, optional=True)}),
}


def omega_to_scale(omega: float | Tensor) -> float | Tensor:
    """Paper ω → conventional guidance scale w = 1 + ω (diffusers' ``guidance_scale``)."""
    return 1.0 + omega


def scale_to_omega(scale: float | Tensor) -> float | Tensor:
    """Conventional guidance scale w → paper ω = w − 1."""
    return scale - 1.0


class GuidanceSchedule:
    """Base class: a rule for ω(c, s, t) in the paper convention (ω = 0 is the conditional model)."""

    def omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """ω ``[B]`` for conditions ``cond`` (``[B]`` ids or ``[B, E]``) and step times s < t ``[B]``."""
        raise NotImplementedError

    def omega_table(self, cond: Tensor, grid: Tensor) -> Tensor:
        """ω for every step of a sampling grid, ``[N, B]``, in one batched call.

        ``grid`` is ``[N + 1]`` in sampling order (t_N > … > t_0); row i is the step grid[i] → grid[i + 1].
        ω does not depend on x_t, so it is computed once per distinct condition and step (N · U evaluations
        for U distinct conditions, not N · B) and gathered for the batch. The table is on the device of
        the schedule's parameters (an ω-network's), else of ``cond``. Raises ``ValueError`` if some ω is
        not finite.
        """
        params = self.parameters() if isinstance(self, nn.Module) else iter(())
        device = next((p.device for p in params), cond.device)  # an ω-network's own device
        unique, inverse = torch.unique(cond.to(device), dim=0, return_inverse=True)
        grid = grid.to(device)
        n, u = grid.shape[0] - 1, unique.shape[0]
        each = self.bytes_per_omega() + unique[0].numel() * unique.element_size()  # + its condition
        check_memory(n * u * each, f"ω for {n} steps × {u} conditions", "the step count (--steps)", device)
        t = grid[:-1].repeat_interleave(u)
        s = grid[1:].repeat_interleave(u)
        cond_rep = unique.repeat((n,) + (1,) * (unique.dim() - 1))
        with torch.no_grad():
            table = self.omega(cond_rep, s, t).reshape(n, u).double()
        if not bool(torch.isfinite(table).all()):  # e.g. an ω-network with NaN weights, a constant of inf
            raise ValueError(f"the guidance {self.config().get('type')} gave a non-finite ω (NaN or inf)")
        return table[:, inverse]

    def config(self) -> dict:
        """JSON-serialisable description (``{"type": ..., ...}``)."""
        raise NotImplementedError

    def bytes_per_omega(self) -> int:
        """A lower bound of the memory each ω of :meth:`omega_table` takes: its s and t, the index of its
        condition and the ω itself, float64, each held twice."""
        return 8 * FLOAT64


def omega_condition(cond: Tensor) -> Tensor:
    """What ω sees of a condition: class ids ``[B]`` and embeddings ``[B, E]`` as they are, prompt embeddings
    ``[B, L, E]`` mean-pooled over the L tokens to ``[B, E]`` (banks store this, not the whole prompt)."""
    return cond.float().mean(1) if cond.dim() == 3 else cond


def _full(value: float, like: Tensor) -> Tensor:
    return torch.full(like.shape[:1], float(value), dtype=torch.float64, device=like.device)


class ConstantGuidance(GuidanceSchedule):
    """ω(c, s, t) = ``omega`` everywhere (classic CFG with scale w = 1 + ω)."""

    def __init__(self, omega: float) -> None:
        self.value = float(omega)

    def omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        return _full(self.value, t)

    def config(self) -> dict:
        return {"type": "constant", "omega": self.value}


class IntervalGuidance(GuidanceSchedule):
    """Guidance limited to an interval (Kynkäänniemi et al. 2024): ω inside t_lo ≤ t ≤ t_hi, else 0.

    ``t`` is the time the step starts from.
    """

    def __init__(self, omega: float, t_lo: float, t_hi: float) -> None:
        if not 0.0 <= t_lo < t_hi <= 1.0:
            raise ValueError(f"need 0 <= t_lo < t_hi <= 1, got t_lo={t_lo}, t_hi={t_hi}")
        self.value, self.t_lo, self.t_hi = float(omega), float(t_lo), float(t_hi)

    def omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        inside = (t >= self.t_lo) & (t <= self.t_hi)
        return torch.where(inside, self.value, 0.0).double()

    def config(self) -> dict:
        return {"type": "interval", "omega": self.value, "t_lo": self.t_lo, "t_hi": self.t_hi}


class IncreasingGuidance(GuidanceSchedule):
    """Guidance that grows as sampling proceeds (Wang et al. 2024), from 0 at t = 1 to ``omega_max`` at t = 0.

    ``shape="linear"``: ω = ω_max (1 − t);  ``shape="cosine"``: ω = ω_max (1 − cos(π (1 − t))) / 2.
    """

    SHAPES = ("linear", "cosine")

    def __init__(self, omega_max: float, shape: str = "linear") -> None:
        if shape not in self.SHAPES:
            raise ValueError(f"unknown shape {shape!r}; choose one of {self.SHAPES}")
        self.omega_max, self.shape = float(omega_max), shape

    def omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        return self.omega_max * increasing_profile(t.double(), self.shape)

    def config(self) -> dict:
        return {"type": "increasing", "omega_max": self.omega_max, "shape": self.shape}


def increasing_profile(t: Tensor, shape: str) -> Tensor:
    """The increasing schedules' profile ``[B]`` at times ``t [B]``: 0 at t = 1, 1 at t = 0; ``"linear"``:
    1 − t, ``"cosine"``: (1 − cos(π (1 − t))) / 2."""
    if shape == "linear":
        return 1.0 - t
    return 0.5 * (1.0 - torch.cos(math.pi * (1.0 - t)))


class PerStepGuidance(GuidanceSchedule):
    """A per-step list of ω for one sampling grid: ``omegas[i]`` is used for the step grid[i] → grid[i + 1].

    Steps are matched by their start time t (to 1e-6); asking for a t that is not on the grid is an error.
    """

    def __init__(self, omegas: list[float], grid: Tensor) -> None:
        if len(omegas) != grid.shape[0] - 1:
            raise ValueError(f"{len(omegas)} omegas for a grid of {grid.shape[0] - 1} steps")
        self.omegas = torch.tensor([float(w) for w in omegas], dtype=torch.float64)
        self.grid = grid.double()

    def omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        dist = (t.double()[:, None] - self.grid[None, :-1]).abs()
        gap, idx = dist.min(dim=1)
        if bool((gap > 1e-6).any()):
            raise ValueError("PerStepGuidance was asked for a time that is not on its grid")
        return self.omegas.to(t.device)[idx]

    def config(self) -> dict:
        return {"type": "per-step", "omegas": self.omegas.tolist(), "grid": self.grid.tolist()}


class ClampUpStraightThrough(torch.autograd.Function):
    """ω = max(0, raw) ``[B]`` whose gradient passes straight through the clamp only towards ω > 0: where
    raw ≤ 0 it reaches raw if it is negative (a descent step raises raw) and is 0 otherwise, so raw below
    0 neither sits in a dead zone (a ReLU) nor drifts down without bound (a plain straight-through)."""

    @staticmethod
    def forward(ctx, raw: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(raw)
        return raw.clamp(min=0.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        (raw,) = ctx.saved_tensors
        return torch.where((raw > 0) | (grad < 0), grad, torch.zeros_like(grad))


class OmegaNet(nn.Module, GuidanceSchedule):
    """The learned ω_φ(c, s, t) (docs/design.md §4).

    Time input: log-SNR of s and t (Fourier features + the scaled values); condition input: a learned table
    of ``num_classes`` ids, or a linear projection of a ``cond_dim`` embedding. An MLP of ``layers`` layers
    and width ``hidden`` maps their sum to one number, passed through ``output`` ∈ {relu, softplus,
    identity}. The last layer starts at zero weight and a bias that gives ω = ``init_omega`` everywhere.
    ``envelope`` multiplies ω by a fixed time profile e(t) of the step's start t (``"none"``: 1;
    ``"increasing-linear"`` / ``"increasing-cosine"``: :func:`increasing_profile`), so that a network at its
    start is exactly the increasing schedule with ω_max = ``init_omega``.
    With ``shared`` the network has no condition input: one ω(s, t) for every condition (what the tuned
    baselines are), learned from all of them; it still checks that conditions are what it was learned on.

    Fitting sees :meth:`fit_omega`, sampling sees :meth:`forward`. With ``relu`` (the default) the fit trains
    the unconstrained value and the clamp ω = max(0, ·) is applied only at use: a ReLU inside the loss dies
    for good once every input is pushed below 0 (docs/design.md §4). ``softplus`` keeps its map in the fit
    (smooth, but it saturates when driven far below 0); ``identity`` is unconstrained everywhere.
    ``relu-st`` clamps in the fit too (:class:`ClampUpStraightThrough`): the loss never sees ω < 0 (no
    anti-guidance wall, docs/design.md §4), and a value below 0 gets the gradient at 0 when it asks for more
    guidance, so it can come back, and none when it asks for less, so it does not drift off.
    """

    def __init__(
        self,
        schedule: Schedule,
        num_classes: int | None = None,
        cond_dim: int | None = None,
        hidden: int = 128,
        layers: int = 4,
        fourier_features: int = 8,
        output: str = "relu",
        init_omega: float = 1.0,
        shared: bool = False,
        envelope: str = "none",
    ) -> None:
        super().__init__()
        if (num_classes is None) == (cond_dim is None):
            raise ValueError("give exactly one of num_classes (class ids) or cond_dim (embeddings)")
        if output not in OUTPUT_MAPS:
            raise ValueError(f"unknown output map {output!r}; choose one of {OUTPUT_MAPS}")
        if envelope not in ENVELOPES:
            raise ValueError(f"unknown envelope {envelope!r}; choose one of {ENVELOPES}")
        if fourier_features < 0:
            raise ValueError(f"--fourier-features (fourier_features) must be >= 0, got {fourier_features}")
        if not math.isfinite(init_omega) or (output == "softplus" and init_omega <= 0):
            raise ValueError(
                "--init-omega (init_omega) must be a finite number (> 0 for a softplus output), got "
                f"{init_omega}"
            )
        self.schedule = schedule
        self.hparams = dict(
            zip(
                HPARAMS,
                (
                    num_classes,
                    cond_dim,
                    hidden,
                    layers,
                    fourier_features,
                    output,
                    init_omega,
                    shared,
                    envelope,
                ),
                strict=True,
            )
        )
        self.fourier = FourierFeatures(fourier_features, max_frequency=32.0, scale=LOG_SNR_CLAMP)
        self.time_proj = nn.Linear(2 * (2 * fourier_features + 1), hidden)
        if shared:
            self.cond_proj: nn.Module | None = None
        elif num_classes is not None:
            self.cond_proj = nn.Embedding(num_classes, hidden)
        else:
            self.cond_proj = nn.Linear(cond_dim, hidden)
        self.body = mlp(hidden, hidden, 1, layers)
        last = self.body[-1]
        nn.init.zeros_(last.weight)
        bias = math.log(math.expm1(init_omega)) if output == "softplus" else init_omega  # inverse of the map
        nn.init.constant_(last.bias, bias)

    @classmethod
    def for_conditions(
        cls, schedule: Schedule, cond: Tensor, num_classes: int | None = None, **hparams
    ) -> OmegaNet:
        """An ω-network for conditions like ``cond``: class ids ``[N]`` (``num_classes`` of them; default
        ``max + 1``) or embeddings ``[N, E]`` / prompt embeddings ``[N, L, E]`` (width E). ``hparams`` as in
        the constructor."""
        if cond.dim() == 1:
            return cls(schedule, num_classes=num_classes or int(cond.max()) + 1, **hparams)
        return cls(schedule, cond_dim=omega_condition(cond).shape[1], **hparams)

    def _time_features(self, t: Tensor) -> Tensor:
        lam = self.schedule.log_snr(t.double()).float()
        return torch.cat([self.fourier(lam), (lam / LOG_SNR_CLAMP)[:, None]], dim=1)

    def raw(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """The last layer's output ``[B]`` (float32, differentiable) before any output map, for class ids
        ``[B]``, embeddings ``[B, E]`` or prompt embeddings ``[B, L, E]`` (mean-pooled over the L tokens) and
        times s < t ``[B]``."""
        self.check_condition(cond)
        num_classes = self.hparams["num_classes"]
        device = self.time_proj.weight.device
        cond, s, t = omega_condition(cond).to(device), s.to(device), t.to(device)
        h = self.time_proj(torch.cat([self._time_features(s), self._time_features(t)], dim=1))
        if self.cond_proj is not None:
            h = h + self.cond_proj(cond if num_classes is not None else cond.float())
        h = torch.nn.functional.silu(h)
        return self.body(h).squeeze(1)

    def fit_omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """ω ``[B]`` as the fitting losses see it: unconstrained for a ``relu`` output (clamped only at use),
        the output map itself for ``softplus`` and ``identity``, and for ``relu-st`` the clamped value whose
        gradient passes the clamp only towards more guidance (:class:`ClampUpStraightThrough`); times the
        envelope e(t). Same arguments as :meth:`raw`."""
        raw, output = self.raw(cond, s, t), self.hparams["output"]
        if output == "relu-st":
            omega = ClampUpStraightThrough.apply(raw)
        else:
            omega = torch.nn.functional.softplus(raw) if output == "softplus" else raw
        return omega * self.envelope(t)

    def envelope(self, t: Tensor) -> Tensor:
        """The fixed time profile e(t) ``[B]`` (float32) ω is multiplied by, at step starts ``t [B]``."""
        device = self.time_proj.weight.device
        if self.hparams["envelope"] == "none":
            return torch.ones(t.shape, device=device)
        shape = self.hparams["envelope"].removeprefix("increasing-")
        return increasing_profile(t.double(), shape).float().to(device)

    def forward(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """ω ``[B]`` as sampling uses it (float32, differentiable): :meth:`raw` through the output map (≥ 0
        for ``relu`` and ``softplus``), times the envelope e(t). Same arguments as :meth:`raw`."""
        return self.output_map(self.raw(cond, s, t)) * self.envelope(t)

    def output_map(self, raw: Tensor) -> Tensor:
        """The output map applied at use to the last layer's output ``raw [B]`` (see :meth:`forward`)."""
        if self.hparams["output"] in ("relu", "relu-st"):
            return torch.relu(raw)
        if self.hparams["output"] == "softplus":
            return torch.nn.functional.softplus(raw)
        return raw

    def omega(self, cond: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """Same as :meth:`forward`; the :class:`GuidanceSchedule` interface."""
        return self(cond, s, t)

    def bytes_per_omega(self) -> int:
        """As :meth:`GuidanceSchedule.bytes_per_omega`, plus the network's activations (float32, ``hidden``
        wide, one per layer and two more for the time and condition inputs)."""
        return super().bytes_per_omega() + (self.hparams["layers"] + 2) * self.hparams["hidden"] * FLOAT32

    def check_condition(self, cond: Tensor) -> None:
        """Raise ``ValueError`` unless ``cond`` is what this network was learned on: class ids ``[B]`` (an
        integer tensor) in [0, num_classes), or embeddings ``[B, E]`` / prompt embeddings ``[B, L, E]`` with
        E = cond_dim."""
        num_classes, cond_dim = self.hparams["num_classes"], self.hparams["cond_dim"]
        got = f"{str(cond.dtype).removeprefix('torch.')} conditions of shape {tuple(cond.shape)}"
        if num_classes is not None:
            if cond.dim() != 1 or cond.is_floating_point():
                raise ValueError(
                    f"this ω-network was learned on class ids [B] ({num_classes} classes), got {got}"
                )
            if bool(((cond < 0) | (cond >= num_classes)).any()):
                raise ValueError(f"class ids must be in [0, {num_classes}), got {cond.min()}..{cond.max()}")
        elif cond.dim() not in (2, 3) or cond.shape[-1] != cond_dim:
            raise ValueError(
                f"this ω-network was learned on {cond_dim}-wide condition embeddings [B, {cond_dim}] or "
                f"[B, L, {cond_dim}], got {got}"
            )

    def config(self) -> dict:
        return {
            "type": "learned",
            "kind": CHECKPOINT_KIND,
            "schedule": self.schedule.config(),
            **self.hparams,
        }

    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory``; ``extra`` joins the config."""
        config = {**self.config(), **({"extra": extra} if extra else {})}
        return save_checkpoint(directory, self.state_dict(), config)

    @classmethod
    def load(
        cls, directory: str | Path, schedule: Schedule | None = None, denoiser_id: str | None = None
    ) -> OmegaNet:
        """Load a saved ω-network; no code is executed (JSON + safetensors only).

        Raises :class:`~learnguide.checkpoints.CheckpointError` with the reason if the folder is incomplete,
        not an ω-network's, corrupted, does not fit its config, ``schedule`` (if given) differs from the
        schedule the network was trained for, or ``denoiser_id`` (if given) differs from the id of the
        denoiser it was learned with (recorded by ``learnguide fit``; networks without a record pass).
        """
        net, config = load_module(
            directory,
            CHECKPOINT_KIND,
            CONFIG_FIELDS,
            lambda c: cls(c["schedule"], **{k: c[k] for k in HPARAMS if k in c}),  # absent: the default
        )
        saved_schedule = config["schedule"]
        if schedule is not None and schedule.config() != saved_schedule.config():
            raise CheckpointError(
                f"{directory} was trained for schedule {saved_schedule.config()}, not {schedule.config()}"
            )
        learned_with = (config.get("extra") or {}).get("denoiser_id")
        if denoiser_id is not None and learned_with is not None and learned_with != denoiser_id:
            raise CheckpointError(
                f"{directory} was learned with denoiser {learned_with}, not this one ({denoiser_id}): "
                "learn ω for this denoiser, or pass --any-denoiser to use it anyway"
            )
        return net.eval()


def guidance_from_config(config: dict, grid: Tensor | None = None) -> GuidanceSchedule:
    """Rebuild a baseline schedule from its config (learned ω-networks load with :meth:`OmegaNet.load`)."""
    kind = config.get("type")
    if kind == "constant":
        return ConstantGuidance(config["omega"])
    if kind == "interval":
        return IntervalGuidance(config["omega"], config["t_lo"], config["t_hi"])
    if kind == "increasing":
        return IncreasingGuidance(config["omega_max"], config["shape"])
    if kind == "per-step":
        return PerStepGuidance(config["omegas"], torch.tensor(config["grid"]) if grid is None else grid)
    raise ValueError(f"cannot rebuild guidance of type {kind!r} from a config")


def export_schedule(guidance: GuidanceSchedule, cond: Tensor, grid: Tensor, names: list[str]) -> dict:
    """A schedule's ω for a fixed step grid and set of conditions, as JSON-ready per-step lists.

    Args:
        guidance: any schedule (e.g. a learned :class:`OmegaNet`).
        cond: the conditions ``[K]`` (class ids) or ``[K, E]`` (embeddings).
        grid: decreasing times ``[N + 1]``; step i goes from ``grid[i]`` to ``grid[i + 1]``.
        names: one name per condition (the keys of the per-condition lists).

    Returns:
        ``{"t", "s", "omega": {name: [N]}, "guidance_scale": {name: [N]}, "convention"}``: ω in the paper
        convention (0 = conditional model) and w = 1 + ω as diffusers' ``guidance_scale``.
    """
    if len(names) != cond.shape[0]:
        raise ValueError(f"got {len(names)} names for {cond.shape[0]} conditions")
    table = guidance.omega_table(cond, grid).double()  # [N, K]
    return {
        "t": grid[:-1].tolist(),
        "s": grid[1:].tolist(),
        "omega": {name: table[:, k].tolist() for k, name in enumerate(names)},
        "guidance_scale": {name: omega_to_scale(table[:, k]).tolist() for k, name in enumerate(names)},
        "convention": "omega: paper (0 = conditional model); guidance_scale: w = 1 + omega (diffusers)",
    }
