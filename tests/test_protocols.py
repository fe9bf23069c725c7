"""Protocols as data (imlbench/configs/protocols/*.yaml): loading, validation, hold-out and
balanced sampling, and the ``mvss`` protocol end to end on replicas of its six datasets."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from imlbench.benchmark.evaluate import evaluate
from imlbench.benchmark.runner import EvalDataset
from imlbench.cli import main
from imlbench.datasets import catalog
from imlbench.datasets.base import Sample
from imlbench.datasets.protocols import (ProtocolError, Sampling, ValHoldout, list_protocols,
                                         load_protocol, protocol_from_dict)
from imlbench.methods.base import InputPolicy
from imlbench.paths import DATA_ROOT_ENV
from tests.real_replicas import BUILDERS

MVSS_SETS = ("casia2", "casia1", "columbia", "coverage", "nist16", "imd2020")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    return tmp_path


def _samples(n_tampered: int, n_authentic: int, prefix: str = "") -> list[Sample]:
    return ([Sample(f"{prefix}t{i:03d}", f"t{i}.png", f"m{i}.png", 1, "x") for i in range(n_tampered)]
            + [Sample(f"{prefix}a{i:03d}", f"a{i}.png", None, 0, "x") for i in range(n_authentic)])


def _minimal(**overrides) -> dict:
    return {"name": "p", "train": ["synth-train"], "val": ["synth-val"], "test": ["synth-splice"],
            **overrides}


# -- the shipped protocols ---------------------------------------------------------------------
def test_shipped_protocols():
    assert list_protocols() == ["cat", "mvss", "synthetic"]
    synthetic = load_protocol("synthetic")
    assert synthetic.train == (catalog.SYNTH_TRAIN,) and synthetic.val == (catalog.SYNTH_VAL,)
    assert set(synthetic.test) == set(catalog.TEST_SETS)
    mvss = load_protocol("mvss")
    assert mvss.train == ("casia2",) and mvss.val is None and mvss.val_holdout.fraction == 0.05
    assert mvss.test == ("casia1", "columbia", "coverage", "nist16", "imd2020")
    cat = load_protocol("cat")
    assert cat.sampling == Sampling("balanced", 1840, True) and len(cat.train) == 7
    assert not set(cat.test) & set(cat.train)


@pytest.mark.parametrize("overrides, message", [
    ({"test": ["synth-train"]}, "used both for testing and for training"),
    ({"val_holdout": {"fraction": 0.1}}, "either val .* or val_holdout"),
    ({"val": None}, "either val .* or val_holdout"),
    ({"trian": ["x"]}, "unknown key.*trian"),
    ({"test": ["casia"]}, "Did you mean 'casia2', 'casia1'"),
    ({"test": "synth-splice"}, "must be a list"),
    ({"val": None, "val_holdout": {"fraction": 1.5}}, "fraction must be in"),
    ({"val": None, "val_holdout": {"fraction": 0.1, "count": 5}}, "exactly one of"),
    ({"sampling": {"mode": "balanced"}}, "per_dataset > 0"),
    ({"sampling": {"mode": "shuffle"}}, "'concat' or 'balanced'"),
    ({"sampling": {"mode": "concat", "weights": 1}}, "unknown sampling key"),
])
def test_protocol_validation(overrides, message):
    with pytest.raises(ProtocolError, match=message):
        protocol_from_dict(_minimal(**overrides))


def test_unknown_protocol_suggests_and_user_yaml_loads(tmp_path):
    with pytest.raises(ProtocolError, match="Did you mean 'mvss'"):
        load_protocol("mvs")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ntrain: [synth-train]\nval: null\nval_holdout: {count: 2}\n"
                    "test: [synth-splice, nist16]\n")
    mine = load_protocol(path)
    assert mine.name == "mine" and mine.val_holdout == ValHoldout(count=2)


# -- validation hold-out and balanced sampling -------------------------------------------------------
def test_holdout_is_seeded_stratified_disjoint_and_order_free():
    samples = _samples(40, 60)
    train, val = ValHoldout(fraction=0.1).split(samples, "casia2")
    assert Counter(s.label for s in val) == {1: 4, 0: 6}  # the set's tampered/authentic ratio
    assert {s.sample_id for s in train} | {s.sample_id for s in val} == {s.sample_id for s in samples}
    assert not {s.sample_id for s in train} & {s.sample_id for s in val}
    shuffled = [samples[i] for i in np.random.default_rng(1).permutation(len(samples))]
    assert {s.sample_id for s in ValHoldout(fraction=0.1).split(shuffled, "casia2")[1]} == \
        {s.sample_id for s in val}
    other = ValHoldout(fraction=0.1, seed=1).split(samples, "casia2")[1]
    assert {s.sample_id for s in other} != {s.sample_id for s in val}
    _, by_count = ValHoldout(count=10).split(samples, "casia2")
    assert len(by_count) == 10
    _, tiny = ValHoldout(fraction=0.01).split(_samples(2, 1), "x")
    assert [s.label for s in tiny] == [1]  # >= 1 per label group of 2+, and 1 left to train


def test_balanced_sampling_draws_the_same_number_from_each_set():
    small, large = _samples(3, 2, "s"), _samples(300, 200, "l")
    balanced = Sampling("balanced", per_dataset=7, replacement=True)
    epoch0 = balanced.epoch([small, large], epoch=0, seed=0)
    assert Counter(s.sample_id[0] for s in epoch0) == {"s": 7, "l": 7}
    assert epoch0 == balanced.epoch([small, large], epoch=0, seed=0)
    assert epoch0 != balanced.epoch([small, large], epoch=1, seed=0)
    no_replacement = Sampling("balanced", per_dataset=5).epoch([small, large], 0, 0)
    assert len({s.sample_id for s in no_replacement}) == 10
    with pytest.raises(ValueError, match="fewer than the 7 drawn"):
        Sampling("balanced", per_dataset=7).epoch([small, large], 0, 0)
    assert Sampling().epoch([small, large], 0, 0) == small + large


# -- protocols on replicas ------------------------------------------------------------------------
def test_mvss_runs_end_to_end_on_replicas(root):
    replicas = {name: BUILDERS[name](root, defects=False) for name in MVSS_SETS}
    mvss = load_protocol("mvss")
    assert mvss.missing_datasets() == [] and mvss.available_test_sets() == list(mvss.test)

    train, val = mvss.train_dataset(), mvss.val_dataset()
    train_ids, val_ids = {s.sample_id for s in train.samples}, {s.sample_id for s in val.samples}
    assert (train.name, val.name) == ("mvss-train", "mvss-val")
    assert train_ids | val_ids == {f"casia2/{i}" for i in replicas["casia2"].truth}
    assert not train_ids & val_ids and {s.label for s in val.samples} == {0, 1}
    assert val_ids == {s.sample_id for s in load_protocol("mvss").val_dataset().samples}
    assert len(mvss.epoch_samples(0, seed=0)) == len(train)

    for dataset in mvss.test_datasets():  # the runner sees decoded masks (inverted, colour...)
        replica = replicas[dataset.name]
        for item in EvalDataset(dataset.samples, InputPolicy("native")):
            truth = replica.truth[item.sample_id]
            agree = item.mask.numpy() == (truth if truth is not None else False)
            assert (agree | replica.boundary.get(item.sample_id, False)).all(), item.sample_id

    df = evaluate("ela", list(mvss.test), results_dir=None, device="cpu", num_workers=0,
                  progress=False)
    assert sorted(df.dataset.unique()) == sorted(mvss.test)
    for name in mvss.test:
        cell = df[df.dataset == name].set_index("metric").value
        assert df[df.dataset == name].n_images.iloc[0] == len(replicas[name].truth)
        for metric in ("pixel_f1", "pixel_auc", "image_auc"):
            assert 0.0 <= cell[metric] <= 1.0, (name, metric, cell[metric])


def tiny_training(tmp_path: Path) -> list[str]:
    """CLI options training a tiny seg_ce for 2 steps of 2 images at 32² on CPU."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "image_size": 32, "batch_size": 2, "steps": 2, "optimizer": {"name": "adamw", "lr": 1e-3},
        "schedule": {"name": "constant"}, "val_batch_size": 4, "tensorboard": False}))
    return ["--recipe", str(recipe), "--device", "cpu", "--quiet", "--config", "backbone=resnet10t",
            "--config", "input_size=32", "--config", "decoder_channels=16"]


def test_mvss_trains_a_tiny_model_then_tests_on_all_five(root, tmp_path, capsys):
    """`imlbench run --protocol mvss` with no checkpoint: trains on the CASIAv2 replica (val = its
    hold-out), then evaluates on the five test replicas and prints the leaderboard."""
    for name in MVSS_SETS:
        BUILDERS[name](root, defects=False)
    assert main(["run", "--method", "seg_ce", "--protocol", "mvss", *tiny_training(tmp_path),
                 "--workers", "0", "--results-dir", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "training one now on 'mvss-train'" in out
    assert "## Leaderboard" in out
    for name in ("casia1", "columbia", "coverage", "nist16", "imd2020"):
        assert f"### {name}" in out


def test_cat_reads_benco_json_lists_under_the_data_root(root, tmp_path, capsys):
    for name in ("casia2", "imd2020"):
        BUILDERS[name](root, defects=False)
    fake, orig = root / "IMD2020" / "z5" / "00022_fake.jpg", root / "IMD2020" / "z5" / "00022_orig.jpg"
    cat = load_protocol("cat")
    assert cat.missing_datasets()[0] == "FantasticReality_v1/FantasticReality.json"
    for entry in cat.train:
        if entry.endswith(".json"):
            (root / entry).parent.mkdir(parents=True, exist_ok=True)
            mask = fake.with_name("00022_fake_mask.png")
            (root / entry).write_text(json.dumps([[str(fake), str(mask)], [str(orig), "Negative"]]))
    parts, val = cat.train_parts(), cat.val_dataset()
    # count: 100 per set holds out all but one sample per label group of 2+ (the replicas are tiny)
    assert [len(p) for p in parts] == [2, 2, 2, 2, 2, 2, 2]
    assert len(val) == (12 - 2) + (12 - 2)
    epoch = cat.epoch_samples(epoch=0, seed=0, parts=parts)
    assert len(epoch) == 7 * 1840 and epoch != cat.epoch_samples(epoch=1, seed=0, parts=parts)
    assert Counter(s.source.split("/")[0] for s in epoch[:1840]) == {"casia2": 1840}

    # training on the protocol draws the same number from each of its 7 sets per epoch
    assert main(["train", "--method", "seg_ce", "--protocol", "cat", *tiny_training(tmp_path)]) == 0
    best = Path(capsys.readouterr().out.splitlines()[0].removeprefix("best checkpoint: "))
    info = json.loads(best.with_suffix(".json").read_text())
    assert info["sampling"] == {"mode": "balanced", "per_dataset": 1840, "replacement": True}
    assert (info["dataset"], info["val_dataset"]) == ("cat-train", "cat-val")
    assert best.parent.parent.parent.name == "cat"
