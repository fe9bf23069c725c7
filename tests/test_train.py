"""Training loop: exact resume, recipes, schedules, the training data stream."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from imlbench.benchmark.optim import build_optimizer, lr_factor
from imlbench.benchmark.recipes import RECIPES_DIR, load_recipe, recipe_names
from imlbench.benchmark.train import train
from imlbench.benchmark.train_data import TrainDataset
from imlbench.datasets.protocols import Protocol, Sampling
from imlbench.methods.ncl import NCL
from imlbench.methods.seg_ce import SegCE
from tests.helpers import make_folder_dataset

TINY = SegCE.tiny_config()


def write_recipe(path: Path, **overrides) -> Path:
    recipe = {"image_size": 32, "batch_size": 2, "grad_accum": 2, "steps": 6,
              "optimizer": {"name": "adamw", "lr": 1e-3},
              "schedule": {"name": "poly", "warmup_steps": 2}, "val_every": 3,
              "val_batch_size": 4, "previews": 1, "log_every": 1, "tensorboard": False}
    path.write_text(yaml.safe_dump({**recipe, **overrides}))
    return path


def losses(run_dir: Path) -> list[tuple[int, float]]:
    lines = [json.loads(ln) for ln in (run_dir / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in lines if "loss" in r]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return (make_folder_dataset(root / "train", n_tampered=5, n_authentic=2, seed=0),
            make_folder_dataset(root / "val", n_tampered=3, n_authentic=1, seed=1))


# NCL's alternating pivot depends on the step: resuming after an odd number of steps must
# continue on the second branch, not restart on the first.
RESUMABLE = {"seg_ce": TINY, "ncl": {**NCL.tiny_config(), "pivot": "alternate", "switch_every": 1}}


# MPC's official augmentation (random scale, pad, flips, JPEG, blur/noise/tone) on native crops:
# every draw is seeded by the sample's stream position, so the resumed run sees the same data.
AUGMENTED = {"augment": "mpc_official", "shaping": "crop", "hflip": False}


@pytest.mark.slow  # three trainings per case: ~3 s each
@pytest.mark.parametrize("method,recipe_fields", [(m, {}) for m in RESUMABLE] + [("seg_ce", AUGMENTED)],
                         ids=[*RESUMABLE, "seg_ce-augmented"])
def test_resumed_run_reproduces_uninterrupted_loss_curve(tmp_path, data, method, recipe_fields):
    train_ds, val_ds = data
    recipe = write_recipe(tmp_path / "r.yaml", tensorboard=True, **recipe_fields)
    kw = dict(dataset=train_ds, val_dataset=val_ds, recipe=recipe, method_config=RESUMABLE[method],
              seed=3, progress=False)
    full = train(method, out_dir=tmp_path / "full", **kw)
    assert full.finished and full.steps == 6

    part = train(method, out_dir=tmp_path / "part", stop_after=3, **kw)
    assert not part.finished and part.steps == 3
    with open(tmp_path / "part" / "log.jsonl", "a") as f:  # a step logged after the last save
        f.write(json.dumps({"step": 4, "stage": "main", "lr": 0.0, "loss": 123.0}) + "\n")
    resumed = train(method, out_dir=tmp_path / "part", resume=True, **kw)

    assert resumed.finished and resumed.steps == 6
    assert [s for s, _ in losses(tmp_path / "part")] == [1, 2, 3, 4, 5, 6]
    assert losses(tmp_path / "part") == losses(tmp_path / "full")  # exact, dropout included
    if method == "ncl":
        lines = [json.loads(ln) for ln in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
        branches = [[k for k in r if k.startswith("supcon_")] for r in lines if "loss" in r]
        assert branches == [["supcon_tampered"], ["supcon_authentic"]] * 3
    a, b = load_file(str(full.last_checkpoint)), load_file(str(resumed.last_checkpoint))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.best_val == full.best_val and set(full.best_val) >= {"pixel_f1", "pixel_auc"}
    assert list((tmp_path / "full" / "tb").glob("events.out.tfevents.*"))


def test_existing_run_is_never_overwritten(tmp_path, data):
    train_ds, _ = data
    kw = dict(dataset=train_ds, val_dataset=None, recipe=write_recipe(tmp_path / "r.yaml", steps=1),
              method_config=TINY, out_dir=tmp_path / "run", progress=False)
    first = train("seg_ce", **kw)
    assert first.best_checkpoint.is_file() and first.best_val == {}  # no validation: best = last
    with pytest.raises(FileExistsError, match="--resume"):
        train("seg_ce", **kw)
    again = train("seg_ce", resume=True, **kw)  # finished: returned as it is
    assert again.best_checkpoint == first.best_checkpoint and again.steps == 1


def test_untrainable_method_is_refused(data):
    with pytest.raises(ValueError, match="not trainable.*seg_ce"):
        train("ela", dataset=data[0], val_dataset=None)


def test_recipes_are_data_with_per_method_files(tmp_path):
    assert {"quick", "paper"} <= set(recipe_names())
    quick = load_recipe("quick", "seg_ce")
    assert quick.method == yaml.safe_load((RECIPES_DIR / "quick" / "seg_ce.yaml").read_text())["method"]
    assert quick.image_size == 256 and load_recipe("quick", "no_such_method").method == {}
    paper = load_recipe("paper", "seg_ce")  # the per-method file replaces the whole optimizer
    assert paper.optimizer == {"name": "sgd", "lr": 0.007, "momentum": 0.9, "weight_decay": 4e-5}
    staged = write_recipe(tmp_path / "s.yaml", stages={"1": {"steps": 9, "val_every": 0}})
    assert load_recipe(staged, "m").for_stage("1").steps == 9
    assert load_recipe(staged, "m", steps=2).for_stage("1").steps == 2
    with pytest.raises(ValueError, match="unknown recipe 'fast'.*paper.*quick"):
        load_recipe("fast", "seg_ce")
    with pytest.raises(ValueError, match=r"unknown keys \['lr_max'\]"):
        load_recipe(write_recipe(tmp_path / "bad.yaml", lr_max=1), "seg_ce")


def test_lr_schedules():
    warm = {"name": "poly", "power": 1.0, "warmup_steps": 4, "warmup_start": 0.2}
    assert [lr_factor(s, 14, warm) for s in (0, 2, 4, 9, 14)] == pytest.approx([0.2, 0.6, 1, 0.5, 0])
    cos = {"name": "cosine", "min_lr_ratio": 0.1}
    assert [lr_factor(s, 10, cos) for s in (0, 5, 10)] == pytest.approx([1, 0.55, 0.1])
    assert lr_factor(7, 10, {"name": "constant"}) == 1
    assert lr_factor(5, 10, {"name": "poly"}) == pytest.approx(0.5 ** 0.9)
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor(1, 10, {"name": "step"})


def test_optimizer_custom_keys_set_per_parameter_lr_and_decay():
    model = torch.nn.Module()
    model.body = torch.nn.Linear(2, 2)
    model.head = torch.nn.Linear(2, 1)
    opt = build_optimizer(model, list(model.parameters()), {
        "name": "sgd", "lr": 0.1, "weight_decay": 0.5, "momentum": 0.9,
        "custom_keys": {"head": {"lr_mult": 10.0}, "head.bias": {"decay_mult": 0.0}}})
    by_param = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    assert by_param[id(model.body.weight)] == pytest.approx((0.1, 0.5))
    assert by_param[id(model.head.weight)] == pytest.approx((1.0, 0.5))
    assert by_param[id(model.head.bias)] == pytest.approx((0.1, 0.0))  # longest key wins
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        build_optimizer(model, list(model.parameters()), {"name": "lamb", "lr": 1})


def test_training_stream_is_stateless_and_seeded(data):
    train_ds, _ = data
    n = len(train_ds)
    a, b = TrainDataset([train_ds.samples], 16, seed=1), TrainDataset([train_ds.samples], 16, seed=1)
    for pos in (3 * n + 2, 0, n + 1):  # any order, any instance (worker): same item
        x, y = a[pos], b[pos]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    item = a[0]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (1, 16, 16) and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["label"].dtype == torch.long
    epochs = [[a.epoch(e)[1].tolist()] for e in range(4)]
    assert all(sorted(o[0]) == list(range(n)) for o in epochs) and len({str(o) for o in epochs}) > 1
    other = TrainDataset([train_ds.samples], 16, seed=2)
    assert [other.epoch(e)[1].tolist() for e in range(4)] != [o[0] for o in epochs]
    # flips: some positions are mirrored copies of the unflipped item
    plain = TrainDataset([train_ds.samples], 16, seed=1, hflip=False)
    flipped = [not torch.equal(a[p]["image"], plain[p]["image"]) for p in range(2 * n)]
    assert any(flipped) and not all(flipped)
    for p in (i for i, f in enumerate(flipped) if f):
        assert torch.equal(a[p]["image"], plain[p]["image"].flip(-1))


def test_balanced_stream_draws_the_same_number_from_each_set(data):
    train_ds, val_ds = data  # 7 and 4 samples: balanced epochs weigh them the same
    balanced = Sampling("balanced", per_dataset=5, replacement=True)
    stream = TrainDataset([train_ds.samples, val_ds.samples], 16, seed=1, sampling=balanced)
    assert len(stream) == 10
    for epoch in range(3):
        samples, order = stream.epoch(epoch)
        assert sorted(order.tolist()) == list(range(10))
        from_val = sum(s in val_ds.samples for s in samples)
        assert from_val == 5, f"epoch {epoch}: {from_val} of 10 samples from the second set"
    assert stream.epoch(0)[0] != stream.epoch(1)[0]  # a fresh draw per epoch
    again = TrainDataset([train_ds.samples, val_ds.samples], 16, seed=1, sampling=balanced)
    assert torch.equal(again[13]["image"], stream[13]["image"])  # stateless: same item anywhere


def test_training_on_a_balanced_protocol(tmp_path, data, monkeypatch):
    """A protocol's balanced sampling reaches the training stream and the run's identity."""
    monkeypatch.setenv("IMLBENCH_HOME", str(tmp_path / "home"))
    train_ds, val_ds = data
    test_set = make_folder_dataset(tmp_path / "test", n_tampered=1, n_authentic=1, seed=2)
    first, second, val = (str(Path(d.samples[0].image_path).parent.parent)  # <root>/Tp/x.png
                          for d in (train_ds, val_ds, test_set))
    protocol = Protocol("two-sets", "", train=(first, second), val=(val,),
                        test=(str(tmp_path / "elsewhere"),),
                        sampling=Sampling("balanced", per_dataset=3, replacement=True))
    seen: list[int] = []
    real_getitem = TrainDataset.__getitem__
    monkeypatch.setattr(TrainDataset, "__getitem__",
                        lambda self, p: seen.append(len(self)) or real_getitem(self, p))
    result = train("seg_ce", dataset=protocol, recipe=write_recipe(tmp_path / "r.yaml"),
                   method_config=TINY, progress=False)
    assert result.finished and set(seen) == {6}  # epochs of 2 x 3 draws, not 7 + 4 samples
    info = json.loads((result.run_dir / "last.json").read_text())
    assert info["sampling"] == {"mode": "balanced", "per_dataset": 3, "replacement": True}
    assert info["val_dataset"] == val  # the protocol's validation split
    assert result.run_dir.parent.parent.name == "two-sets"


def test_nonfinite_loss_stops_training(tmp_path, data, monkeypatch):
    monkeypatch.setattr(SegCE, "loss", lambda self, batch: {"loss": torch.tensor(math.nan,
                                                                                 requires_grad=True)})
    with pytest.raises(FloatingPointError, match="'loss' of SegCE is nan at step 1"):
        train("seg_ce", dataset=data[0], val_dataset=None, out_dir=tmp_path / "run",
              recipe=write_recipe(tmp_path / "r.yaml"), method_config=TINY, progress=False)
