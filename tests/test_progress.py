"""Off a terminal, every long loop prints plain progress lines (stage, count/total, rate, ETA) at
most every N seconds; on a terminal it is a tqdm bar; disabled, nothing."""
from __future__ import annotations

import io
import re

import pytest

from imlbench.progress import (INTERVAL_ENV, LineProgress, format_duration, progress_bar,
                               progress_interval)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_off_a_terminal_a_line_at_most_every_interval_with_rate_and_eta():
    out, clock = io.StringIO(), FakeClock()
    bar = progress_bar(total=100, desc="synth-splice clean", unit="img", stream=out,
                       interval=30, clock=clock)
    assert isinstance(bar, LineProgress)
    for _ in range(10):  # 10 images in 20 s: under the interval, nothing yet
        clock.now += 2
        bar.update(1)
    assert lines(out) == []
    clock.now += 10
    bar.update(2)  # 12 images in 30 s
    assert lines(out) == ["imlbench: synth-splice clean 12/100 img (12%), 0.4 img/s, ETA 3m40s"]
    clock.now += 29
    bar.update(1)
    assert len(lines(out)) == 1  # 29 s since the last line
    clock.now += 1
    bar.update(1)
    assert len(lines(out)) == 2
    bar.close()
    assert lines(out)[-1].startswith("imlbench: synth-splice clean 14/100 img (14%)")
    assert lines(out)[-1].endswith("done in 1m00s")
    bar.close()  # closing twice prints nothing more
    assert len(lines(out)) == 3


def test_training_lines_show_steps_images_per_second_loss_and_resume_offset():
    out, clock = io.StringIO(), FakeClock()
    bar = progress_bar(total=400, initial=100, desc="train ncl[1]", unit="step", stream=out,
                       interval=0, images_per_step=16, clock=clock)
    clock.now += 10
    bar.set_postfix(loss="0.4213", refresh=False)
    bar.update(5)  # resumed at 100: the rate counts this run's 5 steps only
    assert lines(out) == ["imlbench: train ncl[1] 105/400 step (26%), 0.5 step/s, 8 img/s, "
                          "loss=0.4213, ETA 9m50s"]


def test_a_short_loop_prints_nothing_and_iteration_works():
    out, clock = io.StringIO(), FakeClock()
    seen = list(progress_bar(range(5), desc="imlbench: building synthetic data", unit="img",
                             stream=out, interval=30, clock=clock))
    assert seen == [0, 1, 2, 3, 4] and out.getvalue() == ""  # under 30 s: silent, no 'done'
    every = progress_bar(range(3), desc="imlbench: building synthetic data", unit="img",
                         stream=out, interval=0, clock=clock)
    assert list(every) == [0, 1, 2]
    assert [re.sub(r",.*", "", line) for line in lines(out)] == [
        "imlbench: building synthetic data 1/3 img (33%)", "imlbench: building synthetic data 2/3 img (67%)",
        "imlbench: building synthetic data 3/3 img (100%)", "imlbench: building synthetic data 3/3 img (100%)"]
    assert lines(out)[-1].endswith("done in 0s")


def test_unknown_total_shows_the_count_only():
    out, clock = io.StringIO(), FakeClock()
    bar = progress_bar(desc="x", unit="img", stream=out, interval=0, clock=clock)
    clock.now += 4
    bar.update(2)
    assert lines(out) == ["imlbench: x 2 img, 0.5 img/s"]


def test_on_a_terminal_tqdm_and_disabled_prints_nothing():
    from tqdm import tqdm

    tty = Terminal()
    bar = progress_bar(total=3, desc="d", stream=tty, interval=0)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.update(3)
    bar.close()
    assert "3/3" in tty.getvalue()
    quiet = io.StringIO()
    off = progress_bar(total=3, enabled=False, stream=quiet, interval=0)
    off.update(3)
    off.close()
    assert quiet.getvalue() == ""


def test_interval_from_the_environment_and_bad_values(monkeypatch):
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert progress_interval() == 30.0
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    assert progress_interval() == 0.5 and progress_interval(2) == 2.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        with pytest.raises(ValueError, match=f"\\${INTERVAL_ENV} must be a number of seconds"):
            progress_interval()
    with pytest.raises(ValueError, match="interval must be"):
        progress_interval(-3)


def test_durations():
    assert [format_duration(s) for s in (9, 75, 3725)] == ["9s", "1m15s", "1h02m"]


def test_evaluation_training_and_synthesis_report_progress_off_a_terminal(
        monkeypatch, capsys, tmp_path):
    """The three long loops of the main job print lines to a non-terminal stderr (interval 0)."""
    import yaml

    from imlbench.benchmark.runner import evaluate_cell
    from imlbench.benchmark.train import train
    from imlbench.datasets.synthetic import build_synthetic
    from imlbench.methods.ncl import NCL
    from imlbench.registry import METHODS
    from tests.helpers import make_folder_dataset

    monkeypatch.setenv(INTERVAL_ENV, "0")
    monkeypatch.setenv("IMLBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IMLBENCH_SYNTH_PRESET", "tiny")
    capsys.readouterr()
    build_synthetic(progress=True)
    err = capsys.readouterr().err
    assert re.search(r"imlbench: building synthetic data \S+ \d+/\d+ img \(\d+%\)", err), err

    data = make_folder_dataset(tmp_path / "data")
    evaluate_cell(METHODS.build("ela"), data, device="cpu", batch_size=2, num_workers=0,
                  progress=True)
    err = capsys.readouterr().err
    assert re.search(rf"imlbench: tiny \S+ \d+/{len(data.samples)} img", err), err

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "image_size": 32, "batch_size": 2, "grad_accum": 2, "steps": 2, "tensorboard": False,
        "optimizer": {"name": "adamw", "lr": 1e-3}, "schedule": {"name": "constant"}}))
    train("ncl", dataset=data, val_dataset=None, recipe=recipe, device="cpu",
          out_dir=tmp_path / "run", method_config=NCL.tiny_config(), progress=True)
    err = capsys.readouterr().err
    # 2 images x 2 micro-batches per step: the line shows images/s beside steps/s
    assert re.search(r"imlbench: train ncl\[\w+\] 2/2 step \(100%\), [\d.e+]+ step/s, "
                     r"[\d.e+]+ img/s, loss=", err), err
