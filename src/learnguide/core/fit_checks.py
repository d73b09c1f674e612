"""Checks that a fitted ω-network learned something (docs/design.md §4).

Three signs of a fit that went wrong, each reported as a one-line message with a hint:

- its ω is the same number for every input;
- its output map passed no gradient for a whole epoch (a saturated softplus, a ReLU inside the loss);
- its ω is far from the bank's own per-(class, t) optimum (:func:`~.banks.bank_optimum_gaps`).

The fits put the messages in their record and emit each as a :class:`FitWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from learnguide.core.guidance import OmegaNet

CONSTANT_TOL = 1e-6  # spread of ω over the inputs below which it counts as constant
DEAD_GRADIENT = 1e-10  # largest last-layer gradient norm of an epoch below which the output passed none


@dataclass
class RunRecord:
    """What every ω fit records besides its losses: wall time and the messages of these checks."""

    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


class FitWarning(UserWarning):
    """A fitted ω-network looks dead or far from what its objective asks for."""


def constant_omega_message(net: OmegaNet, cond: Tensor, s: Tensor, t: Tensor) -> str | None:
    """A message if the network's ω (as sampling uses it) is constant over the inputs ``cond [B]`` or
    ``[B, E]`` and times ``s, t [B]``, else None."""
    with torch.no_grad():
        raw = net.raw(cond, s, t)
        omega = net.output_map(raw)
    if float(omega.max() - omega.min()) > CONSTANT_TOL:
        return None
    value = float(omega[0])
    at_zero = net.hparams["output"] != "identity" and abs(value) < CONSTANT_TOL
    learned = float(raw.max() - raw.min()) > CONSTANT_TOL  # the network moved, and ω sits at its bound 0
    if at_zero and learned and net.hparams["output"] != "softplus":  # the fit's gradient saw below 0
        why = (
            "its unconstrained value is ≤ 0 everywhere, so the objective asks for no guidance here; "
            "`learnguide fit --diagnostics` shows the per-(class, t) optimum"
        )
    elif at_zero and learned:
        why = (
            "the fit drove it far below 0, where softplus saturates and passes no gradient back: the "
            "objective asked for less guidance, maybe not for none; --output relu fits it unconstrained"
        )
    else:
        why = "the network did not learn: try a lower --lr, more items or epochs, or --output identity"
    return f"the fitted ω is constant ({0.0 if at_zero else value:.4g}) over every input: {why}"


class OutputGradientMonitor:
    """Counts the epochs (or windows of steps) in which the ω-network's last layer got no gradient.

    Call :meth:`step` after each ``backward()`` and :meth:`end_epoch` at the end of each epoch.
    """

    def __init__(self, net: OmegaNet) -> None:
        self.params = list(net.body[-1].parameters())
        self.largest, self.dead_epochs = 0.0, 0

    def step(self) -> None:
        """Record the current gradient of the last layer."""
        norms = [p.grad.norm() for p in self.params if p.grad is not None]
        if norms:
            self.largest = max(self.largest, float(torch.stack(norms).norm()))

    def end_epoch(self) -> None:
        """Close an epoch: it was dead if no step of it had a last-layer gradient above ``DEAD_GRADIENT``."""
        self.dead_epochs += int(self.largest < DEAD_GRADIENT)
        self.largest = 0.0

    def message(self, unit: str = "epoch") -> str | None:
        """A message if some ``unit`` (epoch, or window of online steps) passed no gradient, else None."""
        if not self.dead_epochs:
            return None
        return (
            f"the ω-network's output passed no gradient for {self.dead_epochs} whole {unit}(s), so it "
            "stopped learning: use the default relu output (fitted unconstrained, clamped at use) or "
            "--output identity"
        )


def report(messages: list[str | None]) -> list[str]:
    """Emit each message that is not None as a :class:`FitWarning`; return them (for the fit's record)."""
    kept = [m for m in messages if m]
    for message in kept:
        warnings.warn(message, FitWarning, stacklevel=3)
    return kept
