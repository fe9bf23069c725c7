"""``EvalOptions``: how ``run``, ``sweep`` and ``export-masks`` evaluate, in one typed place.

The CLI builds one from its flags (each field's ``metadata`` holds its flag and help, so a new
field is a new flag), and the Python API takes one: :func:`~imlbench.benchmark.evaluate.evaluate`,
:func:`~imlbench.results.export.export_masks`. Fields marked ``to="load"`` choose the weights
(:func:`~imlbench.benchmark.evaluate.load`), those marked ``to="cell"`` are passed to
:func:`~imlbench.benchmark.runner.evaluate_cell` as keywords of the same name.

Adding an evaluation option is therefore: a field here (flag, help, where it goes), and the
keyword in ``evaluate_cell`` (or ``load``) that uses it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence


def _option(default: Any = None, *, to: Literal["load", "cell"], flag: str | None = None,
            help: str = "", factory: Any = None, **argparse_kwargs: Any) -> Any:
    """A field with its destination and (when ``flag``) its command-line flag."""
    metadata = {"to": to, "flag": flag, "help": help, "argparse": argparse_kwargs}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class EvalOptions:
    """Which weights a method runs with, and how every cell is evaluated."""

    # -- which weights (trainable methods) ------------------------------------------------------
    checkpoint: str | Path | None = _option(
        to="load", flag="--checkpoint",
        help="weights for a trainable method (.safetensors or .pth)")
    config: dict[str, Any] = _option(to="load", factory=dict)
    """Method options (``--config KEY=VALUE``), typed against the method's declared options."""
    trust_checkpoint: bool = _option(
        False, to="load", flag="--trust-checkpoint", action="store_true",
        help="allow a .pth that unpickles code (only for files you trust)")
    seed: int = _option(0, to="load", flag="--seed", type=int,
                        help="training seed of the checkpoint to use/train")
    protocol: str = _option("synthetic", to="load")
    """Training data of checkpoints trained on the fly (``--protocol``, which also picks test sets)."""
    recipe: str | None = _option(
        to="load", flag="--recipe",
        help="recipe of a checkpoint trained on the fly: quick | paper | a .yaml "
             "(default: quick on CPU, paper on GPU)")
    # -- how each cell runs ----------------------------------------------------------------------
    device: str = _option("auto", to="cell", flag="--device",
                          help="auto (cuda if available), cpu, cuda, cuda:1 ...")
    amp: bool | str = _option(
        "auto", to="cell", flag="--amp", choices=("auto", "bf16", "fp16", "off"),
        help="autocast precision (default auto: bf16, or fp16 without bf16, on CUDA; fp32 on "
             "CPU); off = fp32")
    channels_last: bool = _option(
        False, to="cell", flag="--channels-last", action="store_true",
        help="weights and batches in channels_last memory format (faster convs on GPU)")
    compile: bool | str = _option(
        False, to="cell", flag="--compile", nargs="?", const=True, metavar="BACKEND",
        help="run predict through torch.compile (default backend inductor)")
    batch_size: int = _option(8, to="cell", flag="--batch-size", count=1,
                              help="images per forward pass (default 8)")
    num_workers: int | None = _option(None, to="cell", flag="--workers", count=0,
                                      metavar="WORKERS", help="DataLoader workers (default: cores-1)")
    metrics: Sequence[str] | None = _option(None, to="cell")
    """Metric names to compute (``None``: the runner's default suite)."""
    include_authentic: bool = _option(
        False, to="cell", flag="--include-authentic", action="store_true",
        help="also score authentic images in pixel metrics (default: tampered only)")
    skip_bad: bool = _option(
        False, to="cell", flag="--skip-bad", action="store_true",
        help="leave unreadable samples out (counted and listed under the leaderboard) instead "
             "of stopping at the first one")
    progress: bool = _option(True, to="cell")
    """Progress bars (``--quiet`` turns them off)."""

    def replace(self, **changes: Any) -> EvalOptions:
        """A copy with ``changes``; an unknown name is an error naming the known ones."""
        unknown = sorted(set(changes) - set(option_names()))
        if unknown:
            raise TypeError(f"unknown evaluation options {unknown}; EvalOptions has "
                            f"{list(option_names())}")
        return dataclasses.replace(self, **changes)

    def load_kwargs(self) -> dict[str, Any]:
        """The keywords of :func:`~imlbench.benchmark.evaluate.load` (plus ``device``)."""
        return {**self._to("load"), "device": self.device}

    def cell_kwargs(self) -> dict[str, Any]:
        """The keywords of :func:`~imlbench.benchmark.runner.evaluate_cell`."""
        return self._to("cell")

    def _to(self, where: str) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata["to"] == where}

    @classmethod
    def with_overrides(cls, options: EvalOptions | None, overrides: dict[str, Any]) -> EvalOptions:
        """``options`` (default: all defaults) with the keyword ``overrides`` of an API call."""
        return (options or cls()).replace(**overrides) if overrides else (options or cls())


def option_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(EvalOptions))


def command_line_fields() -> list[dataclasses.Field]:
    """The fields with a flag of their own, in declaration order."""
    return [f for f in dataclasses.fields(EvalOptions) if f.metadata["flag"]]
