"""The ``imlbench`` command. Each sub-command is a thin layer over the Python API.

Expected failures (every :class:`~imlbench.errors.ImlbenchError`) print one line,
``imlbench: error: ...``, and exit with status 2; ``--debug`` (or ``IMLBENCH_DEBUG=1``) shows
their traceback. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from imlbench.errors import ImlbenchError, UsageError
from imlbench.typed_config import CommandLineValue

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub downloads, ever: weights come from local files

DESCRIPTION = ("Benchmark image manipulation localization methods: evaluate them on datasets, "
               "under perturbations, train them, and render the stored results.")
DEBUG_ENV = "IMLBENCH_DEBUG"


def _kv(text: str) -> tuple[str, CommandLineValue]:
    """``key=value``; the value stays text until the method's option types are known."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--config expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), CommandLineValue(value.strip())


def _count(minimum: int):
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


def _data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", metavar="DIR",
                   help="folder holding the unpacked real datasets (default: $IMLBENCH_DATA)")


def _model_options(p: argparse.ArgumentParser) -> None:
    """How the model runs (``evaluate_cell``); tolerances vs fp32 in docs/performance.md."""
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"),
                   help="autocast precision (default auto: bf16, or fp16 without bf16, on CUDA; "
                        "fp32 on CPU); off = fp32")
    p.add_argument("--channels-last", action="store_true",
                   help="weights and batches in channels_last memory format (faster convs on GPU)")
    p.add_argument("--compile", nargs="?", const=True, default=False, metavar="BACKEND",
                   help="run predict through torch.compile (default backend inductor)")


def _model_kwargs(args: argparse.Namespace) -> dict:
    return {"amp": args.amp, "channels_last": args.channels_last, "compile": args.compile}


def _common_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, help="registered method name(s), comma-separated")
    _model_options(p)
    p.add_argument("--dataset", default=None,
                   help="registered name(s), a dataset path, or 'all' (every test set present; "
                        "the default without --protocol)")
    p.add_argument("--protocol", default=None,
                   help="synthetic | mvss | cat | a .yaml: its test sets, and the training data "
                        "of checkpoints trained on the fly")
    _data_root(p)
    p.add_argument("--checkpoint", help="weights for a trainable method (.safetensors or .pth)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow a .pth that unpickles code (only for files you trust)")
    p.add_argument("--config", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="method option, typed as the method declares it, e.g. --config "
                        "contour=drop (repeatable; `imlbench list methods -v` names methods)")
    p.add_argument("--seed", type=int, default=0, help="training seed of the checkpoint to use/train")
    p.add_argument("--recipe", help="recipe of a checkpoint trained on the fly: quick | paper | a "
                                    ".yaml (default: quick on CPU, paper on GPU)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=_count(1), default=8,
                   help="images per forward pass (default 8)")
    p.add_argument("--workers", type=_count(0), default=None,
                   help="DataLoader workers (default: cores-1)")
    p.add_argument("--results-dir", default="results", help="results store (default ./results)")
    p.add_argument("--include-authentic", action="store_true",
                   help="also score authentic images in pixel metrics (default: tampered only)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave unreadable samples out (counted and listed under the leaderboard) "
                        "instead of stopping at the first one")
    p.add_argument("--metric", default="pixel_f1", help="metric of the printed leaderboard")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_run(args: argparse.Namespace) -> int:
    from imlbench.benchmark.evaluate import evaluate
    from imlbench.robustness import CLEAN, parse_perturb_arg

    perts = [CLEAN] + (parse_perturb_arg(args.perturb) if args.perturb else [])
    df = evaluate(args.method, _test_sets(args), perturbations=perts, checkpoint=args.checkpoint,
                  config=dict(args.config), trust_checkpoint=args.trust_checkpoint,
                  device=args.device, batch_size=args.batch_size, num_workers=args.workers,
                  results_dir=args.results_dir, seed=args.seed,
                  include_authentic=args.include_authentic,
                  save_predictions=args.save_predictions, progress=not args.quiet,
                  skip_bad=args.skip_bad, protocol=args.protocol or "synthetic",
                  recipe=args.recipe, **_model_kwargs(args))
    return _print_outcome(df, args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from imlbench.benchmark.evaluate import evaluate
    from imlbench.robustness import CLEAN, parse_perturb_arg

    perts = [CLEAN] + parse_perturb_arg(args.perturb, grid=args.grid)
    datasets = _test_sets(args)
    if args.save_perturbed:
        _save_perturbed(datasets, perts, Path(args.save_perturbed), args.save_perturbed_n)
    df = evaluate(args.method, datasets, perturbations=perts, checkpoint=args.checkpoint,
                  config=dict(args.config), trust_checkpoint=args.trust_checkpoint,
                  device=args.device, batch_size=args.batch_size, num_workers=args.workers,
                  results_dir=args.results_dir, seed=args.seed,
                  include_authentic=args.include_authentic, skip_done=True,
                  progress=not args.quiet, split="cells", skip_bad=args.skip_bad,
                  protocol=args.protocol or "synthetic", recipe=args.recipe, **_model_kwargs(args))
    # the sweep's table comes from the store: cells done by an earlier (interrupted) run count too
    from imlbench.results.store import ResultStore

    if args.results_dir:  # `--results-dir ''` keeps nothing: only this run's cells
        df = ResultStore(args.results_dir).latest()
    return _print_outcome(df, args)


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


def _print_outcome(df, args) -> int:
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
    return _print_outcome(to_frame(records), args)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from imlbench.results import leaderboard
    from imlbench.results.store import ResultStore

    df = ResultStore(args.results_dir).latest()
    if args.method:
        df = df[df.method.isin(args.method.split(","))]
    if args.dataset:
        df = df[df.dataset.isin(args.dataset.split(","))]
    text = leaderboard.render(df, metric=args.metric)
    if args.out:  # a committed table says which command and which records made it
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        options = [("--results-dir", args.results_dir), ("--metric", args.metric),
                   ("--method", args.method), ("--dataset", args.dataset), ("--out", args.out)]
        command = " ".join(["imlbench leaderboard"] + [f"{k} {shlex.quote(str(v))}"
                                                       for k, v in options if v])
        Path(args.out).write_text(f"_Generated by `{command}` from the records in "
                                  f"`{args.results_dir}`._\n\n{text}")
    if args.csv and not df.empty:
        leaderboard.write_csv(df, args.csv)
    if args.json:
        print(json.dumps(to_json(df), indent=2))
    else:
        print(text)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from imlbench.results.plots import plot_robustness
    from imlbench.results.store import ResultStore

    df = ResultStore(args.results_dir).latest()
    if args.method:
        df = df[df.method.isin(args.method.split(","))]
    paths = plot_robustness(df, args.metric, Path(args.out))
    for p in paths:
        print(p)
    return 0 if paths else 1


def cmd_list(args: argparse.Namespace) -> int:
    from imlbench.registry import REGISTRIES

    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        reg = REGISTRIES[kind]
        if len(kinds) > 1:
            print(f"{kind}:")
        for e in reg.entries(args.pattern, include_test_only=args.all):
            line = f"  {e.name}" if len(kinds) > 1 else e.name
            print(f"{line:<28} {e.description}" if args.verbose else line)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_cmd == "synth":
        from imlbench.datasets.synthetic import build_synthetic

        path = build_synthetic(force=args.force, progress=True)
        print(path)
        return 0
    from imlbench.benchmark.evaluate import expand_datasets
    from imlbench.datasets import resolve_dataset
    from imlbench.datasets.check import check_dataset, render_report

    ok = True
    for name in expand_datasets(args.dataset):
        report = check_dataset(resolve_dataset(name))
        print(render_report(report))
        ok &= report.ok
    return 0 if ok else 1


def cmd_export_masks(args: argparse.Namespace) -> int:
    from imlbench.results.export import export_masks

    if not args.dataset:
        raise UsageError("export-masks needs --dataset (a registered name or a dataset path)")
    r = export_masks(args.method, args.dataset, args.out, n_overview=args.n_overview,
                     device=args.device, batch_size=args.batch_size, num_workers=args.workers,
                     checkpoint=args.checkpoint, config=dict(args.config),
                     trust_checkpoint=args.trust_checkpoint, seed=args.seed,
                     protocol=args.protocol or "synthetic", progress=not args.quiet,
                     skip_bad=args.skip_bad, **_model_kwargs(args))
    print(f"{len(r.maps)} maps (16-bit PNG) in {r.maps_dir}; score them with "
          f"`imlbench score --predictions {r.maps_dir} --dataset {args.dataset}`")
    if r.overview is not None:
        print(f"overview sheet: {r.overview}")
    for sid in r.skipped:
        print(f"skipped (unreadable): {sid}", file=sys.stderr)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from imlbench.benchmark.complexity import measure, render
    from imlbench.registry import METHODS

    names = METHODS.list(args.pattern)
    if not names:
        raise UsageError(f"no registered method matches {args.pattern!r}; see `imlbench list methods`")
    rows, unavailable = [], []
    for name in names:
        try:  # only building may fail: a missing optional dependency, a wrapper needing options
            method = METHODS.build(name)
        except (ImportError, ValueError, TypeError) as exc:
            unavailable.append(f"{name}: {exc}")
            continue
        rows.append(measure(name, args.size, repeats=args.time, method=method))
    if args.json:
        print(json.dumps({"size": args.size, "methods": [r.as_dict() for r in rows],
                          "unavailable": unavailable}, indent=2))
        return 0
    print(f"Default configs, one {args.size}x{args.size} picture shaped by each method's input "
          "policy, CPU:\n")
    print(render(rows))
    for line in unavailable:
        print(f"not measured: {line}", file=sys.stderr)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    import platform

    import torch

    import imlbench
    from imlbench import paths

    info = {
        "imlbench": imlbench.__version__, "python": platform.python_version(),
        "torch": torch.__version__, "cuda available": torch.cuda.is_available(),
        "cuda device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
        "cpu threads": torch.get_num_threads(),
        f"data home (${paths.HOME_ENV})": str(paths.data_home()),
        f"data root (${paths.DATA_ROOT_ENV})": str(paths.data_root() or "(not set)"),
    }
    for mod in ("timm", "mmseg", "mmengine", "numpy", "cv2", "PIL", "sklearn"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # optional packages: show what is missing rather than fail
            info[mod] = "(not installed)"
    width = max(map(len, info))
    for k, v in info.items():
        print(f"{k:<{width}}  {v}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from imlbench.benchmark.train import train

    if args.protocol and args.dataset:
        raise UsageError(f"give --protocol (its training split, sampling and validation) or "
                         f"--dataset, not both (got --protocol {args.protocol} --dataset {args.dataset})")
    if args.protocol:
        from imlbench.datasets.protocols import load_protocol

        dataset = load_protocol(args.protocol)
    else:
        dataset = args.dataset or "synth-train"
    result = train(args.method, dataset=dataset, val_dataset=args.val_dataset,
                   recipe=args.recipe, steps=args.steps, seed=args.seed, resume=args.resume,
                   device=args.device, stage=args.stage, method_config=dict(args.config) or None,
                   out_dir=Path(args.out_dir) if args.out_dir else None, progress=not args.quiet)
    from imlbench.benchmark.distributed import context

    if context().is_main:
        print(f"best checkpoint: {result.best_checkpoint}")
        print(json.dumps({"steps": result.steps, "best_val": result.best_val}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imlbench", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of expected errors too (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                                help="one of the commands below; `imlbench COMMAND --help` for its options")

    p = sub.add_parser("run", help="evaluate methods on datasets and print the leaderboard")
    _common_eval(p)
    p.add_argument("--perturb", help="also evaluate under perturbations, e.g. jpeg:70")
    p.add_argument("--save-predictions", metavar="DIR",
                   help="export clean maps as .npy at ground-truth size (readable by `score`)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="robustness sweep: clean + every severity; resumable")
    _common_eval(p)
    p.add_argument("--perturb", default="all", help="jpeg,resize,... | all | jpeg:50,70,90 | chains")
    p.add_argument("--grid", default="default", help="severity grid: default | benco")
    p.add_argument("--save-perturbed", metavar="DIR", help="export perturbed images to look at")
    p.add_argument("--save-perturbed-n", type=_count(1), default=3, help="images per dataset to export")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("export-masks",
                       help="prediction maps as 16-bit PNGs at original size + an overview sheet")
    _common_eval(p)
    p.add_argument("--out", required=True, help="<out>/maps/<image stem>.png and <out>/overview.png")
    p.add_argument("--n-overview", type=_count(0), default=8, help="rows of the overview sheet")
    p.set_defaults(func=cmd_export_masks)

    p = sub.add_parser("score", help="score prediction maps produced elsewhere")
    p.add_argument("--predictions", required=True, help="folder of <image stem>.npy/.png maps")
    p.add_argument("--dataset", required=True, help="registered name or dataset path")
    p.add_argument("--name", help="method label in the results (default maps:<folder>)")
    _data_root(p)
    p.add_argument("--resize", action="store_true", help="resize maps whose size differs from the mask")
    p.add_argument("--include-authentic", action="store_true",
                   help="also score authentic images in pixel metrics (default: tampered only)")
    p.add_argument("--results-dir", default="results",
                   help="results store to append to (default ./results; '' keeps nothing)")
    p.add_argument("--metric", default="pixel_f1", help="metric of the printed leaderboard")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead")
    p.add_argument("--quiet", action="store_true", help="accepted for symmetry with run")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("leaderboard", help="render the results store (markdown/CSV)")
    p.add_argument("--results-dir", default="results", help="results store (default ./results)")
    p.add_argument("--metric", default="pixel_f1",
                   help="metric of the summary and robustness tables (default pixel_f1)")
    p.add_argument("--method", help="only these methods (comma list)")
    p.add_argument("--dataset", help="only these datasets (comma list)")
    p.add_argument("--out", help="also write the markdown here")
    p.add_argument("--csv", help="also write the tidy records as CSV here")
    p.add_argument("--json", action="store_true",
                   help="print the stored cells as JSON (one entry per cell) instead")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("plot", help="robustness curves (PNG) from the results store")
    p.add_argument("--results-dir", default="results", help="results store (default ./results)")
    p.add_argument("--metric", default="pixel_f1", help="metric on the y axis (default pixel_f1)")
    p.add_argument("--method", help="only these methods (comma list)")
    p.add_argument("--out", default="results/plots",
                   help="folder of the PNGs (default results/plots)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("list", help="registered plug-ins: list [methods|datasets|perturbations|metrics] [PATTERN]")
    p.add_argument("kind", nargs="?", choices=["methods", "datasets", "perturbations", "metrics"],
                   help="which registry (default: all four)")
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'n*'")
    p.add_argument("-v", "--verbose", action="store_true", help="with descriptions")
    p.add_argument("--all", action="store_true", help="include test-only sanity plug-ins")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("data", help="datasets: build the synthetic benchmark, check a dataset")
    dsub = p.add_subparsers(dest="data_cmd", required=True, metavar="{synth,check}",
                            help="synth: build the synthetic benchmark; check: find problems")
    q = dsub.add_parser("synth", help="build the embedded synthetic benchmark")
    q.add_argument("--force", action="store_true", help="rebuild even if cached")
    q = dsub.add_parser("check", help="counts and problems of a dataset; non-zero exit on problems")
    q.add_argument("dataset", nargs="?", default="all",
                   help="registered name, dataset path, or all (default: every test set present)")
    _data_root(q)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("describe", help="parameters, FLOPs (and CPU time) of methods at their "
                                         "default (official) configs")
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcard of method names")
    p.add_argument("--size", type=int, default=512, help="side of the square picture (default 512)")
    p.add_argument("--time", type=int, default=0, metavar="N",
                   help="also time N forward passes on CPU and report the median")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("env", help="versions, devices and paths")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("train", help="train a method (checkpoints under the data home)")
    p.add_argument("--method", required=True, help="registered name of a trainable method")
    p.add_argument("--dataset", help="training set: registered name or path (default synth-train)")
    p.add_argument("--protocol", help="train on a protocol's training split with its sampling "
                                      "(cat: balanced draws per set) and validation split")
    p.add_argument("--val-dataset", default="auto",
                   help="validation set (default: the protocol's, else synth-val)")
    _data_root(p)
    p.add_argument("--recipe", default="quick", help="quick (CPU, minutes) | paper (published, GPU)")
    p.add_argument("--steps", type=_count(1), help="optimizer steps per stage (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and data order (default 0)")
    p.add_argument("--stage", help="train only this stage (e.g. MPC's 1 or 2)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the run folder from its last saved step")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--config", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="method option, typed as the method declares it, e.g. --config "
                        "contrast_weight=0.2 (repeatable; overrides the recipe's)")
    p.add_argument("--out-dir", help="run folder (default: the checkpoint cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)
    return parser


def _add_debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--debug`` after a sub-command too (``imlbench run ... --debug``); SUPPRESS keeps a
    sub-parser from resetting the value given before the sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help=f"show the traceback of expected errors too "
                                      f"(or set {DEBUG_ENV}=1)")
                _add_debug_everywhere(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _add_debug_everywhere(parser)
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        if getattr(args, "data_root", None):  # the adapters read it from the environment
            from imlbench.paths import DATA_ROOT_ENV

            os.environ[DATA_ROOT_ENV] = str(Path(args.data_root).expanduser().resolve())
        return int(args.func(args) or 0)
    except ImlbenchError as exc:  # expected: one clear line; anything else is a bug (traceback)
        if debug:
            raise
        print(f"imlbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("imlbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `imlbench leaderboard | head`: the reader left, nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
