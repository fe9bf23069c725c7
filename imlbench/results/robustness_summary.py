"""The "mean retained" robustness summary: a pure function of the tidy records (no matplotlib).

Leaderboards (:mod:`imlbench.results.leaderboard`) and plots (:mod:`imlbench.results.plots`)
both read it, so neither imports the other for it.

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

import numpy as np
import pandas as pd

from imlbench.errors import ResultsError
from imlbench.results.store import CELL_KEYS

CLEAN = "none"
RETAINED_MIN_CLEAN = 0.05
"""Smallest clean value with a retained fraction: a ratio of near-zero scores is noise (an F1
of 0.012 clean and 0.4 perturbed would read as 34× "retained")."""
REQUIRED_COLUMNS = ("method", "checkpoint", "dataset", "perturbation", "severity", "metric", "value")


def robustness_summary(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (method, dataset, perturbation) with ``clean``, ``mean_value``,
    ``mean_retained`` (± ``retained_std`` over checkpoints, ddof=1), ``min_retained`` (worst
    severity, averaged over checkpoints), ``mean_drop`` (± ``drop_std``), ``n_severities`` and
    ``n_checkpoints``."""
    rows = metric_rows(df, metric)
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


# -- records ---------------------------------------------------------------------------------
def metric_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
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
