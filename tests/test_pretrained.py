"""ImageNet initialisation of the trainable baselines: local files load strictly onto our
modules, the ``paper`` recipes demand them (one line naming both ways out), and seg_ce/ncl can
be evaluated at native resolution (``input_mode=pad``) after training on native crops."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from imlbench.benchmark.recipes import load_recipe
from imlbench.errors import CheckpointError, ConfigError
from imlbench.methods.base import InputPolicy
from imlbench.methods.resample import shape_for_policy
from imlbench.registry import METHODS


@pytest.mark.parametrize("name", ["seg_ce", "ncl"])
def test_imagenet_resnet_weights_load_strictly_onto_the_encoder(tmp_path, name):
    tiny = METHODS.get(name).tiny_config()
    torch.manual_seed(7)
    # a timm ImageNet checkpoint: the full classifier network, head included, under "state_dict"
    full = timm.create_model(tiny["backbone"], pretrained=False, num_classes=1000)
    path = tmp_path / "resnet10t.pth"
    torch.save({"state_dict": full.state_dict()}, path)
    model = METHODS.build(name, **tiny, pretrained_path=str(path))
    encoder = model.net.encoder.state_dict()
    source = full.state_dict()
    assert encoder and all(torch.equal(v, source[k]) for k, v in encoder.items())
    torch.save({"state_dict": {**full.state_dict(), "layer9.weight": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="1 unexpected keys.*layer9"):
        METHODS.build(name, **tiny, pretrained_path=str(path))
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(CheckpointError, match="does not fit the backbone"):
        METHODS.build(name, **tiny, pretrained_path=str(path))


@pytest.mark.parametrize("name,weights", [("seg_ce", "resnet50"), ("ncl", "resnet101"),
                                          ("mpc", "hrt_base.pth"), ("mpc_no_stage1", "hrt_base.pth")])
def test_paper_recipes_refuse_to_start_from_random_weights(name, weights):
    rcp = load_recipe("paper", name)
    assert rcp.method["require_pretrained"] is True
    tiny = {**METHODS.get(name).tiny_config(), "require_pretrained": True}
    if name in ("seg_ce", "ncl"):  # the message names the backbone it was built with
        assert rcp.method["backbone"] == weights
        weights = tiny["backbone"]
    with pytest.raises(ConfigError, match=f"{weights}.*pretrained_path=FILE.*require_pretrained=false"):
        METHODS.build(name, **tiny)
    METHODS.build(name, **{**tiny, "require_pretrained": False})


@pytest.mark.parametrize("name", ["seg_ce", "ncl"])
def test_pad_input_mode_evaluates_at_native_resolution(name):
    tiny = METHODS.get(name).tiny_config()
    model = METHODS.build(name, **tiny, input_mode="pad").eval()
    assert model.input_policy == InputPolicy("pad", multiple=32)
    image = np.random.default_rng(0).integers(0, 255, (37, 50, 3), dtype=np.uint8)
    shaped = shape_for_policy(image, model.input_policy)
    assert shaped.image.shape == (3, 64, 64) and shaped.valid == (37, 50)
    with torch.no_grad():
        assert model.predict(shaped.image[None]).mask_prob.shape == (1, 1, 64, 64)
    with pytest.raises(ConfigError, match="input_mode"):
        METHODS.build(name, **tiny, input_mode="native")
