"""TruFor: official state_dict layout, the released container, inference conventions, losses."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from imlbench.benchmark.loading import load_method
from imlbench.errors import CheckpointError, ConfigError
from imlbench.methods.trufor import losses
from imlbench.methods.trufor.keymap import official_to_ours, ours_to_official, to_official
from imlbench.methods.trufor.model import ImageTooSmallError, TruFor, weighted_statistics
from imlbench.weights import UntrustedCheckpointError

MANIFEST = Path(__file__).parent / "reference" / "zoo" / "trufor.json"
TINY = TruFor.tiny_config()


def tiny(**kw) -> TruFor:
    torch.manual_seed(0)
    return TruFor(**{**TINY, **kw}).eval()


# -- the official layout --------------------------------------------------------------------
def test_default_model_has_the_official_state_dict_through_the_key_mapping():
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        model = TruFor()
    ours = {ours_to_official(k): list(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: shape for k, shape in manifest["state_dict"]}
    assert sum(p.numel() for p in model.parameters()) == manifest["n_params"] == 68_697_421
    # the mapping is a bijection on these names
    assert all(official_to_ours(k) == ours_key and ours_to_official(ours_key) == k
               for ours_key, k in zip(model.state_dict(), ours))


def test_key_mapping_examples():
    assert official_to_ours("backbone.extra_block2.3.mlp.dwconv.dwconv.weight") == \
        "encoder.noise.1.blocks.3.mlp.dwconv.weight"
    assert official_to_ours("decode_head_conf.linear_c4.proj.bias") == "conf_head.proj.3.bias"
    assert official_to_ours("decode_head.linear_fuse.1.running_var") == "loc_head.fuse.1.running_var"
    assert official_to_ours("dncnn.47.bias") == "noiseprint.layers.47.bias"
    assert official_to_ours("backbone.FFMs.0.cross.cross_attn.kv1.weight") == \
        "encoder.fuse.0.cross.cross_attn.kv1.weight"
    assert official_to_ours("head.weight") is None


def released_container(model: TruFor) -> dict:
    """What the official train.py writes as best.pth.tar (the released trufor.pth.tar)."""
    return {"epoch": 81, "best_value": np.float64(0.87), "best_key": "avg_det_bacc",
            "state_dict": to_official(model.state_dict()),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.005, "momentum": 0.9, "params": [0]}]}}


def test_released_container_needs_trust_and_then_loads_every_tensor(tmp_path):
    source = tiny()
    for p in source.parameters():  # non-default values everywhere, buffers included
        p.data.normal_()
    for name, b in source.named_buffers():
        if "running" in name:
            b.data.uniform_(0.5, 1.5)
    path = tmp_path / "trufor.pth.tar"
    torch.save(released_container(source), path)

    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load_method("trufor", path, config=TINY)
    loaded = load_method("trufor", path, config=TINY, trust_checkpoint=True)
    expected = source.state_dict()
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_released_file_runs_through_the_cli(tmp_path, capsys):
    from imlbench.cli import main
    from tests.helpers import config_args, make_folder_dataset

    path = tmp_path / "trufor.pth.tar"
    torch.save(released_container(tiny()), path)
    make_folder_dataset(tmp_path / "data", n_tampered=1, n_authentic=1, sizes=((40, 48),))
    args = ["run", "--method", "trufor", "--checkpoint", str(path), "--dataset", str(tmp_path / "data"),
            "--results-dir", str(tmp_path / "res"), "--workers", "0", "--quiet", "--device", "cpu"]
    args += config_args(TINY)
    assert main(args) == 2  # refused: the numpy scalar needs unpickling
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert main(args + ["--trust-checkpoint"]) == 0
    out = tmp_path / "masks"
    export = ["export-masks", "--out", str(out), *args[1:args.index("--results-dir")],
              *args[args.index("--workers"):], "--trust-checkpoint"]
    assert main(export) == 0
    assert len(list((out / "maps").glob("*.png"))) == 2
    assert len(list((out / "confidence").glob("*.png"))) == 2  # the confidence map beside them


def test_bare_official_state_dict_loads_without_trust(tmp_path):
    source = tiny()
    path = tmp_path / "weights.pth"
    torch.save(to_official(source.state_dict()), path)
    loaded = load_method("trufor", path, config=TINY)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())


def test_foreign_keys_are_an_error_naming_them(tmp_path):
    state = to_official(tiny().state_dict())
    state["head.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match="head.weight"):
        load_method("trufor", path, config=TINY)


def test_noiseprint_file_loads_into_the_extractor(tmp_path):
    source = tiny()
    path = tmp_path / "noiseprint++.th"
    torch.save({"network": source.noiseprint.layers.state_dict(), "global_step": 39}, path)
    model = tiny(noiseprint_weights=str(path))
    for k, v in source.noiseprint.layers.state_dict().items():
        assert torch.equal(model.noiseprint.layers.state_dict()[k], v)


# -- inference conventions ------------------------------------------------------------------
def test_predict_uses_uint8_over_256_softmax_sigmoid_and_the_detector():
    model = tiny()
    u8 = torch.randint(0, 256, (1, 3, 37, 45)).float()
    pred = model.predict(u8 / 255)
    with torch.no_grad():
        loc, conf, det = model(u8 / 256)
    assert pred.mask_prob.shape == (1, 1, 37, 45)  # full resolution, like the official map
    assert torch.allclose(pred.mask_prob, torch.softmax(loc, 1)[:, 1:2], atol=1e-6)
    assert torch.allclose(pred.extra_maps["confidence"], torch.sigmoid(conf), atol=1e-6)
    assert torch.allclose(pred.image_score, torch.sigmoid(det[:, 0]), atol=1e-6)
    assert model.input_policy.mode == "native"


def test_too_small_image_is_one_clear_error():
    model = tiny()
    assert model.min_side == 29  # MiT-B2's sr ratios 8/4/2/1: ceil(29/4) = 8
    model.predict(torch.rand(1, 3, 29, 29))
    with pytest.raises(ImageTooSmallError, match="28x40 is too small.*29 px"):
        model.predict(torch.rand(1, 3, 28, 40))


def test_weighted_statistics_by_hand():
    x = torch.tensor([0.0, math.log(2)]).view(1, 1, 1, 2)
    got = weighted_statistics(x)[0]
    ln2 = math.log(2)
    assert torch.allclose(got, torch.tensor([-math.log(0.75), math.log(1.5), ln2 / 2, ln2 ** 2 / 2]))
    # weights 1:3 on the two pixels
    w = torch.log(torch.tensor([1.0, 3.0])).view(1, 1, 1, 2)
    got = weighted_statistics(x, w)[0]
    assert torch.allclose(got, torch.tensor([-math.log(0.25 + 0.75 / 2), math.log(0.25 + 1.5),
                                             0.75 * ln2, 0.75 * ln2 ** 2]))


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match="phases"):
        TruFor(**TINY, phases=("3", "2"))
    with pytest.raises(TypeError, match="unknown option"):
        TruFor(**TINY, backbone="mit_b5")


# -- training: stages and losses ------------------------------------------------------------
def test_stages_freeze_what_the_official_phases_freeze():
    model = tiny()
    model.train()
    model.set_stage("2")
    trained = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {"encoder", "loc_head"}
    assert not model.noiseprint.training
    model.set_stage("3")
    model.train()
    trained = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {"conf_head", "detector"}
    assert not model.encoder.training and not model.loc_head.training and model.conf_head.training


def test_localization_loss_by_hand():
    ln3 = math.log(3)
    logits = torch.tensor([[0.0, 0.0], [0.0, ln3]]).T.reshape(1, 2, 1, 2)  # p1 = 1/2, 3/4
    mask = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    out = losses.localization_loss(logits, mask, (0.5, 2.5), 0.3, 0.7)
    ce = (2.5 * math.log(2) + 0.5 * math.log(4)) / 3.0
    dice = 1 - 2 * 0.5 / (0.25 + 0.5625 + 1 + 1e-5)
    assert out["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert out["dice"].item() == pytest.approx(dice, rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.3 * ce + 0.7 * dice, rel=1e-6)


def test_confidence_loss_by_hand():
    mask = torch.tensor([0, 0, 1, 1, 1, 0, 0.0]).view(1, 1, 1, 7)
    gt0, gt1 = losses.tcp_targets(mask[:, 0], erode=3, dilate=3)
    assert gt1.flatten().tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert gt0.flatten().tolist() == [1, 0, 0, 0, 0, 0, 1]
    loc = torch.zeros(1, 2, 1, 7)
    loc[0, 1, 0, 3] = math.log(3)  # p1 = 3/4 at the eroded pixel
    conf = torch.zeros(1, 1, 1, 7)
    conf[0, 0, 0, 0] = math.log(3)  # sigmoid = 3/4 where TCP = 1/2
    value = losses.confidence_loss(loc, conf, mask, erode=3, dilate=3)
    assert value.item() == pytest.approx((0.0625 + 0.0625 + 0) / 3, rel=1e-6)


def test_detection_loss_by_hand():
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, 0, 0, :4] = 1  # 4 tampered pixels: fake
    mask[1, 0, 0, :3] = 1  # 3: real (the official rule is "more than 3")
    value = losses.detection_loss(torch.zeros(2, 1), mask)
    assert value.item() == pytest.approx(math.log(2) * (0.5 / 0.7 + 0.5 / 0.3) / 2, rel=1e-6)


@pytest.mark.parametrize("stage", ["2", "3"])
def test_loss_terms_per_stage(stage):
    model = tiny()
    model.train()
    model.set_stage(stage)
    mask = torch.zeros(2, 1, 40, 40)
    mask[0, :, 8:30, 8:30] = 1
    out = model.loss({"image": torch.rand(2, 3, 40, 40), "mask": mask, "label": torch.tensor([1, 0])})
    assert set(out) == ({"loss", "ce", "dice"} if stage == "2" else {"loss", "confidence", "detection"})
    out["loss"].backward()
    grads = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert grads == ({"encoder", "loc_head"} if stage == "2" else {"conf_head", "detector"})


def test_imagenet_mit_file_initialises_both_streams(tmp_path):
    source = tiny()
    for p in source.encoder.rgb.parameters():
        p.data.normal_()
    official = {k.removeprefix("backbone."): v for k, v in to_official(source.state_dict()).items()
                if k.startswith(("backbone.patch_embed", "backbone.block", "backbone.norm"))}
    official["head.weight"] = torch.zeros(3, 32)  # the ImageNet classifier is dropped
    path = tmp_path / "mit.pth"
    torch.save(official, path)
    model = tiny(encoder_weights=str(path))
    for name, value in source.encoder.rgb.state_dict().items():
        assert torch.equal(model.encoder.rgb.state_dict()[name], value)
        assert torch.equal(model.encoder.noise.state_dict()[name], value)
    with pytest.raises(CheckpointError, match="lacks"):
        torch.save({k: v for k, v in official.items() if "block1" not in k}, path)
        tiny(encoder_weights=str(path))
