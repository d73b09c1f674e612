"""Using a learned ω inside diffusers: a ``diffusers.guiders`` guider and a callback for classic pipelines.

ω(c, s, t) depends on the condition and the step, so diffusers' scalar ``guidance_scale`` cannot carry it.
:class:`LearnedGuidance` holds a per-step, per-item table of ω (paper convention, ω = 0 is the conditional
model) computed once for the batch's conditions and the scheduler's steps; it is config-serialisable like
diffusers' own guiders. Classic pipelines (one scale per step for the whole batch) take
:func:`guidance_scale_callback` as ``callback_on_step_end``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.guiders.guider_utils import BaseGuidance, GuiderOutput
from torch import Tensor

from learnguide.core.guidance import GuidanceSchedule, omega_to_scale
from learnguide.core.schedules import expand_as
from learnguide.integrations.diffusers_models import scheduler_grid

MIN_OMEGA_CLASSIC = 1e-4
"""Classic pipelines switch CFG off for a scale w ≤ 1 and cannot switch it back on mid-loop, so the
callback keeps w ≥ 1 + this (docs/design.md §1: never drop the unconditional pass silently)."""


class LearnedGuidance(BaseGuidance):
    """A diffusers guider applying ω per step and per item: x̂ = x̂_c + ω[step, i] (x̂_c − x̂_∅).

    Args:
        omegas: ω table ``[steps][batch]`` (paper convention), one row per inference step in the order
            the scheduler runs them; build it with :meth:`from_schedule`.
        start, stop, enabled: as for every diffusers guider (fractions of the steps where guidance applies).

    The unconditional prediction is requested only at steps where some item has ω ≠ 0 (as our sampler skips
    that pass), so a pipeline that asks ``num_conditions`` saves the pass there.
    """

    _input_predictions = ["pred_cond", "pred_uncond"]
    prepare_inputs = ClassifierFreeGuidance.prepare_inputs
    prepare_inputs_from_block_state = ClassifierFreeGuidance.prepare_inputs_from_block_state

    @register_to_config
    def __init__(
        self, omegas: list[list[float]], start: float = 0.0, stop: float = 1.0, enabled: bool = True
    ) -> None:
        super().__init__(start, stop, enabled)
        table = torch.tensor(omegas, dtype=torch.float64)
        if table.dim() != 2 or table.numel() == 0 or not bool(table.isfinite().all()):
            raise ValueError("omegas must be a non-empty [steps][batch] table of finite numbers")
        self.omegas = table

    @classmethod
    def from_schedule(
        cls, guidance: GuidanceSchedule, cond: Tensor, scheduler: Any, steps: int, **kwargs: Any
    ) -> LearnedGuidance:
        """The guider for conditions ``cond`` (``[B]`` class ids or ``[B, E]`` embeddings, as the ω-schedule
        takes them) sampled with ``scheduler`` over ``steps`` steps; ``kwargs`` go to the constructor."""
        table = guidance.omega_table(cond, scheduler_grid(scheduler, steps))  # [N, B]
        return cls(omegas=table.tolist(), **kwargs)

    def _current(self) -> Tensor:
        """ω of the current step ``[B]``."""
        if self._step is None:
            raise RuntimeError("call set_state(step, num_inference_steps, timestep) before using the guider")
        if self._step >= len(self.omegas):
            raise ValueError(
                f"step {self._step} is past the {len(self.omegas)} steps the ω table was built for"
            )
        return self.omegas[self._step]

    def _guiding(self) -> bool:
        """Whether this step needs the unconditional prediction."""
        if not self._enabled:
            return False
        if self._step is None:  # before set_state: a pipeline preparing its inputs expects both passes
            return True
        if self._num_inference_steps is not None:
            lo, hi = int(self._start * self._num_inference_steps), int(self._stop * self._num_inference_steps)
            if not lo <= self._step < hi:
                return False
        return bool(self._current().any())

    def forward(self, pred_cond: Tensor, pred_uncond: Tensor | None = None) -> GuiderOutput:
        """Guided prediction ``[B, ...]`` from the conditional and unconditional model outputs."""
        if not self._guiding():
            return GuiderOutput(pred=pred_cond, pred_cond=pred_cond, pred_uncond=pred_uncond)
        omega = self._current()
        if omega.shape[0] != pred_cond.shape[0]:
            raise ValueError(
                f"the ω table has {omega.shape[0]} items per step, the batch {pred_cond.shape[0]}"
            )
        pred = pred_cond + expand_as(omega, pred_cond) * (pred_cond - pred_uncond)  # paper eq. 7
        return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)

    @property
    def is_conditional(self) -> bool:
        """Whether the batch being prepared is the conditional one."""
        return self._count_prepared == 1

    @property
    def num_conditions(self) -> int:
        """2 where this step guides (conditional + unconditional), else 1."""
        return 2 if self._guiding() else 1


def per_step_scales(guidance: GuidanceSchedule, cond: Tensor, scheduler: Any, steps: int) -> list[float]:
    """diffusers guidance scales w = 1 + ω, one per step, for a single condition ``cond`` (``[1]`` or
    ``[1, E]``), kept ≥ 1 + ``MIN_OMEGA_CLASSIC`` so that a classic pipeline never turns CFG off."""
    if cond.shape[0] != 1:
        raise ValueError("classic pipelines use one scale for the whole batch: give one condition")
    omegas = guidance.omega_table(cond, scheduler_grid(scheduler, steps))[:, 0]
    return [float(omega_to_scale(max(float(w), MIN_OMEGA_CLASSIC))) for w in omegas]


def guidance_scale_callback(scales: Sequence[float]) -> Callable[[Any, int, Any, dict], dict]:
    """A ``callback_on_step_end`` for classic diffusers pipelines that sets the guidance scale of the next
    step from ``scales`` (length = steps). Start the pipeline with ``guidance_scale=scales[0]``."""
    if min(scales) <= 1.0:
        raise ValueError("every scale must be > 1, or the pipeline turns classifier-free guidance off")

    def callback(pipeline: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        if step + 1 < len(scales):
            pipeline._guidance_scale = scales[step + 1]
        return callback_kwargs

    return callback
