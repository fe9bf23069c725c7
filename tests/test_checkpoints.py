"""Checkpoint files and cache: safe loading, atomic writes, sidecars, find/find-or-train."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from imlbench.benchmark import checkpoints as ck
from imlbench.benchmark import loading
from imlbench.benchmark import train as train_module
from imlbench.methods.seg_ce import SegCE

TINY = SegCE.tiny_config()
UNPICKLED: list[str] = []


def record_call(tag: str) -> str:
    """Stands for arbitrary code that unpickling a hostile file would run."""
    UNPICKLED.append(tag)
    return tag


class CodeOnLoad:
    def __reduce__(self):
        return record_call, ("ran",)


def test_checkpoint_needing_pickled_code_is_refused_unless_trusted(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"net.weight": torch.zeros(2), "payload": CodeOnLoad()}, path)
    UNPICKLED.clear()
    with pytest.raises(ck.UntrustedCheckpointError) as err:
        ck.read_state_dict(path)
    message = str(err.value)
    assert str(path) in message and "--trust-checkpoint" in message
    assert "only for files you trust" in message and UNPICKLED == []
    with pytest.raises(ck.UntrustedCheckpointError):
        loading.load_method("seg_ce", path, config=TINY)
    assert UNPICKLED == []
    state = ck.read_state_dict(path, trust=True)  # the user vouched for it
    assert UNPICKLED == ["ran"] and state["payload"] == "ran"


def test_weights_only_pth_and_safetensors_load_into_the_method(tmp_path):
    torch.manual_seed(0)
    model = SegCE(**TINY)
    wrapped = tmp_path / "plain.pth"
    torch.save(model.state_dict(), wrapped)
    ck.save_weights(tmp_path / "w.safetensors", model.state_dict(),
                    {"method": "seg_ce", "config": TINY})
    for path in (wrapped, tmp_path / "w.safetensors"):
        loaded = loading.load_method("seg_ce", path, config=TINY)
        assert not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                     model.state_dict().values()))
    with pytest.raises(ValueError, match="trained for method 'seg_ce', not 'segformer_b0'"):
        loading.load_method("segformer_b0", tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="does not fit method 'seg_ce'.*sidecar"):
        loading.load_method("seg_ce", wrapped, config={**TINY, "decoder_channels": 8})
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ck.read_state_dict(tmp_path / "nope.pth")


def test_sidecar_config_is_used_and_header_survives_a_copy(tmp_path):
    model = SegCE(**TINY)
    info = {"method": "seg_ce", "config": TINY, "step": 7}
    path = tmp_path / "best.safetensors"
    ck.save_weights(path, model.state_dict(), info)
    assert json.loads(path.with_suffix(".json").read_text()) == info
    path.with_suffix(".json").unlink()  # a copied weights file keeps its description
    assert ck.read_sidecar(path) == info
    loaded = loading.load_method("seg_ce", path)  # no config given: the sidecar's is used
    assert loaded.net.classifier.in_channels == TINY["decoder_channels"]


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.state.pt"
    ck.save_state(path, {"step": 1})

    def crash(obj, f):
        open(f, "wb").write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ck.save_state(path, {"step": 2})
    assert ck.load_state(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.state.pt"]


def test_checkpoint_sha256(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"imlbench" * 100_000)
    assert ck.checkpoint_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_find_or_train_checkpoint_trains_once_then_reuses(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "image_size": 32, "batch_size": 2, "steps": 2, "optimizer": {"name": "adamw", "lr": 1e-3},
        "schedule": {"name": "constant"}, "val_batch_size": 4, "tensorboard": False}))
    assert ck.find_checkpoint("seg_ce", "synthetic", config=TINY) is None
    best = loading.find_or_train_checkpoint("seg_ce", "synthetic", recipe=str(recipe), config=TINY,
                                device="cpu")
    assert "No trained checkpoint of 'seg_ce' for protocol 'synthetic': training one now on " \
           "'synth-train'" in capsys.readouterr().out
    assert best.is_relative_to(ck.checkpoints_dir() / "synthetic" / "seg_ce")
    sidecar = json.loads(best.with_suffix(".json").read_text())
    assert sidecar["finished"] and sidecar["dataset"] == "synth-train"
    assert sidecar["val_dataset"] == "synth-val" and "pixel_f1" in sidecar["val"]
    assert set(load_file(str(best))) == set(SegCE(**TINY).state_dict())

    def no_training(*args, **kwargs):
        raise AssertionError("must reuse the checkpoint")

    monkeypatch.setattr(train_module, "train", no_training)
    assert loading.find_or_train_checkpoint("seg_ce", "synthetic", recipe="tiny", config=TINY) == best
    assert ck.find_checkpoint("seg_ce", "synthetic", config=TINY) == best
    assert ck.find_checkpoint("seg_ce", "synthetic", recipe="paper", config=TINY) is None
    assert ck.find_checkpoint("seg_ce", "synthetic", config={**TINY, "input_size": 64}) is None
    assert ck.find_checkpoint("seg_ce", "synthetic", config=TINY, seed=0) == best
    assert ck.find_checkpoint("seg_ce", "synthetic", config=TINY, seed=1) is None  # never reused
    with pytest.raises(ValueError, match="protocol 'mvss'.*--checkpoint"):
        loading.find_or_train_checkpoint("seg_ce", "mvss", config=TINY)


def test_a_run_of_a_built_in_recipe_that_has_changed_since_is_never_reused(tmp_path, monkeypatch):
    """A cached run of ``quick`` trained before quick.yaml changed (say, before it gained an
    augmentation) is stale: reusing it would score the old recipe under the new one's name."""
    import dataclasses

    from imlbench.benchmark.recipes import load_recipe

    monkeypatch.setenv("IMLBENCH_HOME", str(tmp_path / "home"))
    recipe = json.loads(json.dumps(dataclasses.asdict(load_recipe("quick", "seg_ce"))))
    run = ck.method_dir("synthetic", "seg_ce") / "run"
    run.mkdir(parents=True)
    best = run / "best.safetensors"
    info = {"finished": True, "method": "seg_ce", "method_config": {}, "seed": 0, "images_seen": 8}
    ck.save_weights(best, {"w": torch.zeros(1)}, {})
    assert isinstance(recipe["augment"], list)  # the preset's steps, not its name, are stored
    older = {k: v for k, v in recipe.items() if k not in ("augment", "shaping")}
    for stored, extra, found in [
            (recipe, {}, best), ({**recipe, "steps": 7}, {}, best),  # a --steps run
            ({**recipe, "augment": "mpc_official"}, {}, best),  # a sidecar naming the preset
            ({**recipe, "augment": [{"transform": "vflip"}]}, {}, None),
            ({**recipe, "optimizer": {"name": "sgd", "lr": 0.1}}, {}, None),
            (older, {}, None),  # predates augment: trained without it, unlike today's quick
            ({**recipe, "optimizer": {"name": "sgd"}}, {"recipe_file": "/x/quick.yaml"}, best)]:
        (run / "best.json").write_text(json.dumps({**info, **extra, "recipe": stored}))
        assert ck.find_checkpoint("seg_ce", "synthetic", recipe="quick") == found
        assert ck.find_checkpoint("seg_ce", "synthetic") == found  # any recipe: still not stale ones
    # a method whose quick recipe has no augmentation: a sidecar that predates the field is fresh
    cat = json.loads(json.dumps(dataclasses.asdict(load_recipe("quick", "cat_net"))))
    run = ck.method_dir("synthetic", "cat_net") / "run"
    run.mkdir(parents=True)
    ck.save_weights(run / "best.safetensors", {"w": torch.zeros(1)}, {})
    (run / "best.json").write_text(json.dumps({**info, "method": "cat_net", "recipe": {
        k: v for k, v in cat.items() if k not in ("augment", "shaping")}}))
    assert ck.find_checkpoint("cat_net", "synthetic", recipe="quick") == run / "best.safetensors"


@pytest.mark.parametrize("name", ["seg_ce", "ncl", "mpc"])
def test_a_trained_checkpoint_loads_without_the_imagenet_file_it_started_from(tmp_path, name):
    # trained from a pretrained_path that has since gone: the checkpoint holds every weight
    from imlbench.registry import METHODS

    cls = METHODS.get(name)
    model = METHODS.build(name, **cls.tiny_config())
    config = {**cls.tiny_config(), "pretrained_path": str(tmp_path / "gone.pth")}
    config["require_pretrained"] = True  # the paper recipe's guard must not fire either
    path = tmp_path / "best.safetensors"
    ck.save_weights(path, model.state_dict(), {"method": name, "config": config})
    loaded = loading.load_method(name, path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
