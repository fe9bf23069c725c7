"""The GPU check: one run that says whether evaluation on this GPU is bound by the model.

Run: ``bash benchmarks/gpu_check.sh`` (a GPU machine, at most ~8 minutes) or
``bash benchmarks/gpu_check.sh --dry-run`` (anywhere: the same code paths on CPU with tiny
inputs; forced when torch sees no CUDA device). It writes one markdown report (``--out``, by
default ``$OUT/gpu_check.md`` when ``$OUT`` is set, else ``gpu_check.md``) and prints it.

Sections, each skipped with a line saying why when it cannot run:

1. environment: torch, the GPU, and which optional packages import (mmseg methods, CAT-Net's
   jpeglib, cv2 ...);
2. ``pytest -m gpu`` (dry: ``--collect-only``, which proves the gpu tests import);
3. per method, images/s at 512² of a bare ``method.predict`` loop over decoded tensors already
   on the device vs ``evaluate_cell`` end to end (decode workers, pinned copies, mapping back,
   metrics), in fp32, AMP, AMP + channels_last and AMP + channels_last + torch.compile, with the
   largest map difference from fp32 on the same batch;
4. the MPC training step at paper size (HRFormer-B, 512², forward + loss + backward + AdamW)
   in fp32 and AMP;
5. a 2-process run of ``evaluate`` (NCCL when more than one GPU exists; dry: gloo on CPU)
   against the same evaluation in one process.

Methods are built at their default configuration with random weights (dry: ``tiny_config()``);
speed does not depend on the weights. A time budget (``--budget-s``) skips the rows that would
not fit, naming them.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Callable

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a copy of the tree, not installed
    sys.path.insert(0, str(REPO))

OPTIONAL = ("cv2", "skimage", "sklearn", "matplotlib", "jpeglib", "mmseg", "mmengine",
            "tensorboard", "timm")
NEEDS = {"mmseg": ("mmseg", "mmengine"), "mmseg_deeplabv3plus_r50": ("mmseg", "mmengine"),
         "segformer_b0": ("mmseg", "mmengine"), "cat_net": ("jpeglib",), "mvss_net": ("cv2",)}


@dataclass
class Report:
    """Markdown lines, printed and written at the end (and on the way, so a kill keeps them)."""

    path: Path
    lines: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)
        print(*lines, sep="\n", flush=True)
        self.path.write_text("\n".join(self.lines) + "\n")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                 *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), "")


class Clock:
    def __init__(self, budget_s: float) -> None:
        self.start, self.budget_s = time.perf_counter(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- 1. environment ------------------------------------------------------------------------
def section_env(rep: Report, dev: torch.device, dry: bool, argv: list[str]) -> set[str]:
    missing = {m for m in OPTIONAL if importlib.util.find_spec(m) is None}
    gpu = (f"{torch.cuda.get_device_name(dev)}, {torch.cuda.device_count()} device(s), bf16 "
           f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}" if dev.type == "cuda" else "none")
    rep.add(f"# imlbench GPU check{' (DRY RUN on CPU: tiny inputs, the numbers mean nothing)' if dry else ''}",
            "", f"- command: `bash benchmarks/gpu_check.sh {' '.join(argv)}`",
            f"- torch {torch.__version__}, python {platform.python_version()}, GPU: {gpu}",
            f"- CPU cores: {os.cpu_count()}; TF32 for cuDNN convolutions: "
            f"{torch.backends.cudnn.allow_tf32}, for matmuls: {torch.backends.cuda.matmul.allow_tf32}",
            f"- optional packages missing: {', '.join(sorted(missing)) or 'none'}", "")
    return missing


# -- 2. the gpu-marked tests -----------------------------------------------------------------
def section_tests(rep: Report, dry: bool, clock: Clock, floor: float, missing: set[str]) -> None:
    rep.add("## pytest -m gpu", "")
    if importlib.util.find_spec("pytest") is None:
        rep.add("skipped: pytest does not import here", "")
        return
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
           "tests/test_precision.py", "tests/test_gpu.py"]
    if dry:
        cmd += ["--collect-only"]
    elif importlib.util.find_spec("pytest_timeout") is not None:
        cmd += ["--timeout", "90"]  # one hung test must not eat the whole budget
    unrunnable = sorted(m for m, needs in NEEDS.items() if set(needs) & missing)
    if unrunnable:  # their tests would fail on the import, not on the GPU
        cmd += ["-k", " and ".join(f"not {m}" for m in unrunnable)]
        rep.add(f"deselected (packages missing): {', '.join(unrunnable)}", "")
    limit = max(30.0, clock.left() - floor)
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
        rep.add(f"`{' '.join(cmd[2:])}` → exit {proc.returncode}", "", "```", *tail, "```", "")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rep.add(f"`{' '.join(cmd[2:])}` → stopped after {limit:.0f} s (time budget); so far:", "",
                "```", *out.strip().splitlines()[-12:], "```", "")


# -- 3. throughput per method ----------------------------------------------------------------
def reference_localiser(size: int, dry: bool):
    """A ResNet-50-sized localiser (timm ResNet-50 trunk, 1×1 head, bilinear up to the input),
    the model the issue's "over 1000 images/s at 512²" is about; ResNet-18 in a dry run."""
    import timm

    from imlbench.methods.base import InputPolicy, Method, Prediction

    class ResNetLocaliser(Method):
        input_policy: ClassVar[InputPolicy] = InputPolicy("resize", size=size)

        def __init__(self) -> None:
            super().__init__()
            self.trunk = timm.create_model("resnet18" if dry else "resnet50", pretrained=False,
                                           features_only=True, out_indices=(4,))
            self.head = nn.Conv2d(self.trunk.feature_info.channels()[-1], 1, 1)

        def predict(self, images, masks=None):
            logits = self.head(self.trunk(images)[-1])
            up = nn.functional.interpolate(logits, size=images.shape[-2:], mode="bilinear")
            return Prediction(torch.sigmoid(up.float()))

    return ResNetLocaliser


def write_images(root: Path, n: int, size: int):
    """``n`` JPEGs (Q90) of smoothed noise at ``size``², every other one with a square mask."""
    from PIL import Image

    from imlbench.datasets.base import Dataset, Sample

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        img = rng.integers(0, 255, (max(1, size // 8), max(1, size // 8), 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
        ipath, mpath = root / f"{i:05d}.jpg", None
        Image.fromarray(img).save(ipath, quality=90)
        if i % 2 == 0:
            mask = np.zeros((size, size), np.uint8)
            mask[size // 4: size // 2, size // 4: size // 2] = 255
            mpath = root / f"{i:05d}_gt.png"
            Image.fromarray(mask).save(mpath)
        samples.append(Sample(f"{i:05d}", ipath, mpath, int(mpath is not None), "gpu-check"))
    return Dataset(f"gpu-check-{n}x{size}", lambda: samples)


@dataclass
class Variant:
    label: str
    amp: str
    channels_last: bool = False
    compile: bool | str = False


def variants(dev: torch.device, dry: bool, with_compile: bool) -> list[Variant]:
    half = "bf16" if dev.type != "cuda" or torch.cuda.is_bf16_supported() else "fp16"
    out = [Variant("fp32", "off"), Variant(half, half), Variant(f"{half}+cl", half, True)]
    if with_compile:  # inductor on a GPU; on CPU inductor compiles C++ for minutes, aot_eager not
        out.append(Variant(f"{half}+cl+compile", half, True, "aot_eager" if dry else True))
    return out


def bare_rate(method, batches: list[torch.Tensor], extras: list[dict] | None, dev: torch.device,
              v: Variant, predict: Callable) -> tuple[float, torch.Tensor]:
    """images/s of ``predict`` over ``batches`` already on the device (after 2 warm-up batches,
    which also compile; passes repeated to fill 0.5 s), and the first batch's maps."""
    from imlbench.benchmark.device import autocast

    xs = [b.contiguous(memory_format=torch.channels_last) if v.channels_last else b for b in batches]
    kw = [{"extras": e} for e in extras] if extras is not None else [{} for _ in xs]
    with torch.inference_mode(), autocast(dev, v.amp):
        first = predict(xs[0], **kw[0]).mask_prob.float().clone()
        predict(xs[1 % len(xs)], **kw[1 % len(xs)])
        sync(dev)
        images, t0 = 0, time.perf_counter()
        while True:  # whole passes over the batches until at least half a second has gone by
            for x, k in zip(xs, kw):
                predict(x, **k)
                images += len(x)
            sync(dev)
            if time.perf_counter() - t0 >= 0.5 or images >= 20 * sum(len(x) for x in xs):
                break
    return images / (time.perf_counter() - t0), first


def measure_method(name: str, build: Callable[[], Any], data, dev: torch.device, batch: int,
                   bare_images: int, vs: list[Variant], clock: Clock, floor: float,
                   skipped: list[str]) -> list[list]:
    from imlbench.benchmark.runner import EvalDataset, compiled_predict, evaluate_cell

    torch.manual_seed(0)
    method = build().to(dev).eval()
    policy = method.input_policy
    batch = 1 if policy.mode == "native" else batch  # as evaluate_cell runs native policies
    wanted = tuple(getattr(method, "file_inputs", ()))  # CAT-Net's DCT coefficients
    ds = EvalDataset(data.samples[:bare_images], policy, file_inputs=wanted)
    items = [ds[i] for i in range(len(ds))]
    images = [it.image for it in items]
    batches = [torch.stack(images[i:i + batch]).to(dev) for i in range(0, len(images), batch)]
    extras = [{k: torch.from_numpy(np.stack([it.extras[k] for it in items[i:i + batch]])).to(dev)
               for k in items[i].extras} for i in range(0, len(items), batch)]
    rows, ref = [], None
    for v in vs:
        if clock.left() < floor + 10:
            skipped.append(f"{name} {v.label}")
            continue
        method = method.to(memory_format=torch.channels_last if v.channels_last
                           else torch.contiguous_format)
        predict = compiled_predict(method, "inductor" if v.compile is True else v.compile) \
            if v.compile else method.predict
        t0 = time.perf_counter()
        bare, first = bare_rate(method, batches, extras if wanted else None, dev, v, predict)
        warm_s = time.perf_counter() - t0
        ref = first if ref is None else ref
        diff = float((first - ref).abs().max())
        t0 = time.perf_counter()
        res = evaluate_cell(method, data, device=dev, batch_size=batch, amp=v.amp,
                            channels_last=v.channels_last, compile=v.compile, progress=False)
        e2e = res.n_images / (time.perf_counter() - t0)
        rows.append([name, f"{policy.mode} {tuple(images[0].shape[-2:])}", batch, v.label,
                     f"{bare:.1f}", f"{e2e:.1f}", f"{bare / e2e:.2f}", f"{diff:.1e}",
                     f"{res.metrics.get('pixel_f1', float('nan')):.4f}", f"{warm_s:.1f}"])
    return rows


def section_throughput(rep: Report, dev: torch.device, dry: bool, args, missing: set[str],
                       clock: Clock, floor: float, tmp: Path) -> None:
    from imlbench.benchmark.runner import default_score_threads, default_workers
    from imlbench.registry import METHODS

    size = args.size
    rep.add(f"## Evaluation throughput at {size}² (images/s)", "",
            f"{args.n_images} JPEGs of {size}² end to end (`evaluate_cell`: {default_workers(dev)} "
            f"decode workers, {default_score_threads(dev)} metric threads, pinned copies on CUDA); "
            f"bare: `predict` over {args.bare_images} decoded images already on the device. "
            "ratio = bare ÷ end-to-end rate (goal ≤ 1.10; end to end includes starting the decode "
            "workers, as every cell does). Δmap: max |map − fp32 map| on the "
            "first batch. warm-up s: the first two bare batches (compilation included).", "")
    t0 = time.perf_counter()
    data = write_images(tmp / "images", args.n_images, size)
    rep.add(f"(data written in {time.perf_counter() - t0:.1f} s)", "")
    names = ([] if args.methods == "none" else args.methods.split(",") if args.methods != "all"
             else [n for n in METHODS.list() if getattr(METHODS.get(n), "trainable", False)])
    compiled = args.compile_methods.split(",")
    builders: list[tuple[str, Callable, bool]] = [
        ("resnet_localiser", reference_localiser(size, dry), "resnet_localiser" in compiled)]
    for name in names:
        absent = [m for m in NEEDS.get(name, ()) if m in missing]
        if absent:
            rep.add(f"- skipped {name}: needs {', '.join(absent)}, which does not import here")
            continue
        cls = METHODS.get(name)
        config = cls.tiny_config() if dry else {}
        builders.append((name, lambda cls=cls, config=config: cls(**config),
                         name in compiled))
    rows, skipped = [], []
    for name, build, with_compile in builders:
        if clock.left() < floor + 20:
            skipped.append(name)
            continue
        try:
            rows += measure_method(name, build, data, dev, args.batch_size, args.bare_images,
                                   variants(dev, dry, with_compile), clock, floor, skipped)
        except Exception as exc:  # one method's failure is a line of the report, not the end
            rep.add(f"- {name} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            traceback.print_exc()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if skipped:
        rep.add(f"- not measured (time budget): {', '.join(skipped)}")
    rep.add("")
    rep.table(["method", "input", "batch", "variant", "bare", "end-to-end", "ratio", "Δmap",
               "pixel_f1", "warm-up s"], rows)


# -- 4. MPC training step --------------------------------------------------------------------
def section_train_step(rep: Report, dev: torch.device, dry: bool, clock: Clock, floor: float) -> None:
    from imlbench.benchmark.device import autocast, precision_dtype
    from imlbench.registry import METHODS

    size, batch = (64, 1) if dry else (512, 4)
    rep.add(f"## MPC training step ({'tiny config' if dry else 'HRFormer-B'}, {size}², batch {batch}, "
            f"forward + loss + backward + AdamW; s per step, min of {1 if dry else 3} after 1 cold step)", "")
    half = "bf16" if dev.type != "cuda" or torch.cuda.is_bf16_supported() else "fp16"
    rows = []
    if dev.type == "cuda":  # the peak of each row, not of the throughput section before it
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    for stage in ("1", "2"):
        for precision, cl in (("off", False), (half, False), (half, True)):
            if clock.left() < floor + 15:
                rows.append([stage, precision, cl, "skipped (time budget)", "", "", ""])
                continue
            torch.manual_seed(0)
            config = METHODS.get("mpc").tiny_config() if dry else {"backbone": "base"}
            model = METHODS.build("mpc", **{**config, "input_size": size}).to(dev)
            model.set_stage(stage)
            model.train()
            if cl:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
            scaler = torch.amp.GradScaler(dev.type, enabled=precision_dtype(dev, precision) == torch.float16)
            gen = torch.Generator().manual_seed(0)
            mask = torch.zeros(batch, 1, size, size)
            mask[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
            image = torch.rand(batch, 3, size, size, generator=gen)
            if cl:
                image = image.contiguous(memory_format=torch.channels_last)
            b = {"image": image.to(dev), "mask": mask.to(dev), "label": torch.ones(batch, dtype=torch.long, device=dev)}

            def step() -> float:
                opt.zero_grad(set_to_none=True)
                with autocast(dev, precision):
                    loss = model.loss(b)["loss"]
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sync(dev)
                return float(loss.detach())

            t0 = time.perf_counter()
            loss = step()
            cold = time.perf_counter() - t0
            times = []
            for _ in range(1 if dry else 3):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            mem = f"{torch.cuda.max_memory_allocated(dev) / 2**30:.1f}" if dev.type == "cuda" else "-"
            rows.append([stage, precision, cl, f"{cold:.3f}", f"{min(times):.3f}", f"{loss:.4f}", mem])
            del model, opt
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
    rep.table(["stage", "amp", "channels_last", "cold s", "warm s", "loss", "peak GiB"], rows)


# -- 5. two processes ------------------------------------------------------------------------
NCCL_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[3])
from imlbench.benchmark.evaluate import evaluate
from imlbench.benchmark.distributed import context
from imlbench.registry import METHODS
from gpu_check import reference_localiser
import torch
torch.manual_seed(0)  # the same random weights in every process
METHODS.register("gpu_check_localiser", test_only=True)(reference_localiser(int(sys.argv[4]), sys.argv[5] == "1"))
df = evaluate("gpu_check_localiser", sys.argv[1], results_dir=None, batch_size=4, num_workers=2,
              progress=False, checkpoint=None)
ctx = context()
if ctx.is_main:
    json.dump({"backend": __import__("torch").distributed.get_backend() if ctx.enabled else "none",
               "metrics": dict(zip(df.metric, df.value)), "n": int(df.n_images.iloc[0])},
              open(sys.argv[2], "w"))
"""


def section_two_processes(rep: Report, dev: torch.device, dry: bool, clock: Clock, tmp: Path) -> None:
    rep.add("## Two processes (torchrun) vs one", "")
    if not dry and torch.cuda.device_count() < 2:
        rep.add(f"skipped: torch sees {torch.cuda.device_count()} GPU(s); NCCL across processes "
                "needs two (the one-process NCCL collectives run in `pytest -m gpu`)", "")
        return
    if clock.left() < 30:
        rep.add("skipped: time budget", "")
        return
    data_dir = tmp / "nccl-data"
    sys.path.insert(0, str(REPO))
    from tests.helpers import make_folder_dataset

    make_folder_dataset(data_dir, n_tampered=4, n_authentic=3, sizes=((64, 64), (48, 80)))
    script = tmp / "nccl_child.py"
    script.write_text(NCCL_CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    out = {}
    for n in (1, 2):
        launcher = [sys.executable] if n == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                    "--standalone", "--nproc_per_node", "2"]
        res = tmp / f"nccl{n}.json"
        proc = subprocess.run(launcher + [str(script), str(data_dir), str(res), str(REPO / "benchmarks"),
                                          "64", "1" if dry else "0"],
                              env=env, capture_output=True, text=True, timeout=max(30, clock.left() - 30))
        if proc.returncode != 0:
            rep.add(f"{n}-process run failed (exit {proc.returncode}):", "```",
                    *proc.stderr.strip().splitlines()[-8:], "```", "")
            return
        out[n] = json.loads(res.read_text())
    worst = max(abs(out[1]["metrics"][k] - out[2]["metrics"][k]) for k in out[1]["metrics"])
    rep.add(f"backend {out[2]['backend']}; images {out[1]['n']} (1 process) vs {out[2]['n']} "
            f"(2 processes); largest metric difference {worst:.2e} (tolerance 1e-6): "
            f"{'OK' if worst <= 1e-6 and out[1]['n'] == out[2]['n'] else 'MISMATCH'}", "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny inputs (forced without CUDA)")
    p.add_argument("--out", help="report file (default $OUT/gpu_check.md, else ./gpu_check.md)")
    p.add_argument("--budget-s", type=float, default=450.0, help="time budget in seconds")
    p.add_argument("--methods", default=None,
                   help="comma list, 'all' or 'none' (default: all trainable methods; dry run: ncl)")
    p.add_argument("--compile-methods", default="resnet_localiser",
                   help="methods also measured with torch.compile (it compiles for tens of seconds); "
                        "'none' for no compile rows")
    p.add_argument("--size", type=int, default=None, help="image side (default 512; dry 32)")
    p.add_argument("--n-images", type=int, default=None, help="end-to-end images (default 512; dry 8)")
    p.add_argument("--bare-images", type=int, default=None, help="bare-loop images (default 128; dry 4)")
    p.add_argument("--batch-size", type=int, default=None, help="default 16; dry 2")
    p.add_argument("--skip", default="", help="comma list of sections: tests,throughput,train,nccl")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    dry = args.dry_run or not torch.cuda.is_available()
    for key, full, tiny in (("size", 512, 32), ("n_images", 512, 8), ("bare_images", 128, 4),
                            ("batch_size", 16, 2), ("methods", "all", "ncl")):
        if getattr(args, key) is None:
            setattr(args, key, tiny if dry else full)
    out = Path(args.out) if args.out else (Path(os.environ["OUT"]) / "gpu_check.md"
                                           if os.environ.get("OUT") else Path("gpu_check.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    rep, clock = Report(out), Clock(args.budget_s)
    dev = torch.device("cpu" if dry else "cuda")
    skip = set(filter(None, args.skip.split(",")))
    missing = section_env(rep, dev, dry, argv)
    try:  # everything below evaluates through it; a missing package here ends the check
        import imlbench.benchmark.runner  # noqa: F401
    except ImportError as exc:
        rep.add(f"**imlbench does not import here** ({exc}); nothing can be measured", "")
        return 1
    if args.dry_run is False and dry:
        rep.add("no CUDA device: dry run (the same code paths on CPU, tiny inputs)", "")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        # the measurements first, each with a floor of time it leaves to the sections after it
        budget = args.budget_s
        sections = [("throughput", lambda: section_throughput(rep, dev, dry, args, missing, clock,
                                                              0.45 * budget, Path(tmp))),
                    ("train", lambda: section_train_step(rep, dev, dry, clock, 0.3 * budget)),
                    ("tests", lambda: section_tests(rep, dry, clock, 0.05 * budget + 10, missing)),
                    ("nccl", lambda: section_two_processes(rep, dev, dry, clock, Path(tmp)))]
        failed = []
        for name, run in sections:
            if name in skip:
                rep.add(f"## {name}: skipped (--skip)", "")
                continue
            try:
                run()
            except Exception as exc:  # report and go on: the other sections still tell something
                traceback.print_exc()
                failed.append(name)
                rep.add(f"**{name} failed**: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", "")
    rep.add(f"total {time.perf_counter() - clock.start:.0f} s; report: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
