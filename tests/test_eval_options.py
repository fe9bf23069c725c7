"""EvalOptions: one definition of the evaluation options shared by the CLI and the Python API."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from imlbench.benchmark import evaluate as evaluate_module
from imlbench.benchmark.evaluate import evaluate, load
from imlbench.benchmark.options import EvalOptions, command_line_fields, option_names
from imlbench.benchmark.runner import evaluate_cell
from imlbench.cli import build_parser
from imlbench.cli_eval import eval_options


def test_every_option_reaches_a_keyword_of_the_function_that_uses_it():
    """A field marked ``cell`` is an ``evaluate_cell`` keyword, ``load`` a ``load`` one: adding
    an option is a field plus the keyword that uses it, nothing in between."""
    cell = set(inspect.signature(evaluate_cell).parameters)
    loading = set(inspect.signature(load).parameters)
    for f in dataclasses.fields(EvalOptions):
        assert f.metadata["to"] in ("cell", "load"), f.name
        assert f.name in (cell if f.metadata["to"] == "cell" else loading), f.name


@pytest.mark.parametrize("command", ["run", "sweep", "export-masks"])
def test_the_cli_builds_the_options_once_from_one_flag_per_field(command):
    extra = ["--out", "o"] if command == "export-masks" else []
    args = build_parser().parse_args([command, "--method", "ela", *extra])
    assert eval_options(args) == EvalOptions()  # flag defaults are the dataclass defaults
    flags = ["--device", "cpu", "--amp", "off", "--channels-last", "--compile", "eager",
             "--batch-size", "3", "--workers", "0", "--include-authentic", "--skip-bad",
             "--checkpoint", "w.pth", "--trust-checkpoint", "--seed", "2", "--recipe", "paper",
             "--config", "a=1", "--protocol", "mvss", "--quiet"]
    options = eval_options(build_parser().parse_args([command, "--method", "ela", *extra, *flags]))
    assert options == EvalOptions(
        checkpoint="w.pth", config={"a": "1"}, trust_checkpoint=True, seed=2, protocol="mvss",
        recipe="paper", device="cpu", amp="off", channels_last=True, compile="eager",
        batch_size=3, num_workers=0, include_authentic=True, skip_bad=True, progress=False)
    # set from flags of their own shape (--config, --protocol, --quiet) or by the API only
    assert set(option_names()) - {f.name for f in command_line_fields()} == {
        "config", "protocol", "metrics", "progress"}


def test_keywords_replace_fields_and_an_unknown_one_names_the_known(monkeypatch):
    seen = {}

    def fake_cell(method, dataset, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(evaluate_module, "evaluate_cell", fake_cell)
    with pytest.raises(RuntimeError, match="stop"):
        evaluate("ela", "synth-splice", EvalOptions(batch_size=5, device="cpu"),
                 results_dir=None, num_workers=0, progress=False)
    assert seen["batch_size"] == 5 and seen["num_workers"] == 0 and seen["device"] == "cpu"
    with pytest.raises(TypeError, match="unknown evaluation options \\['batchsize'\\].*batch_size"):
        evaluate("ela", "synth-splice", results_dir=None, batchsize=4)


def test_every_metric_named_by_the_tool_is_one_of_the_metric_names():
    from imlbench.metrics.suite import (LEADERBOARD_METRICS, METRIC_NAMES, PRIMARY_METRIC,
                                        REPORTED_METRICS)
    from imlbench.results.leaderboard import DEFAULT_METRICS

    assert DEFAULT_METRICS is LEADERBOARD_METRICS
    assert {PRIMARY_METRIC, *LEADERBOARD_METRICS, *REPORTED_METRICS} <= set(METRIC_NAMES)
    parser = build_parser()
    for command in ("run", "sweep", "leaderboard", "plot"):
        extra = ["--method", "ela"] if command in ("run", "sweep") else []
        assert parser.parse_args([command, *extra]).metric == PRIMARY_METRIC
