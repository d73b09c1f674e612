"""``report.md`` and figures of ``learnguide experiment``: comparison tables, sample grids (same seeds for
every method, one row per class), FD against constant ω, the learned ω over (class, t), and the reward
trade-off (FD against class accuracy)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from learnguide.checkpoints import atomic_write_text  # noqa: E402
from learnguide.core.guidance import METHODS  # noqa: E402

DETAIL_METRICS = ("fd", "kid", "accuracy", "precision", "recall")


def describe_settings(settings: dict) -> str:
    """A short human-readable form of a guidance schedule's config."""
    kind = settings.get("type")
    if kind == "constant":
        return f"ω = {settings['omega']:g}"
    if kind == "interval":
        return f"ω = {settings['omega']:g} on t ∈ [{settings['t_lo']:g}, {settings['t_hi']:g}]"
    if kind == "increasing":
        return f"{settings['shape']}, ω_max = {settings['omega_max']:g}"
    if kind == "learned":
        return f"ω-network ({settings['output']} output)"
    return str(settings)


def plot_binned_omega(
    omega: Tensor, t_edges: Tensor, path: Path, title: str = "loss-optimal ω per (class, t)"
) -> None:
    """Heat map of a per-(class, t-bin) ω table ``[C, T]`` (NaN: no items) over edges ``t_edges [T + 1]``."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * omega.shape[0] + 1.8))
    image = ax.pcolormesh(
        t_edges.numpy(), range(omega.shape[0] + 1), omega.numpy(), cmap="viridis", shading="flat"
    )
    fig.colorbar(image, ax=ax, label="ω")
    ax.set_xlabel("t of the step t → s")
    ax.set_ylabel("class")
    ax.set_yticks([c + 0.5 for c in range(omega.shape[0])], [str(c) for c in range(omega.shape[0])])
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pm(entry: dict, key: str, digits: int = 2) -> str:
    return f"{entry[key]:.{digits}f} ± {entry[f'{key}_std']:.{digits}f}"


def comparison_table(checkpoint: dict) -> str:
    """Markdown table: one row per method, one column per step count, FD mean ± std (best in bold)."""
    steps = list(checkpoint["by_steps"])
    rows = [
        "| method | " + " | ".join(f"FD, {s} steps" for s in steps) + " |",
        "|---" * (len(steps) + 1) + "|",
    ]
    best = {s: min(checkpoint["by_steps"][s][m]["fd"] for m in METHODS) for s in steps}
    for m in METHODS:
        cells = []
        for s in steps:
            e = checkpoint["by_steps"][s][m]
            cell = _pm(e, "fd")
            cells.append(f"**{cell}**" if e["fd"] == best[s] else cell)
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def detail_table(entry: dict) -> str:
    """Markdown table of one (checkpoint, steps): settings and every metric (mean ± std over seed sets)."""
    inception = "inception_fd" in entry["unguided"]
    head = "| method | settings | FD | KID ×10³ | class accuracy | precision | recall | tuning FD |"
    rows = [head + (" Inception FID |" if inception else ""), "|---" * (8 + inception) + "|"]
    for m in METHODS:
        e = entry[m]
        kid = f"{1e3 * e['kid']:.2f} ± {1e3 * e['kid_std']:.2f}"
        row = (
            f"| {m} | {describe_settings(e['settings'])} | {_pm(e, 'fd')} | {kid} | {_pm(e, 'accuracy', 3)} "
            f"| {_pm(e, 'precision', 3)} | {_pm(e, 'recall', 3)} | {e['tuning']['fd']:.2f} |"
        )
        rows.append(row + (f" {_pm(e, 'inception_fd')} |" if inception else ""))
    return "\n".join(rows)


def reward_table(checkpoint: dict) -> str:
    """Markdown table of the reward-tilted ω: per γ_R and step count, FD and class accuracy (evaluation
    sets, mean ± std) next to the unrewarded learned ω and the best constant ω."""
    steps = list(checkpoint["by_steps"])
    rows = [
        "| method | " + " | ".join(f"FD / accuracy, {s} steps" for s in steps) + " |",
        "|---" * (len(steps) + 1) + "|",
    ]
    methods = {"best constant": lambda e: e["constant"], "learned (γ_R = 0)": lambda e: e["learned"]}
    gammas = checkpoint["by_steps"][steps[0]]["rewarded"]
    methods |= {f"learned, γ_R = {g}": lambda e, g=g: e["rewarded"][g] for g in gammas}
    for label, pick in methods.items():
        picked = [pick(checkpoint["by_steps"][s]) for s in steps]
        cells = [f"{_pm(e, 'fd')} / {e['accuracy']:.3f}" for e in picked]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_tradeoff(tradeoff: dict[int, dict], path: Path) -> None:
    """FD against class accuracy on the tuning set, one panel per step count: the constant-ω curve (ω
    annotated), the unrewarded learned ω, and the reward-tilted ω per γ_R (annotated)."""
    fig, axes = plt.subplots(1, len(tradeoff), figsize=(3.8 * len(tradeoff), 3.2), squeeze=False)
    for ax, (steps, data) in zip(axes[0], tradeoff.items(), strict=True):
        sweep = data["constant"]
        ax.plot(
            [r["accuracy"] for r in sweep], [r["fd"] for r in sweep], "o-", color="C0", label="constant ω"
        )
        for r in sweep:
            ax.annotate(f"{r['settings']['omega']:g}", (r["accuracy"], r["fd"]), fontsize=6, color="C0")
        ax.plot(data["learned"]["accuracy"], data["learned"]["fd"], "s", color="C3", label="learned")
        rewarded = data["rewarded"]
        ax.plot(
            [r["accuracy"] for r in rewarded.values()],
            [r["fd"] for r in rewarded.values()],
            "^-",
            color="C2",
            label="learned + reward",
        )
        for gamma, r in rewarded.items():
            ax.annotate(f"γ={gamma}", (r["accuracy"], r["fd"]), fontsize=6, color="C2")
        _label_panel(ax, "class accuracy", steps)
    _save_panels(fig, axes, path)


def cost_lines(checkpoint: dict) -> list[str]:
    """Denoiser evaluations and seconds to learn ω, against tuning one baseline family by grid search."""
    learning = checkpoint["learning"]
    lines = [
        f"- learning ω ({learning['method']}): {learning['denoiser_evals']:,} denoiser evaluations, "
        f"{learning['wall_seconds']:.1f} s"
    ]
    for s, entry in checkpoint["by_steps"].items():
        costs = ", ".join(
            f"{fam} {c['denoiser_evals']:,} ({c['schedules']} schedules)"
            for fam, c in entry["tuning_cost"].items()
        )
        lines.append(f"- tuning at {s} steps (n = {entry['tune_n']} per schedule): {costs}")
    return lines


def _tile(images: Tensor, rows: int) -> Tensor:
    """``[rows·cols, C, H, W]`` in [−1, 1] → one ``[rows·H, cols·W, C]`` array in [0, 1]."""
    n, c, h, w = images.shape
    cols = n // rows
    grid = images[: rows * cols].reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2)
    return ((grid.reshape(rows * h, cols * w, c) + 1.0) / 2.0).clamp(0, 1)


def plot_sample_grids(grids: dict[str, Tensor], num_classes: int, title: str, path: Path) -> None:
    """One panel per method, one row per class; the same seeds in every panel."""
    fig, axes = plt.subplots(1, len(grids), figsize=(2.2 * len(grids), 2.6), squeeze=False)
    for ax, (method, images) in zip(axes[0], grids.items(), strict=True):
        tile = _tile(images, num_classes)
        ax.imshow((tile.squeeze(-1) if tile.shape[-1] == 1 else tile).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(method, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label_panel(ax: plt.Axes, xlabel: str, steps: int) -> None:
    """Axis labels and title of one step count's panel (validation FD on the y axis)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation FD")
    ax.set_title(f"{steps} steps")


def _save_panels(fig: plt.Figure, axes, path: Path) -> None:
    """Legend on the first panel, then lay out, save and close the figure."""
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_fd_vs_omega(sweeps: dict[int, list[dict]], lines: dict[int, dict[str, float]], path: Path) -> None:
    """Validation FD against constant ω, one panel per step count, other methods' tuning FD as lines."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(3.6 * len(sweeps), 3.0), squeeze=False)
    styles = {"learned": ("C3", "-"), "interval": ("C1", "--"), "increasing": ("C2", ":")}
    for ax, (steps, sweep) in zip(axes[0], sweeps.items(), strict=True):
        ax.plot(
            [r["settings"]["omega"] for r in sweep],
            [r["fd"] for r in sweep],
            "o-",
            color="C0",
            label="constant",
        )
        for method, value in lines[steps].items():
            color, style = styles[method]
            ax.axhline(value, color=color, linestyle=style, label=method)
        _label_panel(ax, "constant ω", steps)
    _save_panels(fig, axes, path)


def write_experiment_report(results: dict, figures: dict, class_names: tuple[str, ...], out: Path) -> Path:
    """Write ``report.md`` and its PNG figures into ``out``; returns the report's path."""
    meta = results["meta"]
    lines = [
        f"# learnguide experiment — {meta['dataset']}",
        "",
        f"Reference: {meta['reference']}; features of the evaluation classifier `{meta['classifier']}`. "
        f"FD between training and test images (the floor at this n): {meta['fd_train_vs_test']:.2f}. "
        f"Wall time {meta.get('seconds', 0):.0f} s.",
        "",
    ]
    for name, fig in figures.items():
        checkpoint = results[name]
        lines += [
            f"## {name}",
            "",
            f"Checkpoint `{checkpoint['checkpoint']}`.",
            "",
            comparison_table(checkpoint),
            "",
        ]
        lines += cost_lines(checkpoint) + [""]
        for steps, entry in checkpoint["by_steps"].items():
            grid_png = f"samples_{name}_{steps}.png"
            plot_sample_grids(
                fig["grids"][int(steps)], len(class_names), f"{name}, {steps} steps", out / grid_png
            )
            lines += [
                f"### {steps} steps (tuning n = {entry['tune_n']}, evaluation n = {entry['eval_n']} × "
                f"{entry['eval_seeds']} seed sets)",
                "",
                detail_table(entry),
                "",
                f"![samples]({grid_png})",
                "",
            ]
        curve_png, heat_png = f"fd_vs_omega_{name}.png", f"omega_heatmap_{name}.png"
        plot_fd_vs_omega(fig["sweeps"], fig["lines"], out / curve_png)
        grid, table = fig["omega"]["grid"], fig["omega"]["table"]  # grid [N + 1] descending, table [N, K]
        plot_binned_omega(
            torch.flip(table, [0]).T.contiguous(),
            torch.flip(grid, [0]),
            out / heat_png,
            title=f"learned ω, {name}",
        )
        lines += [f"![FD vs ω]({curve_png})", "", f"![learned ω]({heat_png})", ""]
        if "tradeoff" in fig:
            tradeoff_png = f"reward_tradeoff_{name}.png"
            plot_tradeoff(fig["tradeoff"], out / tradeoff_png)
            lines += [
                "### Reward-tilted ω (R = log p(c | x̂_0) under the evaluation classifier)",
                "",
                reward_table(checkpoint),
                "",
                f"![FD against class accuracy]({tradeoff_png})",
                "",
            ]
        if "bank_omega" in fig:
            bank_png = f"bank_optimal_omega_{name}.png"
            plot_binned_omega(
                *fig["bank_omega"], out / bank_png, title=f"loss-optimal ω per (class, t), {name}"
            )
            q = checkpoint["bank_diagnostics"]["per_item_optimal_omega"]
            lines += [
                f"Bank diagnostic (what the self-consistency loss wants, per class and t-bin, before any "
                f"network): per-item optimal ω quantiles 10/50/90 %: {q['q10']:.2f} / {q['q50']:.2f} / "
                f"{q['q90']:.2f}.",
                "",
                f"![loss-optimal ω]({bank_png})",
                "",
            ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
