"""Transition banks: learn ω from cached sufficient statistics (docs/design.md §3.1).

A bank is a folder of shards, each holding for a block of items the condition as ω sees it
(:func:`~learnguide.core.guidance.omega_condition`: prompt embeddings mean-pooled), the times s < t and the
pair statistics of :func:`~learnguide.core.objectives.pair_statistics` (float64), plus a
``manifest.json``. Because
the guided particles are A + ωB with one ω per item, every item's loss is an exact function of ω from these
numbers, for any β and λ: the denoiser runs once, forward only, and fitting ω_φ afterwards is cheap.

Shard k is drawn from its own seed (``seed``, k), so a killed run resumes at the first missing shard and ends
with exactly the bank an uninterrupted run writes.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor
from tqdm.auto import tqdm

from learnguide.checkpoints import (
    CheckpointError,
    Field,
    atomic_save_tensors,
    atomic_write_text,
    check_finite,
    checked_config,
)
from learnguide.core.denoisers import Denoiser
from learnguide.core.fit_checks import OutputGradientMonitor, RunRecord, constant_omega_message
from learnguide.core.fit_checks import report as report_fit
from learnguide.core.guidance import OmegaNet, omega_condition
from learnguide.core.items import DataSampler, TimeSampling, simulate_items
from learnguide.core.memory import FLOAT32, FLOAT64, check_memory, pair_count, particle_bytes
from learnguide.core.objectives import (
    LossSettings,
    Reward,
    energy_loss_from_stats,
    pair_statistics,
    reward_loss,
)
from learnguide.core.schedules import Schedule, get_schedule
from learnguide.distributed import Processes

BANK_KIND = "learnguide.bank"
MANIFEST = "manifest.json"
EXTRA_FIELDS = ("x0_cond", "delta")


@dataclass
class BankConfig(TimeSampling):
    """What a bank holds and how its items are drawn (times as in training: :class:`TimeSampling`).

    Attributes:
        items: number of items (x_0, c, s, t) in the bank.
        particles: m true and m guided particles per item.
        shard_size: items per shard (the unit of resumption).
        batch_size: items per denoiser forward (2·batch_size·m inputs); bounds memory.
        store_predictions: also store x̂_c and Δ per guided particle (``[m, ...]`` float32 per item), for
            objectives that need them (reward).
        seed: shard k draws everything from the seed pair (seed, k).
    """

    items: int = 16384
    particles: int = 4
    shard_size: int = 4096
    batch_size: int = 1024
    store_predictions: bool = False
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        if min(self.items, self.shard_size, self.batch_size) < 1:
            raise ValueError(
                "--items, --shard-size and --batch-size (items, shard_size, batch_size) must be >= 1, got "
                f"{self.items}, {self.shard_size} and {self.batch_size}"
            )
        if self.particles < 2:
            raise ValueError(f"a bank needs at least 2 particles per item, got {self.particles}")
        self.check_times()

    @property
    def num_shards(self) -> int:
        """How many shards the bank has."""
        return math.ceil(self.items / self.shard_size)


@dataclass
class BankRecord:
    """What making a bank cost (all processes of a run together; resumed shards are not counted again)."""

    shards_written: int = 0
    denoiser_calls: int = 0
    denoiser_evals: int = 0
    seconds: float = 0.0


def _shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def shard_generator(seed: int, k: int) -> torch.Generator:
    """The random source of shard ``k`` of a bank with seed ``seed`` (independent of every other shard)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + k)


def _manifest(config: BankConfig, schedule: Schedule, denoiser_id: str, done: list[int]) -> dict:
    return {
        "kind": BANK_KIND,
        "config": asdict(config),
        "schedule": schedule.config(),
        "denoiser_id": denoiser_id,
        "shards_done": sorted(done),
    }


@torch.no_grad()
def _make_shard(
    denoiser: Denoiser,
    schedule: Schedule,
    sample_data: DataSampler,
    config: BankConfig,
    k: int,
    record: BankRecord,
    bar: tqdm,
    device: torch.device,
) -> dict[str, Tensor]:
    gen = shard_generator(config.seed, k)
    n = min(config.shard_size, config.items - k * config.shard_size)
    x0, cond = sample_data(n, gen)
    _check_bank_memory(config, x0[0].numel(), device)
    s, t = config.draw_times(n, gen)
    parts: dict[str, list[Tensor]] = {"stats": [], **{f: [] for f in EXTRA_FIELDS}}
    for lo in range(0, n, config.batch_size):
        sl = slice(lo, lo + config.batch_size)
        x0_batch, cond_batch = x0[sl].to(device), cond[sl].to(device)
        items = simulate_items(
            denoiser, schedule, x0_batch, cond_batch, s[sl], t[sl], config.particles, config.churn, gen
        )
        parts["stats"].append(pair_statistics(items.a, items.b, items.x_true).cpu())
        if config.store_predictions:
            parts["x0_cond"].append(items.x0_cond.float().cpu())
            parts["delta"].append(items.delta.float().cpu())
        record.denoiser_calls += 1
        record.denoiser_evals += 2 * items.a.shape[0] * config.particles
        bar.update(items.a.shape[0])
        bar.set_postfix(nfe=record.denoiser_evals)
    shard = {"cond": omega_condition(cond).contiguous(), "s": s, "t": t, "stats": torch.cat(parts["stats"])}
    if config.store_predictions:
        shard.update({f: torch.cat(parts[f]) for f in EXTRA_FIELDS})
    return shard


def bank_differences(
    out_dir: str | Path, config: BankConfig, schedule: Schedule, denoiser_id: str
) -> list[str]:
    """What differs between the bank in ``out_dir`` (a manifest) and these settings, schedule and denoiser:
    one ``"name (X there, Y now)"`` each (config names are the ``bank`` flags: ``particles`` is
    ``--particles``); empty when they match."""
    old = json.loads((Path(out_dir) / MANIFEST).read_text())
    old = old if isinstance(old, dict) else {}
    made = old.get("config") if isinstance(old.get("config"), dict) else {}
    wanted = asdict(config)
    differ = [f"{k} ({made.get(k)!r} there, {v!r} now)" for k, v in wanted.items() if made.get(k) != v]
    differ += [f"{k} (unknown to this version)" for k in made.keys() - wanted.keys()]
    if old.get("schedule") != schedule.config():
        differ.append(f"the schedule ({old.get('schedule')} there, {schedule.config()} now)")
    if old.get("denoiser_id") != denoiser_id:
        differ.append(f"the denoiser (id {old.get('denoiser_id')!r} there, {denoiser_id!r} now)")
    return differ


def bank_matches(out_dir: str | Path, config: BankConfig, schedule: Schedule, denoiser_id: str) -> bool:
    """Whether ``out_dir`` holds a (possibly partial) bank made with these settings, schedule and denoiser."""
    path = Path(out_dir) / MANIFEST
    return path.is_file() and not bank_differences(out_dir, config, schedule, denoiser_id)


def generate_bank(
    denoiser: Denoiser,
    schedule: Schedule,
    sample_data: DataSampler,
    out_dir: str | Path,
    config: BankConfig,
    denoiser_id: str = "",
    progress: bool = True,
    procs: Processes | None = None,
    device: str | torch.device = "cpu",
) -> BankRecord:
    """Write a transition bank into ``out_dir`` (forward passes only), resuming a partial one.

    Args:
        denoiser: the frozen x̂ denoiser.
        schedule: its noise schedule.
        sample_data: ``(n, generator) -> (x_0 [n, ...], cond [n], [n, E] or [n, L, E])``.
        out_dir: bank folder; if it holds a bank made with the same settings, missing shards are added.
        config: what to draw (:class:`BankConfig`).
        denoiser_id: identifies the denoiser (e.g. a hash of its weights); checked on resume and by fits.
        progress: show a progress bar with items/s and the denoiser evaluations (NFE) so far.
        procs: the processes of a multi-process run (:func:`learnguide.distributed.processes`); process r
            of N makes shards r, r + N, …, and the bank is the one a single process makes. The returned
            record sums all processes.
        device: where the denoiser runs (it must already be there); data and noise are drawn on the CPU
            and moved, statistics come back to the CPU, so the bank does not depend on the device.

    Raises:
        ValueError: if ``out_dir`` holds a bank made with other settings, schedule or denoiser.
    """
    config.validate()
    procs = procs or Processes()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    differ = bank_differences(out, config, schedule, denoiser_id) if (out / MANIFEST).is_file() else []
    if differ:
        raise ValueError(
            f"{out} holds a bank made with other settings: {'; '.join(differ)}; use another folder or the "
            "same settings"
        )
    record, began = BankRecord(), time.perf_counter()
    todo = [k for k in range(config.num_shards) if not (out / _shard_name(k)).is_file()]
    procs.barrier()  # every process lists the shards before any writes one: they agree on what is left
    remaining = sum(min(config.shard_size, config.items - k * config.shard_size) for k in todo)
    bar = tqdm(
        total=config.items,
        initial=config.items - remaining,
        desc="bank",
        unit="item",
        disable=not progress or not procs.is_main,
    )
    for k in procs.mine(todo):  # a shard file exists only once complete (written, then renamed)
        shard = _make_shard(denoiser, schedule, sample_data, config, k, record, bar, torch.device(device))
        check_finite(shard, f"the denoiser's items for {out / _shard_name(k)}")
        atomic_save_tensors(out / _shard_name(k), shard)
        _write_manifest(out, config, schedule, denoiser_id, f".{procs.rank}")
        record.shards_written += 1
    bar.close()
    procs.barrier()
    if procs.is_main:  # every shard is on disk now: one manifest lists them all
        _write_manifest(out, config, schedule, denoiser_id, "")
    parts = procs.gather(asdict(record))
    total = BankRecord(**{key: sum(part[key] for part in parts) for key in parts[0]})
    total.seconds = time.perf_counter() - began
    return total


def _check_bank_memory(config: BankConfig, numbers: int, device: str | torch.device) -> None:
    """Refuse settings whose batch (on ``device``) or shard (on the CPU) of items of ``numbers`` values cannot
    fit, before their particles are drawn (:func:`~learnguide.core.memory.check_memory`)."""
    m = config.particles
    batch, shard = (
        min(config.batch_size, config.shard_size, config.items),
        min(config.shard_size, config.items),
    )
    lower = "--particles, --batch-size or --shard-size"
    what = f"a bank batch of {batch} items × {m} particles of {numbers} values"
    check_memory(particle_bytes(batch, m, numbers), what, lower, device)
    stored = 3 * pair_count(m) * FLOAT64 + numbers * FLOAT32
    stored += 2 * m * numbers * FLOAT32 if config.store_predictions else 0
    check_memory(shard * stored, f"a bank shard of {shard} items × {m} particles", lower)


def _write_manifest(out: Path, config: BankConfig, schedule: Schedule, denoiser_id: str, tag: str) -> None:
    """Write the manifest listing the shards on disk (``tag`` keeps processes' temporary files apart)."""
    done = [k for k in range(config.num_shards) if (out / _shard_name(k)).is_file()]
    atomic_write_text(
        out / MANIFEST, json.dumps(_manifest(config, schedule, denoiser_id, done), indent=1), tag=tag
    )


@dataclass
class Bank:
    """A loaded bank: ``cond [N]``/``[N, E]``, ``s``, ``t`` ``[N]`` float64, ``stats [N, P, 3]`` float64, and
    (if stored) ``x0_cond``/``delta`` ``[N, m, ...]``; ``particles`` m and the manifest."""

    cond: Tensor
    s: Tensor
    t: Tensor
    stats: Tensor
    particles: int
    manifest: dict
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.s.shape[0]

    def loss(
        self, omega: Tensor, beta: float = 1.75, lam: float = 1.0, index: Tensor | None = None
    ) -> Tensor:
        """Per-item self-consistency loss ``[n]`` at per-item ω ``[n]`` (the loss the online trainer uses)."""
        stats = self.stats if index is None else self.stats[index]
        return energy_loss_from_stats(stats, omega, self.particles, beta, lam)


def load_bank(directory: str | Path, denoiser_id: str | None = None) -> Bank:
    """Load a complete bank; no code runs (JSON + safetensors).

    Raises :class:`~learnguide.checkpoints.CheckpointError` if the folder is not a bank, is incomplete (the
    run that makes it has not finished: run it again to resume), has a corrupted shard, or (when
    ``denoiser_id`` is given) was made with another denoiser.
    """
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory} has no {MANIFEST}: it is not a transition bank") from None
    except (ValueError, RecursionError) as err:  # not JSON, not UTF-8
        raise CheckpointError(f"{directory / MANIFEST} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != BANK_KIND:
        raise CheckpointError(f"{directory} is not a transition bank")
    checked = checked_config(manifest, MANIFEST_FIELDS, directory / MANIFEST)
    config = checked["config"]
    done = sum(1 for k in set(checked["shards_done"]) if k < config.num_shards)
    if done < config.num_shards:
        raise CheckpointError(
            f"{directory} is incomplete ({config.num_shards - done} of {config.num_shards} shards missing); "
            "run the same bank command again to finish it"
        )
    if denoiser_id is not None and manifest["denoiser_id"] != denoiser_id:
        raise CheckpointError(f"{directory} was made with another denoiser ({manifest['denoiser_id']!r})")
    shards = [_load_shard(directory / _shard_name(k), config) for k in range(config.num_shards)]
    if any(set(shard) != set(shards[0]) for shard in shards):
        raise CheckpointError(f"{directory}: its shards hold different tensors")
    try:
        cat = {key: torch.cat([sh[key] for sh in shards]) for key in shards[0]}
    except RuntimeError as err:
        raise CheckpointError(f"{directory}: its shards do not fit together ({err})") from None
    check_finite(cat, f"the shards of {directory}")
    extras = {f: cat[f] for f in EXTRA_FIELDS if f in cat}
    return Bank(cat["cond"], cat["s"], cat["t"], cat["stats"], config.particles, manifest, extras)


def _checked_bank_config(values: dict) -> BankConfig:
    config = BankConfig(**values)
    config.validate()
    return config


MANIFEST_FIELDS = {  # what load_bank reads from manifest.json
    "config": Field(
        dict,
        fields={
            f.name: Field({"int": int, "float": float, "bool": bool}.get(str(f.type), object))
            for f in fields(BankConfig)
        },
        parse=_checked_bank_config,
    ),
    "schedule": Field(parse=get_schedule),
    "denoiser_id": Field(str),
    "shards_done": Field(list, items=Field(int, 0, None)),
}


def _load_shard(path: Path, config: BankConfig) -> dict[str, Tensor]:
    """One shard's tensors, checked: ``cond``, ``s``, ``t`` and ``stats`` (and the extras) for the same n
    items, with the pair statistics of ``config.particles`` particles."""
    try:
        shard = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupted files
        raise CheckpointError(f"{path} is corrupted or missing ({err})") from None
    m = config.particles
    missing = {"cond", "s", "t", "stats"} - set(shard)
    if missing:
        raise CheckpointError(f"{path} lacks {sorted(missing)}: it is not a bank shard")
    n = shard["s"].shape[0] if shard["s"].dim() == 1 else -1
    pairs = (n, m * m + m * (m - 1) // 2, 3)
    if (
        shard["t"].shape != (n,)
        or shard["stats"].shape != pairs
        or any(v.dim() == 0 or len(v) != n for v in shard.values())
    ):
        shapes = {k: tuple(v.shape) for k, v in shard.items()}
        raise CheckpointError(
            f"{path} holds tensors of shapes {shapes}, not the {n} items of a bank with {m} particles"
        )
    return shard


def per_item_optimal_omega(
    bank: Bank, beta: float = 1.75, lam: float = 1.0, grid: Tensor | None = None
) -> Tensor:
    """Each item's loss-minimising ω ``[N]`` over a grid (default −2 … 8 in steps of 0.01): a diagnostic."""
    grid = torch.arange(-2.0, 8.0001, 0.01, dtype=torch.float64) if grid is None else grid.double()
    best_loss = torch.full((len(bank),), math.inf, dtype=torch.float64)
    best = torch.zeros(len(bank), dtype=torch.float64)
    for w in grid:  # a loop over grid values, each batched over all items
        loss = bank.loss(w.expand(len(bank)), beta, lam)
        better = loss < best_loss
        best_loss, best = torch.where(better, loss, best_loss), torch.where(better, w, best)
    return best


def class_time_cells(bank: Bank, t_edges: Tensor) -> Tensor:
    """Each item's (class, t-bin) cell ``[N]``: class · T + bin, for bins between ``t_edges [T + 1]``."""
    bins = t_edges.shape[0] - 1
    return bank.cond * bins + (torch.bucketize(bank.t, t_edges.double()) - 1).clamp(0, bins - 1)


def binned_optimal_omega(
    bank: Bank, t_edges: Tensor, beta: float = 1.75, lam: float = 1.0, grid: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The ω minimising the mean loss of the items of each (class, t-bin): ``(omega [C, T], count [C, T])``.

    Only for class-id conditions; bins without items hold NaN. A diagnostic of what a per-class, per-time ω
    would choose, independent of the ω-network's capacity.
    """
    if bank.cond.dim() != 1:
        raise ValueError("binned_optimal_omega needs class-id conditions")
    grid = torch.arange(-2.0, 8.0001, 0.02, dtype=torch.float64) if grid is None else grid.double()
    classes = int(bank.cond.max()) + 1
    cell = class_time_cells(bank, t_edges)  # [N]
    cells = classes * (t_edges.shape[0] - 1)
    count = torch.bincount(cell, minlength=cells).double()
    totals = torch.stack(
        [
            torch.zeros(cells, dtype=torch.float64).index_add_(
                0, cell, bank.loss(w.expand(len(bank)), beta, lam)
            )
            for w in grid
        ]
    )  # [G, cells]
    omega = grid[totals.argmin(0)]
    omega = torch.where(count > 0, omega, torch.full_like(omega, math.nan))
    shape = (classes, t_edges.shape[0] - 1)
    return omega.reshape(shape), count.reshape(shape)


def bank_diagnostics(
    bank: Bank, beta: float = 1.75, lam: float = 1.0, bins: int = 10
) -> tuple[dict, Tensor, Tensor]:
    """What the loss wants, independent of the ω-network: per-(class, t-bin) optimum, per-item quantiles.

    Returns ``(table, omega [C, bins], t_edges [bins + 1])``; ``table`` is JSON-ready (empty bins are None).
    """
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    omega, count = binned_optimal_omega(bank, edges, beta, lam)
    quantiles = per_item_optimal_omega(bank, beta, lam).quantile(
        torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    )
    table = {
        "beta": beta,
        "lam": lam,
        "t_edges": edges.tolist(),
        "omega": [[None if math.isnan(w) else w for w in row] for row in omega.tolist()],
        "count": count.tolist(),
        "per_item_optimal_omega": dict(zip(("q10", "q50", "q90"), quantiles.tolist(), strict=True)),
    }
    return table, omega, edges


def bank_optimum_gaps(
    omega_net: OmegaNet, bank: Bank, beta: float = 1.75, lam: float = 1.0, bins: int = 10
) -> dict[str, Tensor] | None:
    """The fitted ω against the bank's own optimum, per (class, t-bin): a check of a fit (docs/design.md §4).

    Returns ``{"fitted", "optimum", "excess", "gain", "count"}``, each ``[C, bins]`` float64 (NaN in empty
    bins), or None for embedding conditions. ``fitted`` is the cell's mean ω as sampling uses it,
    ``optimum`` the cell's loss-minimising ω mapped the same way (≥ 0 for relu and softplus outputs),
    ``excess`` the cell's mean loss at the fitted ω minus that at the optimum, and ``gain`` the cell's mean
    loss at ω = 0 minus that at the optimum (what guidance can win there).
    """
    if bank.cond.dim() != 1:
        return None
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    optimum, count = binned_optimal_omega(bank, edges, beta, lam)
    if omega_net.hparams["output"] != "identity":
        optimum = optimum.clamp(min=0.0)
    cell = class_time_cells(bank, edges)  # [N]
    with torch.no_grad():
        fitted = omega_net(bank.cond, bank.s, bank.t).double()

    def cell_mean(values: Tensor) -> Tensor:
        total = torch.zeros(count.numel(), dtype=torch.float64).index_add_(0, cell, values)
        return (total / count.flatten()).reshape(count.shape)

    at_optimum = cell_mean(bank.loss(optimum.flatten().nan_to_num(0.0)[cell], beta, lam))
    return {
        "fitted": cell_mean(fitted),
        "optimum": optimum,
        "excess": cell_mean(bank.loss(fitted, beta, lam)) - at_optimum,
        "gain": cell_mean(bank.loss(torch.zeros_like(fitted), beta, lam)) - at_optimum,
        "count": count,
    }


def bank_gap_message(gaps: dict[str, Tensor] | None, min_count: int = 32) -> str | None:
    """A message if, in some (class, t-bin) cell with ≥ ``min_count`` items where guidance can lower the
    loss by more than 0.1 % (``gain``), the fitted ω is off the optimum by more than 0.25·max(1, |optimum|)
    and gives away more than a quarter of that gain; else None. ``gaps`` is :func:`bank_optimum_gaps`'s."""
    if gaps is None:
        return None
    scale = (gaps["gain"] + gaps["excess"]).abs().nan_to_num(0.0).mean().clamp(min=1e-12)
    off = (gaps["fitted"] - gaps["optimum"]).abs() > 0.25 * gaps["optimum"].abs().clamp(min=1.0)
    bad = off & (gaps["excess"] > 0.25 * gaps["gain"]) & (gaps["gain"] > 1e-3 * scale)
    bad &= gaps["count"] >= min_count
    if not bool(bad.any()):
        return None
    worst = int(torch.where(bad, gaps["excess"], torch.full_like(gaps["excess"], -math.inf)).argmax())
    c, b = divmod(worst, gaps["count"].shape[1])
    bins = gaps["count"].shape[1]
    return (
        f"the fitted ω is far from the bank's own optimum in {int(bad.sum())} (class, t) cell(s); worst: "
        f"class {c}, t in [{b / bins:.1f}, {(b + 1) / bins:.1f}): fitted {float(gaps['fitted'][c, b]):.2f}, "
        f"optimum {float(gaps['optimum'][c, b]):.2f}. Try more epochs, a lower --lr or the default relu "
        "output; --diagnostics shows the whole table"
    )


@dataclass
class FitConfig(LossSettings):
    """Hyper-parameters of :func:`fit_omega_on_bank` (β, λ, γ_R and the seed: :class:`LossSettings`).

    Attributes:
        epochs: maximum passes over the training items.
        batch_size: items per Adam step.
        lr: Adam learning rate.
        val_fraction: share of items held out for validation and early stopping.
        patience: stop after this many epochs without a better validation loss (the best state is kept).
        beta, lam: energy exponent β ∈ (0, 2] and repulsion λ ∈ [0, 1] (chosen at fit time: the statistics
            do not depend on them).
        reward_weight: γ_R ≥ 0 of the reward term −γ_R·E[R(x̂_c + ωΔ, c)] (Algorithm 4), evaluated on the
            bank's stored x̂_c and Δ (a bank made with ``store_predictions``); 0 leaves it out.
        seed: seeds the split, the minibatch order and nothing else.
    """

    epochs: int = 100
    batch_size: int = 1024
    lr: float = 3e-3
    val_fraction: float = 0.1
    patience: int = 20

    def validate(self, reward: Reward | None = None) -> None:
        """Raise ``ValueError`` naming the first invalid setting (γ_R > 0 needs the ``reward``)."""
        self.check_loss(reward)
        if self.epochs < 1 or self.batch_size < 1 or not 0.0 < self.lr < math.inf:
            raise ValueError(
                "--epochs and --batch-size (epochs, batch_size) must be >= 1 and --lr a finite number > 0, "
                f"got {self.epochs}, {self.batch_size} and lr={self.lr}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class FitRecord(RunRecord):
    """Training and validation loss per epoch, the best epoch, items seen, wall time and warnings."""

    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    best_epoch: int = 0
    items_seen: int = 0


@torch.enable_grad()  # trains even when the caller samples under no_grad
def fit_omega_on_bank(
    omega_net: OmegaNet, bank: Bank, config: FitConfig, progress: bool = True, reward: Reward | None = None
) -> FitRecord:
    """Fit ``omega_net`` in place on a bank by minibatch Adam with a held-out split and early stopping.

    Args:
        omega_net: the ω-network (its schedule must be the bank's).
        bank: a loaded :class:`Bank`.
        config: :class:`FitConfig`.
        progress: show a progress bar over epochs with the validation loss.
        reward: ``R(x0 [B, ...], cond) -> [B]`` (a :class:`~.objectives.Reward`); needed when γ_R > 0.

    Returns:
        the :class:`FitRecord`; the network ends in its best-validation state. A fit whose ω is constant,
        whose output passed no gradient for an epoch, or that is far from the bank's own per-(class, t)
        optimum is reported in ``record.warnings`` and as a :class:`~learnguide.core.fit_checks.FitWarning`.
    """
    config.validate(reward)
    if config.reward_weight > 0.0 and not all(f in bank.extras for f in EXTRA_FIELDS):
        raise ValueError("the reward needs x̂_c and Δ per particle: make the bank with --store-predictions")
    if omega_net.schedule.config() != bank.manifest["schedule"]:
        raise ValueError(
            f"the ω-network's schedule {omega_net.schedule.config()} is not the bank's "
            f"{bank.manifest['schedule']}"
        )
    if len(bank) < 2:
        raise ValueError("the bank has fewer than 2 items")
    gen = torch.Generator().manual_seed(config.seed)
    perm = torch.randperm(len(bank), generator=gen)
    n_val = max(1, int(round(config.val_fraction * len(bank))))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(omega_net.parameters(), lr=config.lr)
    record, began = FitRecord(), time.perf_counter()
    best_state, best_val, stale = None, math.inf, 0

    def mean_loss(idx: Tensor) -> Tensor:
        omega = omega_net.fit_omega(bank.cond[idx], bank.s[idx], bank.t[idx])
        loss = bank.loss(omega, config.beta, config.lam, idx).mean()
        if config.reward_weight > 0.0:
            x0_cond, delta = bank.extras["x0_cond"][idx], bank.extras["delta"][idx]
            loss = loss + config.reward_weight * reward_loss(reward, x0_cond, delta, omega, bank.cond[idx])
        return loss

    monitor = OutputGradientMonitor(omega_net)
    bar = tqdm(range(config.epochs), desc="fit ω on bank", disable=not progress)
    for epoch in bar:
        omega_net.train()
        order = train_idx[torch.randperm(train_idx.shape[0], generator=gen)]
        total = 0.0
        for lo in range(0, order.shape[0], config.batch_size):
            idx = order[lo : lo + config.batch_size]
            loss = mean_loss(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            monitor.step()
            opt.step()
            total += loss.item() * idx.shape[0]
            record.items_seen += idx.shape[0]
        monitor.end_epoch()
        omega_net.eval()
        with torch.no_grad():
            val = mean_loss(val_idx).item()
        record.train_losses.append(total / max(1, order.shape[0]))
        record.val_losses.append(val)
        bar.set_postfix(val=f"{val:.5f}")
        if val < best_val - 1e-9:
            best_val, best_state, stale, record.best_epoch = (
                val,
                copy.deepcopy(omega_net.state_dict()),
                0,
                epoch,
            )
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        omega_net.load_state_dict(best_state)
    omega_net.eval()
    record.seconds = time.perf_counter() - began
    record.warnings = report_fit(
        [
            constant_omega_message(omega_net, bank.cond, bank.s, bank.t),
            monitor.message(),
            None  # a reward moves the optimum away from self-consistency's on purpose
            if config.reward_weight > 0
            else bank_gap_message(bank_optimum_gaps(omega_net, bank, config.beta, config.lam)),
        ]
    )
    return record
