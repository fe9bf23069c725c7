"""The `imlbench` command end to end, on tiny fabricated data."""
import json

import numpy as np
import pytest

from imlbench.cli import main
from tests.helpers import make_folder_dataset


@pytest.fixture()
def tiny(tmp_path):
    make_folder_dataset(tmp_path / "tiny")
    return tmp_path


def run_json(capsys, *argv):
    capsys.readouterr()
    assert main(list(argv) + ["--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_json_shape_and_oracle_scores(tiny, capsys):
    out = run_json(capsys, "run", "--method", "oracle", "--dataset", str(tiny / "tiny"),
                   "--results-dir", str(tiny / "res"), "--workers", "0")
    (cell,) = out["results"]
    assert {"method", "checkpoint", "dataset", "perturbation", "severity", "n_images", "metrics"} <= set(cell)
    assert cell["method"] == "oracle" and cell["perturbation"] == "none" and cell["n_images"] == 5
    assert cell["metrics"]["pixel_f1"] == 1.0 and cell["metrics"]["pixel_auc"] == 1.0


def test_score_equals_run_on_exported_maps(tiny, capsys):
    ds, res = str(tiny / "tiny"), str(tiny / "res")
    ran = run_json(capsys, "run", "--method", "ela", "--dataset", ds, "--results-dir", res,
                   "--workers", "0", "--save-predictions", str(tiny / "pred"))
    (pred_dir,) = [p for p in (tiny / "pred" / "ela").iterdir()]
    scored = run_json(capsys, "score", "--predictions", str(pred_dir), "--dataset", ds,
                      "--results-dir", res)
    a, b = ran["results"][0]["metrics"], scored["results"][0]["metrics"]
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] is None and b[k] is None) or a[k] == b[k], k


def test_score_lists_missing_and_extra_maps(tiny, capsys):
    pred = tiny / "maps"
    pred.mkdir()
    np.save(pred / "img00.npy", np.zeros((24, 32), np.float32))
    np.save(pred / "stranger.npy", np.zeros((4, 4), np.float32))
    assert main(["score", "--predictions", str(pred), "--dataset", str(tiny / "tiny")]) == 2
    err = capsys.readouterr().err
    assert "4 missing" in err and "img01" in err and "1 extra (stranger)" in err


def test_score_refuses_wrong_size_unless_resize(tiny, capsys):
    pred = tiny / "maps"
    pred.mkdir()
    for i in range(5):
        np.save(pred / f"img{i:02d}.npy", np.full((8, 8), 0.25, np.float32))
    ds = str(tiny / "tiny")
    assert main(["score", "--predictions", str(pred), "--dataset", ds, "--results-dir", ""]) == 2
    assert "--resize" in capsys.readouterr().err
    out = run_json(capsys, "score", "--predictions", str(pred), "--dataset", ds, "--resize",
                   "--results-dir", "")
    assert out["results"][0]["metrics"]["pixel_f1"] == 0.0


def test_leaderboard_reads_the_store_only(tiny, capsys):
    res = str(tiny / "res")
    run_json(capsys, "run", "--method", "oracle,constant", "--dataset", str(tiny / "tiny"),
             "--results-dir", res, "--workers", "0")
    assert main(["leaderboard", "--results-dir", res, "--csv", str(tiny / "lb.csv"),
                 "--out", str(tiny / "lb.md")]) == 0
    text = capsys.readouterr().out
    assert "| oracle" in text and "| constant" in text
    assert (tiny / "lb.md").read_text() == text.rstrip("\n") + "\n" or "oracle" in (tiny / "lb.md").read_text()
    csv = (tiny / "lb.csv").read_text().splitlines()
    assert csv[0].startswith("method,checkpoint,dataset")


def test_unknown_method_error_suggests(capsys):
    assert main(["run", "--method", "elaa", "--dataset", "all", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'ela'" in err


def test_list_wildcard(capsys):
    assert main(["list", "methods", "e*"]) == 0
    assert capsys.readouterr().out.split() == ["ela"]
    assert main(["list", "metrics", "image_*"]) == 0
    assert capsys.readouterr().out.split() == ["image_auc", "image_bacc", "image_f1"]


def test_data_check_flags_size_mismatch(tiny, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tiny / "tiny" / "Gt" / "img00.png")
    assert main(["data", "check", str(tiny / "tiny")]) == 1
    assert "size mismatch" in capsys.readouterr().out


def test_env_prints_paths(capsys):
    assert main(["env"]) == 0
    assert "IMLBENCH_HOME" in capsys.readouterr().out


def test_bad_sample_fails_fast_or_is_skipped_and_listed(tiny, capsys):
    (tiny / "tiny" / "Tp" / "img01.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds, res = str(tiny / "tiny"), str(tiny / "res")
    assert main(["run", "--method", "ela", "--dataset", ds, "--results-dir", res, "--workers", "0",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "img01.png" in err and "--skip-bad" in err
    out = run_json(capsys, "run", "--method", "ela", "--dataset", ds, "--results-dir", res,
                   "--workers", "0", "--skip-bad")
    (cell,) = out["results"]
    assert cell["n_images"] == 4 and cell["n_skipped"] == 1
    assert main(["leaderboard", "--results-dir", res]) == 0
    text = capsys.readouterr().out
    assert "Skipped samples" in text and "1 skipped (" in text and "img01" in text.split("Skipped")[1]
