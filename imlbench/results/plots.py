"""Robustness curves and the "mean retained" summary: pure functions of the tidy records.

Input: the results store's records (``ResultStore.latest()``), one row per (method, checkpoint,
dataset, perturbation, severity, metric). Several checkpoints of one method (training seeds)
are averaged, as in the leaderboard; a cell recorded twice is an error, never averaged.

**Retained** (per checkpoint, severity ``s``): ``value(s) / clean``, with ``clean`` the same
checkpoint's value on the same dataset's clean cell. ``mean_retained`` is the mean over the
severities present in the records (the grid that was run) of that ratio, then the mean over
checkpoints. It is NaN when the clean value is missing, NaN or below
:data:`RETAINED_MIN_CLEAN` (nothing to retain, or a ratio of noise), or when any severity's
value is NaN: a hole never silently raises or lowers the average. Values above 1 mean the
perturbation helped. For lower-is-better metrics (``pixel_fpr_authentic``) the ratio is a
growth factor, not a retained fraction.

**Drop** (per checkpoint): ``clean - mean over severities of value(s)``, then the mean over
checkpoints; defined whenever the clean value is, so it is the number to read for weak methods.
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
from imlbench.errors import ResultsError
from imlbench.results.leaderboard import CLEAN, RETAINED_MIN_CLEAN, severity_key
from imlbench.results.store import CELL_KEYS
from imlbench.robustness import format_severity

REQUIRED_COLUMNS = ("method", "checkpoint", "dataset", "perturbation", "severity", "metric", "value")
MAX_PANELS_PER_ROW = 3


def robustness_summary(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (method, dataset, perturbation) with ``clean``, ``mean_value``,
    ``mean_retained`` (± ``retained_std`` over checkpoints, ddof=1), ``min_retained`` (worst
    severity, averaged over checkpoints), ``mean_drop`` (± ``drop_std``), ``n_severities`` and
    ``n_checkpoints``."""
    rows = _metric_rows(df, metric)
    ratios = _with_retained(rows)
    per_ckpt = ratios.groupby(["method", "dataset", "perturbation", "ckpt"], sort=True).agg(
        clean=("clean", "first"), mean_value=("value", _mean_or_nan),
        mean_retained=("retained", _mean_or_nan), min_retained=("retained", _min_or_nan),
        n_severities=("severity", "nunique"))
    per_ckpt["drop"] = per_ckpt["clean"] - per_ckpt["mean_value"]
    summary = per_ckpt.groupby(["method", "dataset", "perturbation"], sort=True).agg(
        clean=("clean", _mean_or_nan), mean_value=("mean_value", _mean_or_nan),
        mean_retained=("mean_retained", _mean_or_nan), retained_std=("mean_retained", _std),
        min_retained=("min_retained", _mean_or_nan), mean_drop=("drop", _mean_or_nan),
        drop_std=("drop", _std), n_severities=("n_severities", "max"),
        n_checkpoints=("clean", "size"))
    return summary.reset_index()


def plot_robustness(df: pd.DataFrame, metric: str, out_dir: Path) -> list[Path]:
    """One PNG per perturbation: ``metric`` vs severity, one panel per dataset, one line per
    method (mean over checkpoints, ± std band when there are several), clean value as a dashed
    line (and as a point at the identity severity where one exists, e.g. resize 1.0).
    Files: ``<out_dir>/robustness_<metric>_<perturbation>.png``."""
    rows = _metric_rows(df, metric)
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


# -- records ---------------------------------------------------------------------------------
def _metric_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows of ``metric`` with a ``ckpt`` identity column; refuses duplicate cells."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"result records lack columns {missing}; pass the results store's "
                         "records (ResultStore.latest())")
    rows = df[df.metric == metric].copy()
    if rows.empty:
        raise ResultsError(f"no records for metric {metric!r}; recorded metrics: "
                         f"{', '.join(sorted(df.metric.unique())) or '(none)'}")
    # checkpoint_sha identifies weights (file names repeat across runs); fall back to the name.
    if "checkpoint_sha" not in rows.columns:
        rows["checkpoint_sha"] = rows["checkpoint"]
    rows["ckpt"] = rows["checkpoint_sha"]
    rows["severity"] = rows["severity"].fillna("").astype(str)
    dup = rows[rows.duplicated(list(CELL_KEYS), keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise ResultsError(
            f"{len(dup)} {metric} records share a cell, e.g. {first.method} / {first.checkpoint} / "
            f"{first.dataset} / {first.perturbation}:{first.severity}; keep one per cell "
            "(ResultStore.latest()) before plotting or summarising")
    return rows


def _with_retained(rows: pd.DataFrame) -> pd.DataFrame:
    """Perturbed rows with ``clean`` (same checkpoint and dataset) and ``retained`` columns."""
    clean = rows[rows.perturbation == CLEAN][["method", "ckpt", "dataset", "value"]]
    perturbed = rows[rows.perturbation != CLEAN]
    out = perturbed.merge(clean.rename(columns={"value": "clean"}),
                          on=["method", "ckpt", "dataset"], how="left")
    usable = out["clean"].notna() & (out["clean"] >= RETAINED_MIN_CLEAN)
    out["retained"] = np.where(usable, out["value"] / out["clean"].where(usable, 1.0), np.nan)
    return out


def _mean_or_nan(values: pd.Series) -> float:
    """Mean that is NaN if any value is NaN (pandas' mean would skip them silently)."""
    return float(values.mean(skipna=False))


def _min_or_nan(values: pd.Series) -> float:
    return float(values.min(skipna=False))


def _std(values: pd.Series) -> float:
    """Sample standard deviation over checkpoints (ddof=1); NaN for one checkpoint."""
    return float(values.std(ddof=1)) if len(values) > 1 else np.nan


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
