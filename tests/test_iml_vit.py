"""The ``iml_vit`` method: official manifest and key mapping, released container, the exact ops
(padding in pixel space, window padding, decomposed relative positions, position-embedding
resize), the published loss against hand-computed values, MAE loading, recipes."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from imlbench.benchmark.loading import load_method
from imlbench.cli import main
from imlbench.benchmark.optim import build_optimizer
from imlbench.benchmark.recipes import load_recipe
from imlbench.errors import CheckpointError, ConfigError
from imlbench.methods.iml_vit import IMLViT
from imlbench.methods.iml_vit import keymap
from imlbench.methods.iml_vit.losses import edge_band, iml_vit_loss
from imlbench.methods.iml_vit.vit import Attention, from_windows, to_windows
from imlbench.registry import METHODS
from imlbench.weights import UntrustedCheckpointError
from tests.helpers import config_args, make_folder_dataset

MANIFEST = Path(__file__).parent / "reference" / "zoo" / "iml_vit.json"
"""Names, shapes and dtypes of the official ``iml_vit_model().state_dict()`` (212 entries)."""


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _tiny(**overrides) -> IMLViT:
    torch.manual_seed(0)
    return IMLViT(**{**IMLViT.tiny_config(), **overrides}).eval()


def _randomised(model: IMLViT, seed: int = 1) -> IMLViT:
    """Every float tensor random at a scale that keeps activations lively (rel-pos tables and
    BN statistics included), so nothing sits at its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(0.5 + r.abs())
            elif t.ndim >= 2 and "pos" not in name:
                t.copy_(r / t[0].numel() ** 0.5)  # fan-in scaling
            else:
                t.copy_((1.0 if name.endswith("norm.weight") or "norm1.weight" in name
                         or "norm2.weight" in name else 0.0) + 0.2 * r)
    return model


# -- manifest and key mapping -------------------------------------------------------------------
def test_default_model_is_the_official_architecture(manifest) -> None:
    with torch.device("meta"):  # shapes only: ViT-B without allocating 92 M weights
        model = METHODS.build("iml_vit")
    ours = [[keymap.official_key(k), list(v.shape), str(v.dtype).removeprefix("torch.")]
            for k, v in model.state_dict().items()]
    assert ours == manifest["state_dict"]  # every name, shape, dtype and the order
    assert sum(p.numel() for p in model.parameters()) == manifest["n_params"] == 91_777_729
    assert model.input_policy.mode == "canvas" and model.input_policy.size == 1024
    assert model.input_policy.pad_value == 0.0


def test_key_mapping_is_a_bijection_on_the_manifest(manifest) -> None:
    official = [k for k, _, _ in manifest["state_dict"]]
    ours = [keymap.our_key(k) for k in official]
    assert len(set(ours)) == len(official)
    assert [keymap.official_key(k) for k in ours] == official
    assert "pyramid.p2.resample.norm.weight" in ours and "head.fuse.weight" in ours


def test_unknown_official_key_is_an_error_naming_it() -> None:
    with pytest.raises(CheckpointError, match="decoder.weight"):
        keymap.our_key("decoder.weight")


# -- released container through the checkpoint path ---------------------------------------------
@pytest.mark.parametrize("wrap", ["bare", "model"])
def test_released_container_loads_strictly(tmp_path, wrap) -> None:
    official = keymap.ours_to_official(_randomised(_tiny()).state_dict())
    path = tmp_path / "iml-vit_checkpoint.pth"
    torch.save(official if wrap == "bare" else {"model": official, "epoch": 3}, path)
    method = load_method("iml_vit", path, config=IMLViT.tiny_config())
    loaded = method.state_dict()
    assert set(loaded) == {keymap.our_key(k) for k in official}
    for key, value in official.items():
        assert torch.equal(loaded[keymap.our_key(key)], value), key


def test_released_file_runs_through_the_cli(tmp_path, capsys) -> None:
    official = keymap.ours_to_official(_randomised(_tiny()).state_dict())
    path = tmp_path / "iml-vit_checkpoint.pth"
    torch.save(official, path)
    make_folder_dataset(tmp_path / "tiny", sizes=((24, 32), (70, 50)))  # 70 > the 64 canvas
    config = config_args(IMLViT.tiny_config())
    capsys.readouterr()
    assert main(["run", "--method", "iml_vit", "--checkpoint", str(path), *config, "--dataset",
                 str(tmp_path / "tiny"), "--results-dir", str(tmp_path / "res"), "--workers", "0",
                 "--json", "--quiet"]) == 0
    (cell,) = json.loads(capsys.readouterr().out)["results"]
    assert cell["n_images"] == 5


def test_training_checkpoint_needs_trust(tmp_path) -> None:
    """main_train.py's own files hold an argparse.Namespace: refused unless trusted."""
    official = keymap.ours_to_official(_randomised(_tiny()).state_dict())
    path = tmp_path / "checkpoint-10.pth"
    torch.save({"model": official, "epoch": 10, "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(UntrustedCheckpointError, match="trust-checkpoint"):
        load_method("iml_vit", path, config=IMLViT.tiny_config())
    method = load_method("iml_vit", path, config=IMLViT.tiny_config(), trust_checkpoint=True)
    assert torch.equal(method.head.fuse.weight, official["predict_head.linear_fuse.weight"])


def test_checkpoint_of_another_architecture_names_the_keys(tmp_path) -> None:
    state = keymap.ours_to_official(_tiny().state_dict())
    del state["predict_head.linear_predict.bias"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="head.predict.bias"):
        load_method("iml_vit", path, config=IMLViT.tiny_config())


# -- exact ops ----------------------------------------------------------------------------------
def test_padding_is_black_pixels_before_normalising() -> None:
    model = _randomised(_tiny())
    image = torch.rand(1, 3, 40, 50)
    prob = model.predict(image).mask_prob
    assert prob.shape == (1, 1, 40, 50)
    canvas = torch.zeros(1, 3, 64, 64)
    canvas[:, :, :40, :50] = image
    with torch.no_grad():
        expected = torch.sigmoid(model((canvas - model.mean) / model.std))[:, :, :40, :50]
        zero_after = torch.sigmoid(model(F.pad((image - model.mean) / model.std, (0, 14, 0, 24))))
    assert torch.allclose(prob, expected, atol=1e-6)
    assert prob.max() - prob.min() > 0.1  # a map worth comparing
    assert (prob - zero_after[:, :, :40, :50]).abs().max() > 1e-2


def test_predict_refuses_inputs_larger_than_the_canvas() -> None:
    with pytest.raises(ValueError, match="canvas"):
        _tiny().predict(torch.rand(1, 3, 65, 64))


def test_window_partition_pads_and_round_trips() -> None:
    x = torch.randn(2, 8, 8, 5)
    windows, padded = to_windows(x, 3)
    assert padded == (9, 9) and windows.shape == (2 * 9, 3, 3, 5)
    assert torch.equal(windows[8, 2, 2], torch.zeros(5))  # bottom-right window: padding
    assert torch.equal(from_windows(windows, 3, padded, (8, 8)), x)


def test_decomposed_relative_positions_match_a_loop() -> None:
    torch.manual_seed(0)
    attn_mod = Attention(dim=8, num_heads=2, grid=3)
    with torch.no_grad():
        attn_mod.rel_pos_h.normal_()
        attn_mod.rel_pos_w.normal_()
    h = w = 3
    q = torch.randn(2, h * w, 4)
    base = torch.randn(2, h * w, h * w)
    got = attn_mod._add_relative_positions(base.clone(), q, h, w)
    want = base.clone()
    for n in range(2):
        for i in range(h * w):
            for j in range(h * w):
                (qy, qx), (ky, kx) = divmod(i, w), divmod(j, w)
                want[n, i, j] += q[n, i] @ attn_mod.rel_pos_h[qy - ky + h - 1]
                want[n, i, j] += q[n, i] @ attn_mod.rel_pos_w[qx - kx + w - 1]
    assert torch.allclose(got, want, atol=1e-5)


def test_position_embedding_is_resized_bicubically_on_every_forward() -> None:
    model = _tiny()
    grid = model.encoder.pos_embed[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(8, 8), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    assert torch.equal(model.encoder.position_embedding(8, 8), want)
    image = torch.rand(1, 3, 64, 64)
    before = model.predict(image).mask_prob
    with torch.no_grad():
        model.encoder.pos_embed[:, 0] += 5.0  # the cls slot is dropped: no effect
    assert torch.equal(model.predict(image).mask_prob, before)


# -- loss ---------------------------------------------------------------------------------------
def test_edge_band_by_hand() -> None:
    mask = torch.zeros(1, 1, 1, 7)
    mask[..., 3:] = 1  # boundary between columns 2 and 3
    # width 3: dilation of the mask covers columns 2..6, of its complement 0..3 -> band 2..3
    assert edge_band(mask, 3).flatten().tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert edge_band(mask, 5).flatten().tolist() == [0, 1, 1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="edge_width"):
        edge_band(mask, 4)


def test_loss_by_hand() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0]).view(1, 1, 2, 2)
    mask = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
    edge = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)

    def bce(z: float, y: float) -> float:
        return -(y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-z))))

    per_pixel = [bce(2.0, 1), bce(-1.0, 0), bce(0.5, 0), bce(0.0, 1)]
    terms = iml_vit_loss(logits, mask, edge, edge_lambda=20.0)
    assert terms["bce"].item() == pytest.approx(sum(per_pixel) / 4, abs=1e-6)
    # the edge term is a mean over all 4 pixels, not over the 2 edge pixels
    assert terms["edge"].item() == pytest.approx(20 * (per_pixel[1] + per_pixel[2]) / 4, abs=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["bce"].item() + terms["edge"].item())


def test_loss_pads_to_the_canvas_after_the_edge_band() -> None:
    model = _tiny()
    model.train()
    image, mask = torch.rand(2, 3, 32, 48), torch.zeros(2, 1, 32, 48)
    mask[0, :, 10:20, 30:48] = 1  # touches the right edge of the picture
    torch.manual_seed(3)
    terms = model.loss({"image": image, "mask": mask, "label": torch.tensor([1, 0])})
    torch.manual_seed(3)  # same dropout / drop-path draws
    logits = model(model.normalise(F.pad(image, (0, 16, 0, 32))))
    edge = F.pad(edge_band(mask, 7), (0, 16, 0, 32))  # band of the unpadded mask, then padded
    want = iml_vit_loss(logits, F.pad(mask, (0, 16, 0, 32)), edge, 20.0)
    for key in ("loss", "bce", "edge"):
        assert terms[key].item() == pytest.approx(want[key].item(), rel=1e-6)
    terms["loss"].backward()
    assert model.encoder.blocks[0].attn.rel_pos_h.grad.abs().sum() > 0


# -- MAE initialisation -------------------------------------------------------------------------
def _mae_file(tmp_path: Path, model: IMLViT, extra: dict | None = None, drop: str | None = None) -> Path:
    state = {k: torch.randn(v.shape) for k, v in model.encoder.state_dict().items()
             if ".rel_pos_" not in k}
    state.update({"cls_token": torch.zeros(1, 1, 32), "norm.weight": torch.ones(32),
                  "norm.bias": torch.zeros(32), **(extra or {})})
    if drop:
        del state[drop]
    path = tmp_path / "mae_pretrain_vit_base.pth"
    torch.save({"model": state}, path)
    return path


def test_mae_weights_fill_the_encoder_strictly(tmp_path) -> None:
    path = _mae_file(tmp_path, _tiny())
    model = _tiny(pretrained_path=str(path))
    mae = torch.load(path, weights_only=True)["model"]
    for key, value in model.encoder.state_dict().items():
        if ".rel_pos_" in key:
            assert not value.any(), key  # not in MAE: zero, as in the official code
        else:
            assert torch.equal(value, mae[key]), key


@pytest.mark.parametrize("change", ["extra", "missing"])
def test_mae_file_with_other_keys_is_refused(tmp_path, change) -> None:
    model = _tiny()
    path = (_mae_file(tmp_path, model, extra={"decoder_embed.weight": torch.zeros(2, 2)})
            if change == "extra" else _mae_file(tmp_path, model, drop="blocks.0.mlp.fc1.weight"))
    with pytest.raises(CheckpointError, match="decoder_embed.weight" if change == "extra" else "fc1"):
        _tiny(pretrained_path=str(path))


def test_missing_mae_file_says_where_to_get_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="mae_pretrain_vit_base.pth"):
        _tiny(pretrained_path=str(tmp_path / "nope.pth"))


# -- config and recipes -------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [("canvas", 60), ("head_norm", "GN"), ("oversize", "tile"),
                                         ("edge_width", 6), ("global_blocks", (5,))])
def test_bad_config_names_the_field(field, value) -> None:
    with pytest.raises(ConfigError, match=field):
        _tiny(**{field: value})


def test_oversize_choice_reaches_the_input_policy() -> None:
    assert _tiny().input_policy.oversize == "resize"
    policy = _tiny(oversize="crop").input_policy
    assert (policy.mode, policy.size, policy.oversize) == ("canvas", 64, "crop")


def test_paper_recipe_is_the_published_setting() -> None:
    rcp = load_recipe("paper", "iml_vit")
    assert (rcp.batch_size, rcp.grad_accum) == (1, 8)
    assert rcp.optimizer["lr"] == 1e-4 and rcp.optimizer["weight_decay"] == 0.05
    assert rcp.schedule["name"] == "cosine" and rcp.schedule["min_lr_ratio"] == pytest.approx(5e-3)
    assert rcp.method["pretrained_path"].endswith("mae_pretrain_vit_base.pth")
    # timm's rule: no weight decay on 1-D parameters (biases and norms), decay on the rest
    model = _tiny()
    opt = build_optimizer(model, list(model.parameters()), rcp.optimizer)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert decay[id(p)] == (0.0 if p.ndim <= 1 else 0.05), name


def test_quick_recipe_builds_a_small_model() -> None:
    rcp = load_recipe("quick", "iml_vit")
    model = IMLViT(**rcp.method)
    assert model.config.canvas <= 256 and sum(p.numel() for p in model.parameters()) < 5e6
