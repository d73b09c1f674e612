"""One entry point that learns ω(c, s, t) for a denoiser, from a bank, online or by a line search for one
constant (docs/design.md §3, §3.5)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, replace
from pathlib import Path

import torch

from learnguide.core.banks import (
    BankConfig,
    FitConfig,
    bank_matches,
    fit_omega_on_bank,
    generate_bank,
    load_bank,
)
from learnguide.core.denoisers import Denoiser
from learnguide.core.discrepancy import FeatureMap
from learnguide.core.guidance import OmegaNet
from learnguide.core.items import DataSampler
from learnguide.core.line_search import LineSearchConfig, line_search_omega, schedule_network
from learnguide.core.objectives import Reward
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.schedules import Schedule

LEARN_METHODS = ("bank", "online", "line-search")


def learn_omega(
    denoiser: Denoiser,
    schedule: Schedule,
    sample_data: DataSampler,
    num_classes: int,
    directory: str | Path,
    method: str = "bank",
    bank: BankConfig | None = None,
    fit: FitConfig | None = None,
    online: OnlineConfig | None = None,
    line_search: LineSearchConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    reward: Reward | None = None,
    output: str = "relu",
    features: FeatureMap | None = None,
    omega_hparams: dict | None = None,
) -> tuple[OmegaNet, dict]:
    """Learn ω(c, s, t) for one denoiser and save it to ``directory/omega_net``.

    Args:
        denoiser, schedule: the frozen x̂ denoiser and its schedule.
        sample_data: ``(n, generator) -> (x_0, class ids)``: the data self-consistency is measured against.
        num_classes: K (class ids 0 … K − 1).
        directory: working folder (bank, ω-network); emptied first so that nothing stale is resumed,
            except a complete or partial bank made with the same settings, which is reused (resumed).
        method: ``"bank"`` (a transition bank, then a fit; default), ``"online"`` (Algorithm 1) or
            ``"line-search"`` (one constant ω, :func:`~learnguide.core.line_search.line_search_omega`).
        bank, fit, online, line_search: their configurations (defaults when None); ``seed`` replaces their
            seeds.
        seed: seeds the ω-network's initial weights and the bank / online run.
        progress: show progress bars.
        reward: the reward of a reward-tilted ω (its weight γ_R is ``fit.reward_weight`` or
            ``online.reward_weight``; a bank then needs ``store_predictions``).
        output: the ω-network's output map (``relu`` as in the paper, ``softplus``, ``identity``,
            ``relu-st``).
        features: online or line search: a frozen feature map φ(x, s) to measure self-consistency in
            (docs/design.md §3.2; a line search measures final samples, s = 0); None: pixels.
        omega_hparams: other :class:`OmegaNet` keywords (e.g. ``shared``, ``fourier_features``).

    Returns:
        the ω-network and a record of the cost (seconds, denoiser calls and evaluations), the final loss
        and the fit's warnings (:mod:`~.fit_checks`).
    """
    if method not in LEARN_METHODS:
        raise ValueError(f"method must be one of {LEARN_METHODS}, got {method!r}")
    if reward is not None and method == "line-search":
        raise ValueError("a line search has no reward term: use method 'bank' or 'online'")
    if features is not None and method == "bank":
        raise ValueError("a feature map is learned online or by a line search: use method 'online'")
    directory = Path(directory)
    torch.manual_seed(seed)  # the ω-network's initial weights
    omega_net = OmegaNet(schedule, num_classes=num_classes, output=output, **(omega_hparams or {}))
    bank = replace(bank or BankConfig(), seed=seed)
    if method == "bank" and bank_matches(directory / "bank", bank, schedule, ""):
        shutil.rmtree(directory / "omega_net", ignore_errors=True)  # a bank made the same way is reused
    else:
        shutil.rmtree(directory, ignore_errors=True)
    if method == "line-search":
        line_search = replace(line_search or LineSearchConfig(), seed=seed)
        found = line_search_omega(denoiser, schedule, sample_data, line_search, features, progress)
        omega_net = schedule_network(
            schedule, torch.arange(num_classes), found.omega, num_classes, found.shape
        )
        record = {"method": "line-search", "line_search": asdict(line_search), **asdict(found)}
        omega_net.save(
            directory / "omega_net", extra={"line_search": asdict(line_search), "found": asdict(found)}
        )
        return omega_net, {**record, "final_loss": min(found.losses)}
    if method == "online":
        online = replace(online or OnlineConfig(), seed=seed)
        record = train_omega_online(
            omega_net,
            denoiser,
            sample_data,
            online,
            directory / "omega_net",
            progress,
            reward,
            features=features,
        )
        return omega_net, {
            "method": "online",
            "online": asdict(online),
            "seconds": record.seconds,
            "denoiser_calls": record.denoiser_calls,
            "denoiser_evals": record.denoiser_evals,
            "final_loss": sum(record.losses[-50:]) / len(record.losses[-50:]),
            "warnings": record.warnings,
        }
    fit = replace(fit or FitConfig(), seed=seed)
    made = generate_bank(denoiser, schedule, sample_data, directory / "bank", bank, progress=progress)
    fitted = fit_omega_on_bank(omega_net, load_bank(directory / "bank"), fit, progress, reward)
    omega_net.save(directory / "omega_net", extra={"bank": asdict(bank), "fit": asdict(fit)})
    return omega_net, {
        "method": "bank",
        "bank": asdict(bank),
        "fit": asdict(fit),
        "seconds": made.seconds + fitted.seconds,
        "bank_seconds": made.seconds,
        "fit_seconds": fitted.seconds,
        "denoiser_calls": made.denoiser_calls,
        "denoiser_evals": made.denoiser_evals,
        "epochs": len(fitted.val_losses),
        "best_epoch": fitted.best_epoch,
        "final_loss": fitted.val_losses[fitted.best_epoch],
        "warnings": fitted.warnings,
    }
