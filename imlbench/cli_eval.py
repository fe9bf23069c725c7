"""The evaluation commands of ``imlbench``: ``run``, ``sweep``, ``export-masks``, ``score``.

Their shared flags come from :class:`~imlbench.benchmark.options.EvalOptions` (one field, one
flag); :func:`eval_options` turns the parsed flags back into that one object, which the
commands hand to the Python API.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imlbench.benchmark.options import EvalOptions, command_line_fields
from imlbench.errors import UsageError
from imlbench.metrics.suite import PRIMARY_METRIC
from imlbench.typed_config import CommandLineValue


def key_value(text: str) -> tuple[str, CommandLineValue]:
    """``key=value``; the value stays text until the method's option types are known."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--config expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), CommandLineValue(value.strip())


def count(minimum: int):
    """argparse type: an integer >= ``minimum`` (``--batch-size 0`` is a usage error, not a
    DataLoader traceback)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="DIR",
                   help="folder holding the unpacked real datasets (default: $IMLBENCH_DATA)")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``run``, ``sweep`` and ``export-masks``: what to evaluate and where the
    results go, then one flag per :class:`EvalOptions` field that has one."""
    p.add_argument("--method", required=True, help="registered method name(s), comma-separated")
    p.add_argument("--dataset", default=None,
                   help="registered name(s), a dataset path, or 'all' (every test set present; "
                        "the default without --protocol)")
    p.add_argument("--protocol", default=None,
                   help="synthetic | mvss | cat | a .yaml: its test sets, and the training data "
                        "of checkpoints trained on the fly")
    add_data_root(p)
    p.add_argument("--config", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="method option, typed as the method declares it, e.g. --config "
                        "contour=drop (repeatable; `imlbench list methods -v` names methods)")
    defaults = EvalOptions()
    for f in command_line_fields():
        kwargs = dict(f.metadata["argparse"])
        if "count" in kwargs:
            kwargs["type"] = count(kwargs.pop("count"))
        p.add_argument(f.metadata["flag"], dest=f.name, default=getattr(defaults, f.name),
                       help=f.metadata["help"], **kwargs)
    p.add_argument("--results-dir", default="results", help="results store (default ./results)")
    p.add_argument("--metric", default=PRIMARY_METRIC, help="metric of the printed leaderboard")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def eval_options(args: argparse.Namespace) -> EvalOptions:
    """The :class:`EvalOptions` of parsed ``run``/``sweep``/``export-masks`` flags."""
    flagged = {f.name: getattr(args, f.name) for f in command_line_fields()}
    return EvalOptions(**flagged, config=dict(args.config), progress=not args.quiet,
                       protocol=args.protocol or EvalOptions.protocol)


def cmd_run(args: argparse.Namespace) -> int:
    from imlbench.benchmark.evaluate import evaluate
    from imlbench.robustness import CLEAN, parse_perturb_arg

    perts = [CLEAN] + (parse_perturb_arg(args.perturb) if args.perturb else [])
    df = evaluate(args.method, _test_sets(args), options=eval_options(args), perturbations=perts,
                  results_dir=args.results_dir, save_predictions=args.save_predictions)
    return print_outcome(df, args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from imlbench.benchmark.evaluate import evaluate
    from imlbench.robustness import CLEAN, parse_perturb_arg

    perts = [CLEAN] + parse_perturb_arg(args.perturb, grid=args.grid)
    datasets = _test_sets(args)
    if args.save_perturbed:
        _save_perturbed(datasets, perts, Path(args.save_perturbed), args.save_perturbed_n)
    df = evaluate(args.method, datasets, options=eval_options(args), perturbations=perts,
                  results_dir=args.results_dir, skip_done=True, split="cells")
    # the sweep's table comes from the store: cells done by an earlier (interrupted) run count too
    from imlbench.results.store import ResultStore

    if args.results_dir:  # `--results-dir ''` keeps nothing: only this run's cells
        df = ResultStore(args.results_dir).latest()
    return print_outcome(df, args)


def _test_sets(args: argparse.Namespace) -> str | list[str]:
    """``--dataset`` if given, else the protocol's test sets (all must be present), else ``all``."""
    if args.dataset or not args.protocol:
        return args.dataset or "all"
    from imlbench.datasets import DatasetError
    from imlbench.datasets.protocols import load_protocol

    protocol = load_protocol(args.protocol)
    missing = [e for e in protocol.test if e not in protocol.available_test_sets()]
    if missing:
        raise DatasetError(f"protocol {protocol.name!r} tests on {list(protocol.test)}, but {missing} "
                         f"are not under the data root; see `imlbench data check {missing[0]}`")
    return list(protocol.test)


def _save_perturbed(dataset: str | list[str], perts, out: Path, n: int) -> None:
    from PIL import Image

    from imlbench.benchmark.evaluate import expand_datasets
    from imlbench.datasets import resolve_dataset
    from imlbench.datasets.base import load_image

    for ds_name in expand_datasets(dataset):
        ds = resolve_dataset(ds_name)
        for s in ds.samples[:n]:
            image = load_image(s.image_path)
            for pert in perts:
                path = out / ds.name / f"{Path(s.image_path).stem}__{pert.label().replace(':', '-')}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pert.apply(image, s.sample_id)).save(path)
    print(f"perturbed images written under {out}", file=sys.stderr)


def print_outcome(df, args) -> int:
    from imlbench.benchmark.distributed import context
    from imlbench.results import leaderboard
    from imlbench.results.store import ResultStore

    if not context().is_main:  # under torchrun only rank 0 reports
        return 0
    if args.json:
        print(json.dumps(to_json(df), indent=2, allow_nan=True))
        return 0
    # the leaderboard shows every stored result for context, newest value per cell
    full = ResultStore(args.results_dir).latest() if args.results_dir else df
    print(leaderboard.render(full if not full.empty else df, metric=args.metric))
    return 0


def to_json(df) -> dict:
    """The documented ``--json`` shape: one entry per cell (:data:`CELL_KEYS`: method, weights,
    dataset, perturbation, severity), metrics by stable name. Every entry names its weights by
    ``checkpoint_sha256`` (first 12 hex digits; ``None`` for training-free methods) and
    ``seed``, so seeds stored as ``best.safetensors`` each keep their own entry."""
    from imlbench.results.store import CELL_KEYS

    out = []
    if df.empty:
        return {"results": out}
    df = df.assign(severity=df["severity"].fillna("").astype(str))
    for _, g in df.groupby(list(CELL_KEYS), sort=False, dropna=False):
        first = g.iloc[0]
        trained = first["checkpoint_sha"] not in ("-", "", None)
        entry = {"method": first["method"], "checkpoint": first["checkpoint"],
                 "checkpoint_sha256": first["checkpoint_sha"] if trained else None,
                 "seed": int(first["seed"]) if trained and first["seed"] == first["seed"]
                 and first["seed"] is not None else None,
                 "dataset": first["dataset"], "perturbation": first["perturbation"],
                 "severity": first["severity"], "n_images": int(first["n_images"])}
        n_skipped = first.get("n_skipped", 0)
        if n_skipped == n_skipped and n_skipped and n_skipped > 0:
            skipped = json.loads(first.get("provenance") or "{}").get("skipped", [])
            entry["n_skipped"] = int(n_skipped)
            entry["skipped"] = [{"sample_id": sid, "reason": reason} for sid, reason in skipped]
        entry["metrics"] = {m: (None if v != v else float(v)) for m, v in zip(g.metric, g.value)}
        out.append(entry)
    return {"results": out}


def cmd_score(args: argparse.Namespace) -> int:
    from imlbench.benchmark.evaluate import named_in_store
    from imlbench.benchmark.score import score_predictions
    from imlbench.datasets import resolve_dataset
    from imlbench.results.store import ResultStore, cell_records, new_run_id, provenance, to_frame

    store = ResultStore(args.results_dir) if args.results_dir else None
    dataset = named_in_store(resolve_dataset(args.dataset), store)
    res, digest = score_predictions(args.predictions, dataset, resize=args.resize,
                                    include_authentic=args.include_authentic)
    pred_dir = Path(args.predictions)
    records = cell_records(
        res.metrics, run_id=new_run_id(), method=args.name or f"maps:{pred_dir.resolve().name}",
        checkpoint=pred_dir.name, checkpoint_sha=digest[:12], dataset=dataset.name,
        perturbation="none", severity="", n_images=res.n_images, n_tampered=res.n_tampered,
        device="-", provenance=provenance(predictions=str(pred_dir.resolve()), resize=args.resize,
                                          **({"dataset_path": dataset.path} if dataset.path else {})),
        dataset_sha=dataset.fingerprint())
    if store is not None:
        store.append(records)
    return print_outcome(to_frame(records), args)


def cmd_export_masks(args: argparse.Namespace) -> int:
    from imlbench.results.export import export_masks

    if not args.dataset:
        raise UsageError("export-masks needs --dataset (a registered name or a dataset path)")
    r = export_masks(args.method, args.dataset, args.out, options=eval_options(args),
                     n_overview=args.n_overview)
    print(f"{len(r.maps)} maps (16-bit PNG) in {r.maps_dir}; score them with "
          f"`imlbench score --predictions {r.maps_dir} --dataset {args.dataset}`")
    if r.overview is not None:
        print(f"overview sheet: {r.overview}")
    for sid in r.skipped:
        print(f"skipped (unreadable): {sid}", file=sys.stderr)
    return 0
