"""Robustness curves: pure functions of the tidy records (the summary they share with the
leaderboard is :mod:`imlbench.results.robustness_summary`).

Input: the results store's records (``ResultStore.latest()``), one row per (method, checkpoint,
dataset, perturbation, severity, metric). Several checkpoints of one method (training seeds)
are averaged, as in the leaderboard; a cell recorded twice is an error, never averaged.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.figure import Figure

from imlbench.registry import PERTURBATIONS
from imlbench.results.leaderboard import severity_key
from imlbench.results.robustness_summary import CLEAN, metric_rows
from imlbench.robustness import format_severity

MAX_PANELS_PER_ROW = 3


def plot_robustness(df: pd.DataFrame, metric: str, out_dir: Path) -> list[Path]:
    """One PNG per perturbation: ``metric`` vs severity, one panel per dataset, one line per
    method (mean over checkpoints, ± std band when there are several), clean value as a dashed
    line (and as a point at the identity severity where one exists, e.g. resize 1.0).
    Files: ``<out_dir>/robustness_<metric>_<perturbation>.png``."""
    rows = metric_rows(df, metric)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = _method_colours(rows)
    paths = []
    for perturbation in sorted(set(rows.perturbation) - {CLEAN}):
        fig = _robustness_figure(rows, perturbation, metric, colours)
        path = out_dir / f"robustness_{_file_safe(metric)}_{_file_safe(perturbation)}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    return paths


# -- figures ---------------------------------------------------------------------------------
def _robustness_figure(rows: pd.DataFrame, perturbation: str, metric: str,
                       colours: dict[str, str]) -> Figure:
    cls = PERTURBATIONS.get(perturbation) if perturbation in PERTURBATIONS else None
    perturbed = rows[rows.perturbation == perturbation]
    datasets = sorted(perturbed.dataset.unique())
    n_cols = min(len(datasets), MAX_PANELS_PER_ROW)
    n_rows = -(-len(datasets) // n_cols)
    fig = Figure(figsize=(4.6 * n_cols, 3.6 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharey=True, squeeze=False).ravel()
    severities = sorted(perturbed.severity.unique(), key=severity_key)
    # A registered single perturbation has numeric severities; chains are categorical.
    x_of = ({s: float(s) for s in severities} if cls is not None
            else {s: float(i) for i, s in enumerate(severities)})
    ticks = {x: s for s, x in x_of.items()}
    if cls is not None and cls.identity_severity is not None and (rows.perturbation == CLEAN).any():
        ticks[float(cls.identity_severity)] = f"{format_severity(cls.identity_severity)}\n(clean)"
    for ax, dataset in zip(axes, datasets):
        data = rows[(rows.dataset == dataset) & rows.perturbation.isin([CLEAN, perturbation])]
        for method, by_method in data.groupby("method", sort=True):
            _draw_method(ax, by_method, x_of, cls, colours[method], method)
        ax.set_title(dataset)
        ax.set_xlabel(cls.severity_label if cls is not None else f"{perturbation} severity")
        ax.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
        if cls is not None and cls.stronger_when_lower:
            ax.invert_xaxis()  # stronger to the right on every plot
        ax.grid(alpha=0.3)
    for ax in axes[len(datasets):]:
        ax.set_visible(False)
    axes[0].set_ylabel(metric)
    legend = {}  # label -> handle, over every panel (a method may miss some datasets)
    for ax in axes:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend([legend[k] for k in sorted(legend)], sorted(legend), loc="outside right upper",
               fontsize="small", title="method")
    fig.suptitle(f"{metric} under {perturbation} (dashed: clean)")
    return fig


def _draw_method(ax, rows: pd.DataFrame, x_of: dict[str, float],
                 cls: type | None, colour: str, label: str) -> None:
    """One method's mean curve (± std band over checkpoints) and its dashed clean level."""
    is_clean = rows.perturbation == CLEAN
    curve = rows[~is_clean].groupby("severity")["value"].agg(["mean", "std", "count"])
    if curve.empty:  # clean only: nothing to draw a curve of
        return
    xs = [x_of[s] for s in curve.index]
    ys, spread = curve["mean"].to_numpy(), curve["std"].fillna(0).to_numpy()
    clean = rows.loc[is_clean, "value"]
    if len(clean) and cls is not None and cls.identity_severity is not None:
        xs.append(float(cls.identity_severity))
        ys = np.append(ys, clean.mean())
        spread = np.append(spread, clean.std() if len(clean) > 1 else 0.0)
    order = np.argsort(xs)
    xs, ys, spread = np.asarray(xs)[order], ys[order], spread[order]
    ax.plot(xs, ys, marker="o", color=colour, label=label)
    if (curve["count"] > 1).any():
        ax.fill_between(xs, ys - spread, ys + spread, color=colour, alpha=0.15, linewidth=0)
    if len(clean):
        ax.axhline(clean.mean(), color=colour, linestyle="--", linewidth=1)


def _method_colours(rows: pd.DataFrame) -> dict[str, str]:
    """Same colour for a method in every panel and every file."""
    cycle = matplotlib.colormaps["tab10"].colors
    return {m: mcolors.to_hex(cycle[i % len(cycle)])
            for i, m in enumerate(sorted(rows.method.unique()))}


def _file_safe(text: str) -> str:
    return re.sub(r"[^\w.+-]", "_", text)
