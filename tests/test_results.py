"""Results store (append-only, atomic, newest-wins) and leaderboards (pure functions of records)."""
import json

import numpy as np
import pandas as pd
import pytest

from imlbench.results import leaderboard
from imlbench.results.store import ResultRecord, ResultStore


def rec(run="r1", method="ela", sha="-", dataset="d1", pert="none", sev="", metric="pixel_f1",
        value=0.5, ts=1.0):
    return ResultRecord(run, method, "-", sha, dataset, pert, sev, metric, value, 10, 6, 0, "cpu",
                        timestamp=ts)


def test_append_and_load_round_trip(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec(metric="pixel_f1", value=0.25), rec(metric="pixel_auc", value=0.75)])
    df = store.load()
    assert sorted(df.metric) == ["pixel_auc", "pixel_f1"]
    assert df.set_index("metric").value.to_dict() == {"pixel_f1": 0.25, "pixel_auc": 0.75}
    assert not list(tmp_path.rglob(".tmp-*")), "temporary files must be renamed away"


def test_one_append_is_one_cell(tmp_path):
    with pytest.raises(ValueError, match="one cell"):
        ResultStore(tmp_path).append([rec(dataset="a"), rec(dataset="b")])


def test_latest_keeps_newest_value_per_cell(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec(run="old", value=0.1, ts=1.0)])
    store.append([rec(run="new", value=0.9, ts=2.0)])
    latest = store.latest()
    assert len(latest) == 1 and latest.value.iloc[0] == 0.9
    assert store.done_cells() == {("ela", "-", "d1", "none", "", "")}  # no fingerprint recorded


def test_corrupt_foreign_file_is_not_silently_read(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec()])
    bad = tmp_path / "records" / "r1" / "broken.jsonl"
    bad.write_text('{"truncated": ')
    with pytest.raises(json.JSONDecodeError):
        store.load()


def test_clean_table_aggregates_seeds_as_mean_std():
    rows = [rec(method="ncl", sha=f"s{i}", value=v) for i, v in enumerate([0.2, 0.4, 0.6])]
    rows += [rec(method="ela", value=0.3)]
    df = pd.DataFrame([r.__dict__ for r in rows])
    table = leaderboard.clean_table(df, "pixel_f1")
    cell = table.set_index("method").loc["ncl", "d1"]
    assert cell == f"0.400 ± {np.std([0.2, 0.4, 0.6], ddof=1):.3f} (n=3)"
    assert table.method.tolist() == ["ncl", "ela"]  # sorted by mean, best first


def test_robustness_table_orders_severities_numerically_clean_first():
    rows = [rec(value=0.8)] + [rec(pert="jpeg", sev=s, value=v)
                               for s, v in [("90", 0.7), ("50", 0.3), ("100", 0.75)]]
    df = pd.DataFrame([r.__dict__ for r in rows])
    table = leaderboard.robustness_table(df, "jpeg")
    assert list(table.columns) == ["method", "dataset", "clean", "50", "90", "100"]
    md = leaderboard.render(df)
    assert "Robustness — jpeg" in md and "| ela " in md


def test_render_empty_store_says_how_to_fill_it():
    assert "imlbench run" in leaderboard.render(pd.DataFrame())


def test_nan_metrics_render_as_na():
    df = pd.DataFrame([rec(value=float("nan")).__dict__])
    assert "n/a" in leaderboard.to_markdown(leaderboard.clean_table(df))


def test_leaderboard_warns_when_scores_come_from_different_dataset_versions():
    df = pd.DataFrame([{**rec(method=m).__dict__, "dataset_sha": sha}
                       for m, sha in [("ela", "aaa"), ("ncl", "bbb"), ("mpc", "")]])
    text = leaderboard.render(df)
    assert text.startswith("## Warning: scores from different versions of a dataset")
    assert "- d1: version aaa: ela; version bbb: ncl" in text
    same = df.assign(dataset_sha="aaa")
    assert "Warning" not in leaderboard.render(same)
    assert "Warning" not in leaderboard.render(df.drop(columns="dataset_sha"))  # older stores


def test_cells_are_rounded_once_and_never_show_negative_zero():
    assert leaderboard.fmt(-0.0001, np.nan, 1) == "0.000"
    assert leaderboard.fmt(-0.0006, 0.0004, 3) == "-0.001 ± 0.000 (n=3)"
    assert leaderboard.fmt(0.12345, np.nan, 1, digits=2) == "0.12"


def test_half_written_temp_file_of_a_killed_writer_is_ignored(tmp_path):
    store = ResultStore(tmp_path)
    store.append([rec()])
    (tmp_path / "records" / "r1" / ".tmp-abc.jsonl").write_text('{"half": ')
    assert len(store.load()) == 1


def test_cell_key_is_one_definition_and_seeds_are_separate_cells(tmp_path):
    """Three seeds saved as ``best.safetensors`` are three cells: in the store, the leaderboard
    (mean ± std over n=3) and the robustness summary (three checkpoints)."""
    from imlbench.results.robustness_summary import robustness_summary
    from imlbench.results.store import CELL_KEYS, CellKey, cell_key

    store = ResultStore(tmp_path)
    for seed, (clean, jpeg) in enumerate([(0.5, 0.4), (0.6, 0.3), (0.7, 0.35)]):
        for pert, sev, value in (("none", "", clean), ("jpeg", "70", jpeg)):
            store.append([ResultRecord("r", "seg_ce", "best.safetensors", f"sha{seed}", "d1", pert,
                                       sev, "pixel_f1", value, 10, 6, seed, "cpu")])
    latest = store.latest()
    assert len(latest) == 6 and latest.groupby(list(CELL_KEYS)).ngroups == 6
    assert CELL_KEYS == ("method", "checkpoint_sha", "dataset", "perturbation", "severity")
    r = latest.iloc[0]
    assert cell_key(*CellKey.of(r)) == CellKey.of(r).digest()
    assert "0.600 ± 0.100 (n=3)" in leaderboard.render(latest)
    summary = robustness_summary(latest, "pixel_f1")
    assert summary.n_checkpoints.tolist() == [3]


def test_unique_dataset_name_per_path_and_files(tmp_path):
    store = ResultStore(tmp_path)
    prov = json.dumps({"dataset_path": "/a/photos"})
    store.append([ResultRecord("r", "ela", "-", "-", "photos", "none", "", "pixel_f1", 0.5, 3, 2,
                               provenance=prov, dataset_sha="aaa")])
    assert store.unique_dataset_name("photos", "/a/photos", "changed") == "photos"  # new version
    assert store.unique_dataset_name("photos", "/copy/photos", "aaa") == "photos"  # same files
    other = store.unique_dataset_name("photos", "/b/photos", "bbb")
    assert other.startswith("photos-") and other == store.unique_dataset_name("photos", "/b/photos",
                                                                              "bbb")
    assert store.unique_dataset_name("fresh", "/c/fresh", "ccc") == "fresh"
    assert store.unique_dataset_name("synth-val", "/d/synth-val", "ddd",
                                     taken=["synth-val"]).startswith("synth-val-")
