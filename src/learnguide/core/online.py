"""Learning ω_φ(c, s, t) online by self-consistency (paper Algorithm 1; docs/design.md §3).

Each iteration draws items (x_0, c) and times s < t, makes m true particles x_s ~ p(x_s | x_0) and m guided
particles x̃_s(ω) = A + ωB from independent x_t ~ p(x_t | x_0) (one guided DDPM step, churn 1), and lowers
the energy loss of eq. 9 through its sufficient statistics. Denoiser calls run under ``torch.no_grad()``:
gradients reach only the ω-network.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from learnguide.checkpoints import (
    STATE_FILE,
    check_finite,
    load_training_state,
    resumed_progress,
    save_training_state,
)
from learnguide.core.denoisers import Denoiser
from learnguide.core.discrepancy import FeatureMap, KernelConfig, kernel_loss
from learnguide.core.fit_checks import OutputGradientMonitor, RunRecord, constant_omega_message
from learnguide.core.fit_checks import report as report_fit
from learnguide.core.guidance import OmegaNet
from learnguide.core.items import (
    DataSampler,
    TimeSampling,
    TransitionItems,
    class_groups,
    guided_rollout,
    holds_class_mix,
    on_policy_items,
    simulate_items,
)
from learnguide.core.objectives import (
    LossSettings,
    Reward,
    energy_loss_from_stats,
    marginal_energy_loss,
    pair_statistics,
    reward_loss,
)
from learnguide.core.schedules import Schedule, expand_as, step_grid
from learnguide.distributed import Processes

CHECK_WINDOW = 50  # online steps per window of the no-gradient check (the online analogue of an epoch)

OBJECTIVES = ("energy", "marginal", "class-marginal")
STARTS = ("data", "on-policy", "prior")
LR_DECAYS = ("constant", "cosine")


def default_churn(start: str, rollout: int) -> float:
    """The churn ε online learning uses unless told: 1 (the DDPM posterior, the paper's) for one step from
    data; 0 (the DDIM sampler's) when the objective follows the sampler's own trajectory (on-policy starts,
    rollouts of K > 1 steps)."""
    return 1.0 if start == "data" and rollout == 1 else 0.0


@dataclass
class OnlineConfig(TimeSampling, LossSettings):
    """Hyper-parameters of :func:`train_omega_online` (defaults: docs/design.md §3; times:
    :class:`~learnguide.core.items.TimeSampling`; β, λ, γ_R and the seed: :class:`LossSettings`).

    Attributes:
        iterations: optimiser steps.
        batch_size: items n per step.
        particles: m true and m guided particles per item.
        beta: distance exponent β ∈ (0, 2] (2 with ``lam=0`` is the ℓ2 variant).
        lam: repulsion weight λ ∈ [0, 1].
        lr: Adam learning rate (its peak with ``lr_decay="cosine"``).
        lr_decay: ``"constant"`` (default) or ``"cosine"``: the rate at iteration i is
            lr·(1 + cos(π·i / iterations)) / 2, so a fit whose ω oscillates around its optimum ends there
            instead of wherever the last step left it.
        objective: ``"energy"`` (per item, eq. 9), ``"marginal"`` (across the batch) or
            ``"class-marginal"`` (across groups of ``group_size`` items that share c, s and t).
        kernel: the discrepancy's kernel, ``"energy"`` (β, λ; the paper's), ``"rbf"`` or ``"imq"`` (λ and
            ``kernel_scales``) or ``"polynomial"`` (λ; KID's cubic kernel);
            :mod:`~learnguide.core.discrepancy`.
        kernel_scales: rbf / imq bandwidths as multiples of the median heuristic.
        group_size: items per group of the class-marginal objective (class ids only).
        start: where a step starts: ``"data"`` (x_t ~ q(x_t | x_0), times drawn as above; the paper's),
            ``"on-policy"`` (x_t from the guided sampler's own trajectory under the current ω, on the grid
            of ``grid_steps`` steps from t = 1 − ζ to 0; :func:`~learnguide.core.items.on_policy_items`) or
            ``"prior"`` (a whole-trajectory rollout, ``rollout`` = ``grid_steps``, from the sampler's own
            start x ~ N(0, I) at t = 1 − ζ instead of data noised to it). On-policy needs the class-marginal
            objective; ``particles`` and ``s_min``/``delta`` are unused, and ``churn`` should be the
            sampler's (0 for DDIM).
        grid_steps: on-policy and rollout: the sampler's step count N (an on-policy refresh costs
            2·N·batch_size evaluations).
        rollout: K guided steps from t to s on the sampler's grid of ``grid_steps`` steps, differentiated
            through the denoiser (:func:`~learnguide.core.items.guided_rollout`; data or prior starts, no
            reward);
            1 (default): the paper's one step, at the continuous times above.
        refresh: on-policy: optimiser steps taken on one batch of trajectories before new ones are drawn.
        reference: rollouts with the ``marginal`` objective: the true side of the compared set holds
            ``reference``·n data items, the batch's own n and (reference − 1)·n more drawn after them, noised
            to the same times. They cost no denoiser evaluation (only features) and make the data's share of
            the gradient's noise smaller. Every further draw must hold the batch's class mix (balanced draws
            of a multiple of the class count; checked).
        class_strata: rollouts with the ``marginal`` objective and class ids: the guided set's distinct
            pairs are weighted so that each class pair counts by the classes' shares
            (:func:`~learnguide.core.discrepancy.class_pair_weights`), an unbiased estimate for the batch's
            class mix (a balanced batch is stratified by class). False: every distinct pair counts equally,
            which gives same-class pairs too little weight and so favours more guidance, the more so the
            fewer items per class (docs/design.md §3.4). Unused elsewhere.
        average: the fit returns the mean of the ω-network's weights after each of the last
            ⌈average·iterations⌉ steps (Polyak–Ruppert iterate averaging), not the last step's weights: a fit
            whose ω wanders around its optimum under gradient noise ends at the centre of the wander.
            0 (default): the last step's weights; must be in [0, 1).
        reward_weight: γ_R ≥ 0 of the reward term −γ_R·E[R(x̂_c + ωΔ, c)] (Algorithm 4); 0 leaves the
            reward out (it is then never evaluated).
        seed: seeds data, times and noise; the same seed gives the same ω-network.
        checkpoint_every: save ω-network and trainer state every this many iterations (0: only at the end).
        blocks: each batch's denoiser calls are made in this many blocks of items, the unit that several
            processes share (process r makes blocks r, r + N, …): any number of processes computes exactly
            what one process does.
    """

    iterations: int = 2000
    batch_size: int = 256
    particles: int = 4
    lr: float = 1e-3
    lr_decay: str = "constant"
    objective: str = "energy"
    kernel: str = "energy"
    kernel_scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    group_size: int = 8
    start: str = "data"
    grid_steps: int = 25
    refresh: int = 1
    rollout: int = 1
    reference: int = 1
    class_strata: bool = True
    average: float = 0.0
    checkpoint_every: int = 0
    blocks: int = 8

    def validate(self, reward: Reward | None = None) -> None:
        """Raise ``ValueError`` naming the first invalid setting (γ_R > 0 needs the ``reward``)."""
        self.check_loss(reward)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown --objective {self.objective!r}; choose one of {OBJECTIVES}")
        counts = {"iterations": self.iterations, "batch_size": self.batch_size, "group_size": self.group_size}
        counts.update(
            blocks=self.blocks,
            grid_steps=self.grid_steps,
            refresh=self.refresh,
            rollout=self.rollout,
            reference=self.reference,
        )
        for name, value in counts.items():
            if value < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(
                    f"{flag if flag[2:] == name else f'{flag} ({name})'} must be >= 1, got {value}"
                )
        if self.rollout > 1 and (
            self.start == "on-policy" or self.reward_weight > 0 or self.rollout > self.grid_steps
        ):
            raise ValueError(
                "--rollout K > 1 starts from data or the prior (--start data or prior), has no reward "
                "(--gamma 0) and needs K <= --grid-steps (the sampler's step count)"
            )
        if self.start == "prior" and (self.rollout != self.grid_steps or self.rollout < 2):
            raise ValueError(
                "--start prior begins where the sampler does: a whole-trajectory rollout, --rollout equal to "
                "--grid-steps (2 or more)"
            )
        if self.reference > 1 and (self.objective != "marginal" or self.rollout < 2):
            raise ValueError(
                "--reference R > 1 enlarges the true set of a pooled rollout: use --objective marginal and "
                "--rollout K > 1"
            )
        if not 0.0 <= self.average < 1.0:
            raise ValueError(f"--average must be a fraction in [0, 1) of the iterations, got {self.average}")
        if not 0.0 < self.lr < math.inf:
            raise ValueError(f"--lr must be a finite number > 0, got {self.lr}")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"unknown --lr-decay {self.lr_decay!r}; choose one of {LR_DECAYS}")
        if self.start not in STARTS:
            raise ValueError(f"unknown --start {self.start!r}; choose one of {STARTS}")
        if self.start == "on-policy" and self.objective != "class-marginal":
            raise ValueError("--start on-policy is compared class-marginally: use --objective class-marginal")
        if self.start == "on-policy" and self.checkpoint_every % self.refresh:
            raise ValueError(
                "--start on-policy: --checkpoint-every must be a multiple of --refresh (resumption point)"
            )
        if self.particles * self.set_size(self.batch_size) < 2 and self.lam > 0 and self.start != "on-policy":
            raise ValueError(
                "repulsion --lam > 0 needs at least 2 particles per compared set: --particles per item (or "
                "per class group), or a batch of 2 with --objective marginal"
            )
        self.kernel_config().validate()
        self.check_times()

    def learning_rate(self, iteration: int) -> float:
        """Adam's rate at ``iteration`` (0-based) under ``lr_decay``."""
        if self.lr_decay == "cosine":
            return self.lr * (1.0 + math.cos(math.pi * iteration / self.iterations)) / 2.0
        return self.lr

    def first_averaged(self) -> int:
        """The first iteration (0-based) whose weights join the iterate average (``iterations``: none)."""
        return self.iterations - math.ceil(self.average * self.iterations)

    def sampler_grid(self) -> Tensor:
        """The sampler's grid of on-policy starts and rollouts: ``grid_steps`` steps from 1 − ζ to 0
        (``[grid_steps + 1]`` float64)."""
        return step_grid(self.grid_steps, 1.0 - self.zeta)

    def set_size(self, n: int) -> int:
        """Items pooled into one compared set of a batch of ``n``: 1 per item (``energy``), the whole batch
        (``marginal``) or one class group (``class-marginal``)."""
        return {"energy": 1, "marginal": n, "class-marginal": self.group_size}[self.objective]

    def kernel_config(self) -> KernelConfig:
        """The discrepancy kernel these settings name."""
        return KernelConfig(self.kernel, self.beta, self.lam, tuple(self.kernel_scales))


@dataclass
class TrainingRecord(RunRecord):
    """What a training run did: loss per iteration, denoiser evaluations (items through the network), feature
    evaluations (particles through the feature map φ; 0 in pixels), wall time and warnings."""

    losses: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    denoiser_evals: int = 0
    denoiser_calls: int = 0
    feature_evals: int = 0


@dataclass(frozen=True)
class Discrepancy:
    """The self-consistency discrepancy of a run: ``config``'s kernel, objective (per item or pooled over its
    groups) and particle count, measured in the frozen feature map ``features`` φ(x, s) (None: pixels).
    Gradients reach ω through φ; φ's weights stay untouched."""

    config: OnlineConfig
    features: FeatureMap | None = None

    def __call__(
        self, x_guided: Tensor, x_true: Tensor, s: Tensor | None = None, cond: Tensor | None = None
    ) -> Tensor:
        """Mean discrepancy (scalar) of guided particles ``x_guided [n, m, ...]`` against true ones ``x_true
        [r·n, m, ...]`` (eq. 9 and its marginal variants in pixels with the energy kernel; r > 1 only with the
        marginal objective, true item k having the time of guided item k mod n); ``s [n]``, the items'
        times, is needed with a feature map. With the items' class ids ``cond [n]``, the marginal objective
        and ``config.class_strata``, the guided set's pairs are weighted by class
        (:func:`~.discrepancy.class_pair_weights`)."""
        config, kernel, n, m = self.config, self.config.kernel_config(), x_guided.shape[0], x_guided.shape[1]
        groups, n_true = n // config.set_size(n), x_true.shape[0]
        class_ids = cond is not None and not cond.dtype.is_floating_point
        by_class = config.class_strata and config.objective == "marginal" and class_ids
        labels = cond.repeat_interleave(m)[None] if by_class else None
        if self.features is None and kernel.name == "energy" and n_true == n and labels is None:
            return marginal_energy_loss(x_guided, x_true, config.beta, config.lam, groups)
        if self.features is not None:
            if s is None:
                raise ValueError("a feature-space loss needs the items' times s")
            x_guided = self.features(x_guided.flatten(0, 1), s.repeat_interleave(m)).reshape(n, m, -1)
            with torch.no_grad():
                times = s.repeat(n_true // n).repeat_interleave(m)
                x_true = self.features(x_true.flatten(0, 1), times).reshape(n_true, m, -1)
        return kernel_loss(
            x_guided.reshape(groups, -1, *x_guided.shape[2:]),
            x_true.reshape(groups, -1, *x_true.shape[2:]),
            kernel,
            labels,
        ).mean()

    def affine(self, omega: Tensor, a: Tensor, b: Tensor, x_true: Tensor, s: Tensor | None = None) -> Tensor:
        """The discrepancy of the one-step particles A + ωB (``a, b, x_true [n, m, ...]``, per-item ω
        ``[n]``): in pixels with the energy kernel per item, eq. 9 from sufficient statistics."""
        config = self.config
        if self.features is None and config.kernel == "energy" and config.objective == "energy":
            stats = pair_statistics(a, b, x_true)
            return energy_loss_from_stats(stats, omega, config.particles, config.beta, config.lam).mean()
        return self(a + expand_as(omega, a).to(a.dtype) * b, x_true, s)


@torch.enable_grad()  # trains even when the caller samples under no_grad
def train_omega_online(
    omega_net: OmegaNet,
    denoiser: Denoiser,
    sample_data: DataSampler,
    config: OnlineConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
    reward: Reward | None = None,
    procs: Processes | None = None,
    device: str | torch.device = "cpu",
    denoiser_id: str | None = None,
    features: FeatureMap | None = None,
    on_step: Callable[[int, float], None] | None = None,
    meta: dict | None = None,
) -> TrainingRecord:
    """Fit ``omega_net`` in place by online self-consistency training (Algorithm 1), optionally tilted by a
    reward (Algorithm 4: loss + γ_R·(−E[R(x̂_c + ωΔ, c)]), γ_R = ``config.reward_weight``).

    Args:
        omega_net: the ω-network to train (its schedule must be the denoiser's).
        denoiser: the frozen x̂ denoiser.
        sample_data: ``(n, generator) -> (x_0 [n, ...], cond [n] or [n, E])``.
        config: hyper-parameters; ``config.seed`` makes the run reproducible.
        out_dir: if given, the ω-network is saved there at the end (and every ``checkpoint_every``
            iterations, with the optimiser and random state); a run pointed at a folder holding such a state
            resumes from it and ends with the same network as an uninterrupted run.
        progress: show a progress bar with the running loss.
        reward: ``R(x0 [B, ...], cond) -> [B]`` (a :class:`~.objectives.Reward`); needed when γ_R > 0.
        procs: the processes of a multi-process run: each batch's denoiser calls are split over them
            (:func:`simulate_sharded`), every process takes the same ω step, and process 0 writes ``out_dir``.
        device: where the denoiser runs (it must already be there); the ω-network and its loss stay on the
            CPU with the data, which is drawn there.
        denoiser_id: identifies the denoiser (e.g. a hash of its weights); recorded in the saved ω-network so
            that sampling with another denoiser is caught (:meth:`OmegaNet.load`).
        features: a frozen feature map φ(x [B, ...], s [B]) -> [B, F] in which to compare the particles
            (e.g. :func:`~learnguide.images.classifier.frozen_features` of a noisy classifier); None: pixels.
        on_step: called as ``on_step(iteration, loss)`` after each optimiser step (to log or trace the fit;
            ``omega_net`` then holds the weights after that step).
        meta: more JSON settings saved with the ω-network in ``out_dir`` (e.g. the feature map's source),
            next to ``config``.

    Returns:
        the :class:`TrainingRecord` (losses, mean rewards when γ_R > 0, denoiser evaluations and calls,
        seconds).
    """
    config.validate(reward)
    procs = procs or Processes()
    schedule = omega_net.schedule
    gen = torch.Generator().manual_seed(config.seed)
    params = list(omega_net.parameters())
    opt = torch.optim.Adam(params, lr=config.lr)
    record, start, mean = TrainingRecord(), 0, IterateMean(omega_net, config.first_averaged())
    out = Path(out_dir) if out_dir is not None else None
    extra = {"online": asdict(config), **({"denoiser_id": denoiser_id} if denoiser_id else {})}
    extra.update(meta or {})
    if out is not None and (out / STATE_FILE).is_file():
        omega_net.load_state_dict(OmegaNet.load(out, schedule).state_dict())
        state, tensors = load_training_state(out, opt, gen)
        start, record = state["iteration"], TrainingRecord(**state["record"])
        mean.restore(tensors)
    began = time.perf_counter() - record.seconds
    monitor, discrepancy = OutputGradientMonitor(omega_net), Discrepancy(config, features)
    in_features = int(features is not None)  # particles through φ count as feature evaluations
    omega_net.train()
    bar = resumed_progress(start, config.iterations, "learn ω (online)", progress)
    for it in bar:
        for group in opt.param_groups:  # a function of the iteration alone, so a resumed run follows it too
            group["lr"] = config.learning_rate(it)
        if config.rollout > 1:
            x_guided, x_true, cond, s, t = rollout_batch(
                denoiser, schedule, omega_net.fit_omega, sample_data, config, gen, device
            )
            record.denoiser_evals += 2 * config.rollout * x_guided.shape[0] * x_guided.shape[1]
            record.denoiser_calls += config.rollout
            record.feature_evals += in_features * (x_guided.shape[0] + x_true.shape[0]) * x_true.shape[1]
            loss = discrepancy(x_guided, x_true, s, cond)
        else:
            if config.start == "data" or it % config.refresh == 0:
                items, cond, s, t = _draw_items(omega_net, denoiser, sample_data, config, gen, procs, device)
                record.denoiser_evals += 2 * items.a.shape[0] * items.a.shape[1]
                record.denoiser_calls += config.grid_steps if config.start == "on-policy" else 1
            omega = omega_net.fit_omega(cond, s, t)
            record.feature_evals += in_features * 2 * items.a.shape[0] * items.a.shape[1]
            loss = discrepancy.affine(omega, items.a, items.b, items.x_true, s)
            if config.reward_weight > 0.0:
                negative_reward = reward_loss(reward, items.x0_cond, items.delta, omega, cond)
                loss = loss + config.reward_weight * negative_reward
                record.rewards.append(-negative_reward.item())
        for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):  # ω's weights, nothing else
            p.grad = g
        monitor.step()
        opt.step()
        mean.update(it)
        if (it + 1) % CHECK_WINDOW == 0:
            monitor.end_epoch()
        record.losses.append(loss.item())
        if on_step is not None:
            on_step(it, record.losses[-1])
        bar.set_postfix(loss=f"{record.losses[-1]:.4f}", refresh=False)  # shown at the bar's next refresh
        if out is not None and config.checkpoint_every and (it + 1) % config.checkpoint_every == 0:
            record.seconds = time.perf_counter() - began
            _save_run(out, omega_net, opt, gen, record, it + 1, extra, procs, mean.tensors())
    mean.apply()
    omega_net.eval()
    record.seconds = time.perf_counter() - began
    probe = _probe_inputs(sample_data, config, gen)
    record.warnings = report_fit(
        [constant_omega_message(omega_net, *probe), monitor.message(f"window of {CHECK_WINDOW} steps")]
    )
    extra = {**extra, "warnings": record.warnings} if record.warnings else extra
    _save_run(out, omega_net, opt, gen, record, config.iterations, extra, procs, mean.tensors())
    return record


class IterateMean:
    """The running mean of a network's weights after each optimiser step from iteration ``first`` on
    (Polyak–Ruppert averaging; :attr:`OnlineConfig.average`). Its state travels in the trainer state, so a
    resumed run ends with the same mean."""

    def __init__(self, net: torch.nn.Module, first: int) -> None:
        self.net, self.first = net, first
        self.mean: dict[str, Tensor] = {}

    def update(self, iteration: int) -> None:
        """Fold the weights after ``iteration`` (0-based) into the mean, if it is averaged."""
        if iteration < self.first:
            return
        count = iteration - self.first  # weights already in the mean
        for name, p in self.net.named_parameters():
            if count == 0:
                self.mean[name] = p.detach().clone()
            else:
                self.mean[name] = self.mean[name] + (p.detach() - self.mean[name]) / (count + 1)

    def apply(self) -> None:
        """Put the mean into the network (nothing when no step was averaged)."""
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                if name in self.mean:
                    p.copy_(self.mean[name])

    def tensors(self) -> dict[str, Tensor]:
        """The mean as trainer-state tensors (``mean.<parameter>``)."""
        return {f"mean.{name}": value for name, value in self.mean.items()}

    def restore(self, tensors: dict[str, Tensor]) -> None:
        """Take the mean back from :meth:`tensors`' output (other keys are ignored)."""
        self.mean = {k.removeprefix("mean."): v for k, v in tensors.items() if k.startswith("mean.")}


def _save_run(
    out: Path | None,
    omega_net: OmegaNet,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    record: TrainingRecord,
    iteration: int,
    extra: dict,
    procs: Processes,
    tensors: dict[str, Tensor] | None = None,
) -> None:
    """Save the ω-network and the trainer state (with ``tensors``) after ``iteration`` into ``out`` (process
    0; None: nothing is saved), then wait for every process. The weights are checked finite on every process
    first (they are the same everywhere), so a diverged run stops all of them instead of leaving the others
    waiting."""
    if out is not None:
        where = f"the ω-network learned into {out} at iteration {iteration} (try a lower --lr)"
        check_finite(dict(omega_net.named_parameters()), where)
        if procs.is_main:
            omega_net.save(out, extra=extra)
            save_training_state(out, opt, gen, {"iteration": iteration, "record": asdict(record)}, tensors)
    procs.barrier()


def _draw_data(
    sample_data: DataSampler, config: OnlineConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor, int]:
    """One batch ``(x0 [n, ...], cond [n], per)``: for the class-marginal objective reordered into groups
    of ``per = group_size`` items of one class (:func:`~learnguide.core.items.class_groups`), else 1."""
    x0, cond = sample_data(config.batch_size, generator)
    if config.objective != "class-marginal":
        return x0, cond, 1
    return *class_groups(x0, cond, config.group_size), config.group_size


def _draw_items(
    omega_net: OmegaNet,
    denoiser: Denoiser,
    sample_data: DataSampler,
    config: OnlineConfig,
    generator: torch.Generator,
    procs: Processes,
    device: str | torch.device,
) -> tuple[TransitionItems, Tensor, Tensor, Tensor]:
    """One batch of training items and their conditions and times: ``(items, cond [n], s [n], t [n])``."""
    x0, cond, per = _draw_data(sample_data, config, generator)
    if config.start == "on-policy":  # validated: class-marginal, so x0 and cond come in class groups
        if procs.world > 1:
            raise ValueError("on-policy starts run in one process")
        grid = config.sampler_grid()
        x0 = x0.to(device)
        items, s, t = on_policy_items(
            denoiser, omega_net.schedule, omega_net, x0, cond, grid, config.churn, generator
        )
        return TransitionItems(*(y.cpu() for y in items)), cond.repeat(config.grid_steps), s, t
    s, t = config.draw_times(x0.shape[0] // per, generator)  # a group shares (c, s, t) and differs in x_0
    s, t = s.repeat_interleave(per), t.repeat_interleave(per)
    items = simulate_sharded(denoiser, omega_net.schedule, x0, cond, (s, t), config, generator, procs, device)
    return items, cond, s, t


def rollout_batch(
    denoiser: Denoiser,
    schedule: Schedule,
    omega: Callable[[Tensor, Tensor, Tensor], Tensor],
    sample_data: DataSampler,
    config: OnlineConfig,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """A batch of K-step rollouts (K = ``config.rollout``) on the sampler's grid, guided by
    ``omega(c [B], s [B], t [B]) -> [B]``: ``(x_guided [n, m, ...], x_true [r·n, m, ...], cond [n], s [n],
    t [n])`` (r = ``config.reference``), x_guided differentiable in ω. Each item (each class-marginal group)
    starts at a grid time t_i drawn uniformly from those with K steps left and ends at s = t_{i+K}, from its
    data noised to t_i, or with ``config.start == "prior"`` (t_i = 1 − ζ) from N(0, I) as the sampler does;
    true item k is data noised to the s of item k mod n. The draws come from ``generator`` in a fixed order,
    guided samples first, so a larger ``reference`` keeps the same samples and the batch's own true items."""
    x0, cond, per = _draw_data(sample_data, config, generator)
    n, m, k = x0.shape[0], config.particles, config.rollout
    grid = config.sampler_grid()
    first = torch.randint(0, config.grid_steps - k + 1, (n // per,), generator=generator)
    times = grid[first.repeat_interleave(per)[None, :] + torch.arange(k + 1)[:, None]]  # [K + 1, n]
    noise = torch.randn((k + 2, n * m) + x0.shape[1:], generator=generator, dtype=x0.dtype)
    x0_rep, cond_rep, times_rep = (
        x0.repeat_interleave(m, 0),
        cond.repeat_interleave(m, 0),
        times.repeat_interleave(m, 1),
    )
    x_true = schedule.add_noise(x0_rep, times_rep[-1], noise[0])
    x_t = noise[1] if config.start == "prior" else schedule.add_noise(x0_rep, times_rep[0], noise[1])
    x_t = x_t.to(device)
    x_guided = guided_rollout(
        denoiser, schedule, omega, x_t, cond_rep, times_rep, config.churn,
        noise[2:].to(device),
    ).cpu()  # fmt: skip
    if config.reference > 1:
        x_more, cond_more = sample_data((config.reference - 1) * n, generator)
        _check_composition(cond, cond_more, config.reference - 1)
        s_more = times_rep[-1].repeat(config.reference - 1)
        noise_more = torch.randn(s_more.shape + x0.shape[1:], generator=generator, dtype=x0.dtype)
        x_more = schedule.add_noise(x_more.repeat_interleave(m, 0), s_more, noise_more)
        x_true = torch.cat([x_true, x_more])
    shape = (n, m) + x0.shape[1:]
    return x_guided.reshape(shape), x_true.reshape((-1,) + shape[1:]), cond, times[-1], times[0]


def _check_composition(cond: Tensor, cond_more: Tensor, times: int) -> None:
    """Raise ``ValueError`` unless the class ids ``cond_more`` hold each class ``times`` times as often as
    ``cond`` (prompt embeddings are not checked): a reference of another class mix adds that mismatch's noise
    to the pooled loss, more than the larger set takes away."""
    if not holds_class_mix(cond, cond_more, times):
        raise ValueError(
            "--reference R > 1 needs the batch's class mix in every further draw: draw balanced classes "
            "(--balanced-classes) with --batch-size a multiple of the number of classes"
        )


def _probe_inputs(
    sample_data: DataSampler, config: OnlineConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Conditions and times ``[n]`` drawn as in training, on which a fitted ω is checked for being constant
    (drawn from a copy of ``generator``, so the run's own random stream is untouched)."""
    gen = torch.Generator().set_state(generator.get_state())
    _, cond = sample_data(config.batch_size, gen)
    s, t = config.draw_times(cond.shape[0], gen)
    return cond, s, t


def simulate_sharded(
    denoiser: Denoiser,
    schedule: Schedule,
    x0: Tensor,
    cond: Tensor,
    times: tuple[Tensor, Tensor],
    config: OnlineConfig,
    generator: torch.Generator,
    procs: Processes,
    device: str | torch.device = "cpu",
) -> TransitionItems:
    """:func:`simulate_items` for a batch ``x0 [n, ...]``, ``cond``, ``times = (s, t)`` (on the CPU), its
    denoiser calls split over ``procs``: the batch's noise is drawn whole (so ``generator`` advances as in
    one process), the items are cut into ``config.blocks`` contiguous blocks, process r simulates blocks
    r, r + N, … on ``device``, and every process receives all items in order. A block's computation does not
    depend on the number of processes, so neither does the result."""
    (s, t), n, m = times, x0.shape[0], config.particles
    noise = torch.randn((3, n * m) + x0.shape[1:], generator=generator, dtype=x0.dtype)
    blocks = torch.arange(n).tensor_split(min(config.blocks, n))

    def simulate_block(j: int) -> TransitionItems:
        block = blocks[j]
        rows = (block[:, None] * m + torch.arange(m)).flatten()  # this block's particles
        items = simulate_items(
            denoiser, schedule, x0[block].to(device), cond[block].to(device), s[block], t[block], m,
            config.churn, generator, noise[:, rows],
        )  # fmt: skip
        return TransitionItems(*(y.cpu() for y in items))

    parts = procs.map_units(simulate_block, len(blocks), everywhere=True)
    return TransitionItems(*(torch.cat(fields) for fields in zip(*parts, strict=True)))
