"""Reports: markdown tables and PNG figures from results (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from learnguide.checkpoints import atomic_write_text  # noqa: E402
from learnguide.core.guidance import METHODS  # noqa: E402
from learnguide.core.line_search import line_search_curve, spread_text  # noqa: E402
from learnguide.images.reports import describe_settings  # noqa: E402

SAMPLE_PANELS = {"unguided": "unguided (ω = 0)", "constant": "best constant ω", "learned": "learned ω"}


@dataclass
class DemoFigures:
    """Arrays the demo report draws, per regime: ``labels [n]``, ``reference [n, 2]``, ``samples`` (method →
    ``[n, 2]``), ``constant_sweep`` (list of ``{"settings", "energy", "mmd"}``), ``tuning_lines`` (method →
    tuning energy), ``omega_t [N]`` and ``omega_table [N, C]``."""

    regimes: dict[str, dict] = field(default_factory=dict)


def results_table(regime: dict) -> str:
    """Markdown table of one regime's methods: settings, evaluation metrics (mean ± std) and tuning energy."""
    rows = [
        "| method | best settings | energy distance | MMD² (RBF) | tuning energy |",
        "|---|---|---|---|---|",
    ]
    best = min(regime[m]["energy"] for m in METHODS)
    for m in METHODS:
        r = regime[m]
        energy = f"{r['energy']:.4f} ± {r['energy_std']:.4f}"
        if r["energy"] == best:
            energy = f"**{energy}**"
        rows.append(
            f"| {m} | {describe_settings(r['settings'])} | {energy} | {r['mmd']:.5f} ± {r['mmd_std']:.5f} "
            f"| {r['tuning']['energy']:.4f} |"
        )
    return "\n".join(rows)


def ranking(regime: dict) -> str:
    """One line on where the learned ω stands among all methods of a regime (by mean energy distance)."""
    order = sorted(METHODS, key=lambda m: regime[m]["energy"])
    best, learned = order[0], regime["learned"]
    place = order.index("learned") + 1
    ratio = regime["unguided"]["energy"] / learned["energy"]
    return (
        f"learned ω ranks {place} of {len(order)} "
        f"(energy {learned['energy']:.4f} ± {learned['energy_std']:.4f}; "
        f"best: {best} {regime[best]['energy']:.4f}); unguided / learned = {ratio:.2f}."
    )


def _plot_samples(name: str, data: dict, path: Path) -> None:
    labels, reference = data["labels"], data["reference"]
    classes = sorted(set(labels.tolist()))
    rows = ["truth", *SAMPLE_PANELS]
    fig, axes = plt.subplots(
        len(rows),
        len(classes),
        figsize=(2.6 * len(classes), 2.6 * len(rows)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for j, c in enumerate(classes):
        mask = labels == c
        for i, row in enumerate(rows):
            ax = axes[i, j]
            ax.scatter(*reference.numpy().T, s=1, c="0.85", rasterized=True)
            pts = reference[mask] if row == "truth" else data["samples"][row][mask]
            ax.scatter(*pts.numpy().T, s=1, c=f"C{j}", alpha=0.5, rasterized=True)
            if i == 0:
                ax.set_title(f"class {c}")
            if j == 0:
                ax.set_ylabel("truth" if row == "truth" else SAMPLE_PANELS[row])
            ax.set_aspect("equal")
    fig.suptitle(f"{name}: samples (colour) over all classes' true samples (grey)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _draw_sweep(ax: plt.Axes, data: dict) -> None:
    sweep = data["constant_sweep"]
    ax.plot(
        [s["settings"]["omega"] for s in sweep], [s["energy"] for s in sweep], "o-", c="k", label="constant ω"
    )
    for k, (method, value) in enumerate(data["tuning_lines"].items()):
        learned = method == "learned"
        ax.axhline(
            value, c=f"C{k}", ls="-" if learned else "--", label="learned ω" if learned else f"best {method}"
        )
    ax.set_yscale("log")
    ax.set_xlabel("constant ω (paper convention; scale w = 1 + ω)")
    ax.set_ylabel("energy distance (tuning set)")


def _draw_omega(ax: plt.Axes, data: dict) -> None:
    t, table = data["omega_t"].numpy(), data["omega_table"].numpy()
    for c in range(table.shape[1]):
        ax.plot(t, table[:, c], "o-", ms=3, label=f"class {c}")
    ax.set_xlabel("t of the step t → s (sampling grid)")
    ax.set_ylabel("learned ω(c, s, t)")
    ax.invert_xaxis()


def _plot_per_regime(figures: DemoFigures, draw: Callable[[plt.Axes, dict], None], path: Path) -> None:
    """One panel per regime, side by side, each drawn by ``draw(ax, regime data)``."""
    fig, axes = plt.subplots(1, len(figures.regimes), figsize=(5.5 * len(figures.regimes), 4), squeeze=False)
    for ax, (name, data) in zip(axes[0], figures.regimes.items(), strict=True):
        draw(ax, data)
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def learning_line(learning: dict) -> str:
    """One sentence on how ω was learned, from a demo regime's learning record: the line search's answer and
    loss curve, or a fit's denoiser calls; with its cost and time, and a line search's warnings after it."""
    cost = f"{learning['denoiser_evals']} denoiser evaluations, {learning['seconds']:.1f} s"
    if learning["method"] != "line-search":
        return f"Learning ω ({learning['method']}): {learning['denoiser_calls']} denoiser calls ({cost})."
    search = learning["line_search"]
    curve = line_search_curve(
        learning["omegas"], learning["losses"], search["shape"], learning["scales"], learning["shape_losses"]
    )
    statistic = search["statistic"]
    spread = spread_text(learning.get("omega_spread"), learning.get("family_share"), learning["shape"])
    warned = "".join(f" Warning: {text}." for text in learning.get("warnings", []))
    return (
        f"Learning ω (line search, {statistic} statistic): {learning['shape']} ω = {learning['omega']:.3f}"
        f"{' ' + spread if spread else ''} (loss by ω — {curve}; {cost}).{warned}"
    )


def write_demo_report(results: dict, figures: DemoFigures, out: Path) -> Path:
    """Write ``report.md`` and its PNG figures into ``out``; returns the report's path."""
    _plot_per_regime(figures, _draw_sweep, out / "metric_vs_omega.png")
    _plot_per_regime(figures, _draw_omega, out / "learned_omega.png")
    meta = results["meta"]
    lines = [
        "# learnguide demo: learned ω on the toy ring mixture",
        "",
        f"Quick: {meta['quick']} · seed {meta['seed']} · {meta['seconds']:.0f} s · torch {meta['torch']}",
        "",
        f"Metric: {meta['metric']}. Every schedule samples with the same number of DDIM steps; "
        "baselines are tuned on a tuning set and all winners are evaluated on fresh seed sets "
        "(mean ± std over sets). Lower is better; the best energy is in bold.",
        "",
    ]
    for name, data in figures.regimes.items():
        regime = results[name]
        _plot_samples(name, data, out / f"samples_{name}.png")
        learning = regime["learned"]["learning"]
        lines += [
            f"## {name}",
            "",
            regime["description"],
            "",
            f"{regime['steps']} sampling steps · {regime['eval_seeds']} evaluation sets of "
            f"{regime['eval_per_class']} samples per class · tuning on {regime['tune_per_class']} per class",
            "",
            results_table(regime),
            "",
            learning_line(learning),
            "",
            f"![samples](samples_{name}.png)",
            "",
        ]
    lines += [
        "## Constant-ω sweep and learned ω",
        "",
        "![metric vs omega](metric_vs_omega.png)",
        "",
        "![learned omega](learned_omega.png)",
        "",
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
