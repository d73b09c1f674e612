"""learnguide: learn classifier-free-guidance weights ω(c, s, t) for conditional diffusion models.

Conventions (docs/design.md §1): t ∈ [0, 1] with t = 0 data; x_t = α_t x_0 + σ_t ε; a denoiser returns
x̂_0; the guidance weight ω is the paper's (ω = 0 is the plain conditional model; the usual scale is
w = 1 + ω).
"""

from learnguide.core.denoisers import Denoiser, ExactMixtureDenoiser, PredictionAdapter
from learnguide.core.guidance import (
    ConstantGuidance,
    GuidanceSchedule,
    IncreasingGuidance,
    IntervalGuidance,
    OmegaNet,
    PerStepGuidance,
    omega_to_scale,
    scale_to_omega,
)
from learnguide.core.metrics import class_metrics, energy_distance, mmd_rbf
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.sampling import sample
from learnguide.core.schedules import RectifiedFlow, VPCosine, VPLinear, get_schedule, step_grid

__version__ = "0.1.0"

__all__ = [
    "ConstantGuidance",
    "Denoiser",
    "ExactMixtureDenoiser",
    "GuidanceSchedule",
    "IncreasingGuidance",
    "IntervalGuidance",
    "OmegaNet",
    "OnlineConfig",
    "PerStepGuidance",
    "PredictionAdapter",
    "RectifiedFlow",
    "VPCosine",
    "VPLinear",
    "class_metrics",
    "energy_distance",
    "get_schedule",
    "mmd_rbf",
    "omega_to_scale",
    "sample",
    "scale_to_omega",
    "step_grid",
    "train_omega_online",
]
