"""Robustness sweeps: resumable after SIGKILL, never duplicating a cell."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from imlbench.cli import main
from imlbench.datasets import resolve_dataset
from imlbench.results import leaderboard
from imlbench.results.store import CELL_COLUMNS, ResultStore
from tests.helpers import make_folder_dataset

PERTURB = "jpeg:90,70,50,resize:0.5,gaussian_blur:3"


def sweep_args(data, results):
    return ["sweep", "--method", "ela", "--dataset", str(data), "--perturb", PERTURB,
            "--results-dir", str(results), "--workers", "0", "--quiet"]


@pytest.mark.slow  # a child process killed with SIGKILL: ~7 s
def test_sweep_killed_and_rerun_equals_uninterrupted(tmp_path, capsys):
    data = tmp_path / "data"
    make_folder_dataset(data, n_tampered=4, n_authentic=2)
    n_cells = 1 + 5  # clean + five perturbed cells

    assert main(sweep_args(data, tmp_path / "ref")) == 0
    reference = ResultStore(tmp_path / "ref").latest()

    # The child is slowed down per cell so the kill lands mid-sweep on any machine.
    child = textwrap.dedent(f"""
        import sys, time
        import imlbench.benchmark.evaluate as ev
        real = ev.evaluate_cell
        def slow(*a, **k):
            out = real(*a, **k)
            time.sleep(0.4)
            return out
        ev.evaluate_cell = slow
        from imlbench.cli import main
        sys.exit(main({sweep_args(data, tmp_path / "killed")!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=os.getcwd(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = tmp_path / "killed" / "records"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(records.glob("*/*.jsonl"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = ResultStore(tmp_path / "killed").done_cells()
    assert 0 < len(partial) < n_cells, "the kill must land mid-sweep for this test to mean anything"

    assert main(sweep_args(data, tmp_path / "killed")) == 0
    resumed = ResultStore(tmp_path / "killed")
    rows = resumed.load()
    assert not rows.duplicated(CELL_COLUMNS + ["metric"]).any(), "a cell was stored twice"
    assert len(resumed.done_cells()) == n_cells
    assert leaderboard.render(resumed.latest()) == leaderboard.render(reference)
    capsys.readouterr()


def test_sweep_reevaluates_cells_whose_data_changed(tmp_path, capsys):
    """A cell stored for an older version of the files is not "done": the sweep scores it again
    on the current files, and the newest scores replace the old ones in the leaderboard."""
    data = tmp_path / "data"
    make_folder_dataset(data, n_tampered=4, n_authentic=2)
    args = ["sweep", "--method", "ela", "--dataset", str(data), "--perturb", "jpeg:90",
            "--results-dir", str(tmp_path / "res"), "--workers", "0", "--quiet"]
    assert main(args) == 0
    store = ResultStore(tmp_path / "res")
    first = set(store.load().dataset_sha)
    assert main(args) == 0 and len(store.load()) == len(store.latest())  # nothing to redo

    make_folder_dataset(data, n_tampered=4, n_authentic=2, seed=5)  # the same names, new pixels
    assert main(args) == 0
    latest = store.latest()
    assert set(store.load().dataset_sha) - first  # scored again, on the new version
    assert set(latest.dataset_sha) == {resolve_dataset(data).fingerprint()} != first
    capsys.readouterr()
