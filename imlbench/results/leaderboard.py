"""Leaderboards: pure functions of the result records (never re-run anything).

Several checkpoints of one method label (e.g. three training seeds) are aggregated as
``mean ± std (n)`` with the sample standard deviation (ddof=1); a single checkpoint shows its
value alone. Values are rounded only when rendered.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate

from imlbench.metrics.suite import LEADERBOARD_METRICS, PRIMARY_METRIC
from imlbench.results.robustness_summary import CLEAN, RETAINED_MIN_CLEAN, robustness_summary
from imlbench.results.store import CELL_KEYS

DEFAULT_METRICS = LEADERBOARD_METRICS


def severity_key(sev: str) -> tuple:
    """Sort severities numerically step by step ("0.5+75" → (0.5, 75)); clean first."""
    if sev == "":
        return (float("-inf"),)
    parts = []
    for p in sev.split("+"):
        try:
            parts.append(float(p))
        except ValueError:
            parts.append(float("inf"))
    return tuple(parts)


def aggregate(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, std (ddof=1) and count of ``value`` over checkpoints, grouped by ``by``."""
    g = df.groupby(list(by), sort=False, dropna=False)["value"]
    out = g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else np.nan,
                n="count").reset_index()
    return out


def fmt(mean: float, std: float, n: int, digits: int = 3) -> str:
    """``mean ± std (n=N)`` for several checkpoints, ``mean`` for one, ``n/a`` for NaN."""
    if pd.isna(mean):
        return "n/a"
    mean = round(mean, digits) + 0.0  # + 0.0 turns -0.0 into 0.0: no "-0.000" in tables
    if n > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f} (n={n})"
    return f"{mean:.{digits}f}"


def clean_table(df: pd.DataFrame, metric: str = PRIMARY_METRIC) -> pd.DataFrame:
    """Methods × datasets for one metric on clean cells, with the mean over datasets."""
    d = df[(df.perturbation == CLEAN) & (df.metric == metric)]
    if d.empty:
        return pd.DataFrame()
    agg = aggregate(d, ["method", "dataset"])
    table = agg.pivot(index="method", columns="dataset", values="mean")
    cells = agg.assign(cell=[fmt(m, s, n) for m, s, n in zip(agg["mean"], agg["std"], agg["n"])])
    shown = cells.pivot(index="method", columns="dataset", values="cell")
    shown["mean"] = table.mean(axis=1).map(lambda v: fmt(v, np.nan, 1))
    order = table.mean(axis=1).sort_values(ascending=False).index
    return shown.loc[order].reset_index()


def dataset_table(df: pd.DataFrame, dataset: str,
                  metrics: Sequence[str] = DEFAULT_METRICS) -> pd.DataFrame:
    """Methods × metrics on one dataset's clean cells."""
    d = df[(df.perturbation == CLEAN) & (df.dataset == dataset) & df.metric.isin(metrics)]
    if d.empty:
        return pd.DataFrame()
    agg = aggregate(d, ["method", "metric"])
    agg["cell"] = [fmt(m, s, n) for m, s, n in zip(agg["mean"], agg["std"], agg["n"])]
    shown = agg.pivot(index="method", columns="metric", values="cell")
    shown = shown[[m for m in metrics if m in shown.columns]]
    n_img = d.groupby("method")["n_images"].max()
    shown.insert(0, "images", n_img)
    return shown.reset_index()


def robustness_table(df: pd.DataFrame, perturbation: str, metric: str = PRIMARY_METRIC) -> pd.DataFrame:
    """(method, dataset) × severities of one perturbation, the clean value first."""
    d = df[(df.metric == metric) & df.perturbation.isin([CLEAN, perturbation])]
    pairs = d[d.perturbation == perturbation][["method", "dataset"]].drop_duplicates()
    if pairs.empty:
        return pd.DataFrame()
    d = d.merge(pairs, on=["method", "dataset"])
    agg = aggregate(d, ["method", "dataset", "severity"])
    agg["cell"] = [fmt(m, s, n) for m, s, n in zip(agg["mean"], agg["std"], agg["n"])]
    shown = agg.pivot(index=["method", "dataset"], columns="severity", values="cell")
    cols = sorted(shown.columns, key=severity_key)
    shown = shown[cols].rename(columns={"": "clean"})
    return shown.reset_index()


def summary_table(df: pd.DataFrame, metric: str = PRIMARY_METRIC) -> pd.DataFrame:
    """Per (method, dataset, perturbation): clean value, mean and worst fraction retained."""
    s = robustness_summary(df, metric)
    return pd.DataFrame({
        "method": s["method"], "dataset": s["dataset"], "perturbation": s["perturbation"],
        "clean": s["clean"].map(lambda v: fmt(v, np.nan, 1)),
        "mean retained": [fmt(m, sd, n) for m, sd, n in
                          zip(s["mean_retained"], s["retained_std"], s["n_checkpoints"])],
        "min retained": s["min_retained"].map(lambda v: fmt(v, np.nan, 1)),
        "mean drop": [fmt(m, sd, n) for m, sd, n in
                      zip(s["mean_drop"], s["drop_std"], s["n_checkpoints"])],
        "severities": s["n_severities"].astype(str)})


def to_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_no results_"
    return tabulate(table.fillna("n/a"), headers="keys", tablefmt="github", showindex=False,
                    disable_numparse=True)


def render(df: pd.DataFrame, metric: str = PRIMARY_METRIC, metrics: Sequence[str] = DEFAULT_METRICS,
           robustness: bool = True) -> str:
    """The full markdown leaderboard: summary, per-dataset detail, robustness tables."""
    if df.empty:
        return "_no results yet: run `imlbench run --method ela --dataset all`_\n"
    mixed = dataset_versions_section(df)  # first: it changes how every table below reads
    parts = [mixed] if mixed else []
    parts += [f"## Leaderboard — {metric} (clean)\n", to_markdown(clean_table(df, metric)), ""]
    for ds in sorted(df[df.perturbation == CLEAN].dataset.unique()):
        parts += [f"### {ds}\n", to_markdown(dataset_table(df, ds, metrics)), ""]
    perturbed = sorted(p for p in df.perturbation.unique() if p != CLEAN)
    if robustness and perturbed:
        for pert in perturbed:
            parts += [f"## Robustness — {pert} — {metric}\n",
                      to_markdown(robustness_table(df, pert, metric)), ""]
        parts += [f"## Robustness summary — {metric}\n", to_markdown(summary_table(df, metric)),
                  "", "mean retained = mean over the grid's severities of value / clean value, "
                  "per checkpoint, then averaged (± std over checkpoints); min = worst severity; "
                  f"n/a when the clean value is below {RETAINED_MIN_CLEAN} (a ratio of noise). "
                  "mean drop = clean value − mean over the severities, per checkpoint, then "
                  "averaged.", ""]
    skipped = skipped_section(df)
    if skipped:
        parts += [skipped, ""]
    parts.append("pixel_f1_best uses a per-image oracle threshold; image scores are the method's "
                 "own, else the max of its map.")
    return "\n".join(parts) + "\n"


def dataset_versions_section(df: pd.DataFrame) -> str:
    """Datasets whose records were scored on different versions of the data (their
    fingerprints differ): those scores are not comparable, and the leaderboard says so."""
    if "dataset_sha" not in df.columns:
        return ""
    d = df[df.dataset_sha.fillna("") != ""]
    lines = []
    for dataset, g in d.groupby("dataset", sort=True):
        versions = g.groupby("dataset_sha", sort=True)["method"].unique()
        if len(versions) > 1:
            lines.append(f"- {dataset}: " + "; ".join(
                f"version {sha}: {', '.join(sorted(methods))}" for sha, methods in versions.items()))
    if not lines:
        return ""
    return "\n".join(["## Warning: scores from different versions of a dataset\n", *lines, "",
                      "The files changed between these evaluations (regenerated, re-encoded or "
                      "partly unpacked). Re-run the older cells on the current data before "
                      "comparing them.", ""])


def skipped_section(df: pd.DataFrame, max_ids: int = 10) -> str:
    """Cells that left samples out (``--skip-bad``): count and ids, so no score hides them."""
    if "n_skipped" not in df.columns:
        return ""
    d = df[df.n_skipped.fillna(0) > 0].drop_duplicates(list(CELL_KEYS))
    if d.empty:
        return ""
    lines = ["## Skipped samples (--skip-bad)\n"]
    for r in d.itertuples():
        ids = [sid for sid, _ in json.loads(r.provenance or "{}").get("skipped", [])]
        shown = ", ".join(ids[:max_ids]) + (" …" if len(ids) > max_ids else "")
        lines.append(f"- {r.method} / {r.dataset} / {r.perturbation}{':' + r.severity if r.severity else ''}:"
                     f" {int(r.n_skipped)} skipped ({shown})")
    return "\n".join(lines)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """The tidy records (latest per cell) as CSV, for spreadsheets and papers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["method", "checkpoint", "dataset", "perturbation", "severity", "metric", "value",
            "n_images", "n_tampered", "n_skipped", "seed", "checkpoint_sha", "run_id"]
    df[cols].sort_values(cols[:6]).to_csv(path, index=False)
    return path
