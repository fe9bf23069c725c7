"""torchrun with 2 gloo processes on CPU gives exactly the single-process results."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from imlbench.results import leaderboard
from imlbench.results.store import ResultStore
from tests.helpers import make_folder_dataset

CHILD = textwrap.dedent("""
    import json, sys
    from typing import ClassVar
    from imlbench.benchmark.evaluate import evaluate
    from imlbench.methods.base import InputPolicy, Method, Prediction
    from imlbench.registry import METHODS
    from imlbench.results.store import ResultStore
    from imlbench.robustness import CLEAN, parse_spec

    @METHODS.register("bright_resize", test_only=True)
    class BrightResize(Method):
        input_policy: ClassVar[InputPolicy] = InputPolicy("resize", size=24)
        def predict(self, images, masks=None):
            return Prediction(images.mean(1, keepdim=True))

    from imlbench.benchmark.distributed import context

    data, out = sys.argv[1:3]
    perts = [CLEAN, parse_spec("jpeg:70"), parse_spec("resize:0.5")]
    for split in ("samples", "cells"):  # one launch, both ways of splitting the work
        results = f"{out}/res-{split}"
        evaluate("bright_resize,ela", data, perturbations=perts, results_dir=results,
                 batch_size=16, num_workers=0, progress=False, split=split, skip_done=True)
        if context().is_main:
            rows = ResultStore(results).latest()
            rows[["method", "dataset", "perturbation", "severity", "metric", "value", "n_images",
                  "n_tampered"]].to_json(f"{out}/{split}.json", orient="records")
""")


def launch(tmp_path, data, nproc):
    """Run CHILD with ``nproc`` processes; returns its output folder."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / f"nproc{nproc}"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if nproc == 1:
        cmd = [sys.executable, str(script)]
    else:  # standalone: torchrun picks a free port on loopback for its rendezvous
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(nproc), str(script)]
    proc = subprocess.run(cmd + [str(data), str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    make_folder_dataset(root / "data", n_tampered=4, n_authentic=3)  # 7 images, batch 16
    return launch(root, root / "data", 1), launch(root, root / "data", 2)


def _by_key(path):
    rows = json.loads(path.read_text())
    return {(r["method"], r["perturbation"], r["severity"], r["metric"]): r for r in rows}


@pytest.mark.slow  # torchrun, two processes: ~15-25 s each
def test_two_processes_equal_one_process(runs):
    a, b = (_by_key(out / "samples.json") for out in runs)
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert a[key]["n_images"] == b[key]["n_images"] == 7
        assert a[key]["n_tampered"] == b[key]["n_tampered"] == 4
        va, vb = a[key]["value"], b[key]["value"]
        if "_n_" in key[3]:
            assert va == vb, key  # counts: to the last digit
        else:
            assert va == pytest.approx(vb, abs=1e-9, nan_ok=True), key


@pytest.mark.slow  # torchrun, two processes: ~15-25 s each
def test_sweep_split_over_two_processes_gives_the_same_leaderboard(runs):
    one, two = (ResultStore(out / "res-cells") for out in runs)
    assert not two.load().duplicated(["method", "dataset", "perturbation", "severity",
                                      "metric"]).any()
    assert leaderboard.render(two.latest()) == leaderboard.render(one.latest())


TRAIN_CHILD = textwrap.dedent("""
    import json, sys
    import yaml
    from imlbench.benchmark.distributed import context
    from imlbench.benchmark.train import train
    from imlbench.methods.seg_ce import SegCE

    data, out = sys.argv[1:3]
    recipe = f"{out}/tiny.yaml"
    if context().is_main:
        with open(recipe, "w") as f:
            yaml.safe_dump({"image_size": 32, "batch_size": 2, "steps": 3, "val_every": 3,
                            "optimizer": {"name": "adamw", "lr": 1e-3},
                            "schedule": {"name": "constant"}, "tensorboard": False}, f)
    context().barrier()
    result = train("seg_ce", dataset=data, val_dataset=data, recipe=recipe, out_dir=f"{out}/run",
                   method_config=SegCE.tiny_config(), progress=False)
    print(json.dumps({"rank": context().rank, "steps": result.steps}))
""")


@pytest.mark.slow  # torchrun, two processes: ~15-25 s each
def test_data_parallel_training_with_two_processes(tmp_path):
    make_folder_dataset(tmp_path / "data", n_tampered=4, n_authentic=3)
    script = tmp_path / "train_child.py"
    script.write_text(TRAIN_CHILD)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path / "data"), str(tmp_path)]
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in reports) == [0, 1] and {r["steps"] for r in reports} == {3}
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "val" not in s] == [1, 2, 3]  # one writer, no duplicates
    sidecar = json.loads((tmp_path / "run" / "best.json").read_text())
    assert sidecar["finished"] and sidecar["images_seen"] == 3 * 2 * 2  # 2 ranks x batch 2
    assert sidecar["world_size"] == 2


def test_stream_positions_deal_the_single_process_stream_to_ranks():
    from itertools import islice

    from imlbench.benchmark.train_data import StreamPositions

    one = list(islice(iter(StreamPositions(12)), 24))
    ranks = [list(islice(iter(StreamPositions(12, r, 2, block=3)), 12)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == one
    assert ranks[0][:3] == [12, 13, 14] and ranks[1][:3] == [15, 16, 17]
