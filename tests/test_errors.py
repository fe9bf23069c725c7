"""Expected failures print one line through the CLI; only bugs keep their traceback."""
import pickle
import sys
from pathlib import Path

import pytest
import torch

import imlbench.benchmark.checkpoints  # noqa: F401  (every module defining an error class)
import imlbench.benchmark.runner  # noqa: F401
import imlbench.benchmark.score  # noqa: F401
import imlbench.results.export  # noqa: F401
import imlbench.results.plots  # noqa: F401
from imlbench import cli, errors
from imlbench.cli import main
from imlbench.datasets import DatasetError, UnknownDatasetError
from imlbench.methods.base import Method, Prediction
from imlbench.registry import METHODS, RegistryError
from imlbench.weights import UntrustedCheckpointError
from tests.helpers import make_folder_dataset

METHODS.list()  # the method modules (and their error classes) are imported now
ERROR_CLASSES = errors.all_error_classes()


def test_expected_errors_share_one_base_and_keep_their_builtin_bases():
    assert issubclass(RegistryError, KeyError) and issubclass(UntrustedCheckpointError,
                                                              pickle.UnpicklingError)
    assert issubclass(DatasetError, ValueError) and issubclass(errors.DeviceError, RuntimeError)
    assert issubclass(UnknownDatasetError, DatasetError) and issubclass(UnknownDatasetError,
                                                                        RegistryError)
    assert issubclass(errors.CheckpointNotFoundError, FileNotFoundError)
    assert issubclass(errors.UnknownOptionError, TypeError)
    for cls in (RegistryError, UntrustedCheckpointError, DatasetError, UnknownDatasetError,
                imlbench.benchmark.runner.PredictionError, imlbench.benchmark.score.ScoreError):
        assert cls in ERROR_CLASSES
    assert str(RegistryError("a message")) == "a message"  # not KeyError's repr()


def _raising(exc):
    def command(args):
        raise exc
    return command


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_is_one_line_without_traceback(cls, monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_env", _raising(cls("what was given; what to do next")))
    assert main(["env"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "imlbench: error: what was given; what to do next\n"
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_debug_shows_the_traceback(where, monkeypatch):
    monkeypatch.setattr(cli, "cmd_env", _raising(errors.ConfigError("bad value")))
    argv = {"before": ["--debug", "env"], "after": ["env", "--debug"], "env": ["env"]}[where]
    if where == "env":
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    else:
        monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    with pytest.raises(errors.ConfigError, match="bad value"):
        main(argv)


def test_a_bug_keeps_its_traceback(monkeypatch):
    monkeypatch.setattr(cli, "cmd_env", _raising(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError):
        main(["env"])


# -- real command lines -------------------------------------------------------------------
class _CodeOnLoad:
    def __reduce__(self):
        return print, ("this must never run",)


class _NaNMap(Method):
    """Returns NaN maps: a broken method the runner must refuse in one line."""

    def predict(self, images, masks=None):
        return Prediction(torch.full_like(images[:, :1], float("nan")))


def _cases(tmp_path):
    make_folder_dataset(tmp_path / "tiny", n_tampered=2, n_authentic=1)
    data = str(tmp_path / "tiny")
    evil = tmp_path / "evil.pth"
    torch.save({"net.weight": torch.zeros(2), "payload": _CodeOnLoad()}, evil)
    bad_yaml = tmp_path / "bad.yaml"
    common = ["--dataset", data, "--results-dir", str(tmp_path / "res"), "--workers", "0",
              "--quiet"]
    return {
        "evil_pth": (["run", "--method", "seg_ce", "--checkpoint", str(evil), *common],
                     "--trust-checkpoint"),
        "cuda_without_cuda": (["run", "--method", "ela", "--device", "cuda", *common],
                              "no CUDA device"),
        "unknown_method": (["run", "--method", "elaa", *common], "Did you mean 'ela'"),
        "unknown_dataset": (["run", "--method", "ela", "--dataset", "synth-splcie",
                             "--results-dir", "", "--quiet"], "synth-splice"),
        "config_wrong_type": (["run", "--method", "ela", "--config", "quality=high", *common],
                              "'quality': expected int, got 'high'"),
        "config_unknown_key": (["run", "--method", "ela", "--config", "qualty=90", *common],
                               "Did you mean 'quality'"),
        "config_bad_literal": (["run", "--method", "ncl", "--config", "contour=dorp", *common],
                               "one of 'dual', 'tampered', 'authentic', 'drop'"),
        "missing_checkpoint": (["run", "--method", "seg_ce", "--checkpoint",
                                str(tmp_path / "nowhere.safetensors"), *common], "not found"),
        "nan_map": (["run", "--method", "nan_map_for_test", *common], "NaN"),
        "bad_recipe_file": (["train", "--method", "seg_ce", "--recipe", str(bad_yaml),
                             "--dataset", data, "--val-dataset", data, "--quiet"],
                            "expected int, got 'ten'"),
        "protocol_and_dataset": (["train", "--method", "seg_ce", "--protocol", "synthetic",
                                  "--dataset", data], "not both"),
        "plot_unknown_metric": (["plot", "--results-dir", str(tmp_path / "res"), "--metric",
                                 "pixel_f2", "--out", str(tmp_path / "plots")], "pixel_f2"),
        "results_dir_is_a_file": (["run", "--method", "ela", *common[:2], "--results-dir",
                                   str(bad_yaml), "--workers", "0", "--quiet"],
                                  "pass --results-dir a writable folder"),
        "device_not_a_device": (["run", "--method", "ela", "--device", "gpu", *common],
                                "is not a device"),
        "missing_optional_dependency": (["train", "--method", "segformer_b0", "--dataset", data,
                                         "--val-dataset", data, "--steps", "1", "--quiet",
                                         "--out-dir", str(tmp_path / "run")],
                                        "pip install 'imlbench[mmseg]'"),
    }


CASES = ["evil_pth", "cuda_without_cuda", "unknown_method", "unknown_dataset", "config_wrong_type",
         "config_unknown_key", "config_bad_literal", "missing_checkpoint", "nan_map",
         "bad_recipe_file", "protocol_and_dataset", "plot_unknown_metric", "results_dir_is_a_file",
         "device_not_a_device", "missing_optional_dependency"]


@pytest.mark.parametrize("case", CASES)
def test_cli_failure_paths_print_one_line(case, tmp_path, monkeypatch, capsys, request):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    METHODS.add("nan_map_for_test", _NaNMap, test_only=True)  # only for this test: the
    request.addfinalizer(lambda: METHODS.remove("nan_map_for_test"))  # method tests list all
    (tmp_path / "bad.yaml").write_text(
        (Path(imlbench.__file__).parent / "configs/recipes/quick.yaml").read_text()
        + "\nsteps: ten\n")
    if case == "missing_optional_dependency":  # as if mmcv were not installed
        monkeypatch.setitem(sys.modules, "mmcv", None)
    cases = _cases(tmp_path)
    if case == "plot_unknown_metric":  # a store with one record to plot from
        assert main(["run", "--method", "constant", *cases["nan_map"][0][3:]]) == 0
    argv, expected = cases[case]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert last.startswith("imlbench: error: ") and expected in last, err



@pytest.mark.parametrize("option, value", [("--workers", "-1"), ("--batch-size", "0"),
                                           ("--batch-size", "two")])
def test_counts_are_checked_by_the_parser(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--method", "ela", option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "Traceback" not in err
