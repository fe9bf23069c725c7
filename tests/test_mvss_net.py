"""MVSS-Net (``mvss_net``): the official state_dict through our key mapping, the released
container through ``--checkpoint``, the official preprocessing and post-processing, the Bayar
constraint, and the reconstructed paper loss against hand-computed values."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from imlbench.errors import CheckpointError, ConfigError, UnknownOptionError
from imlbench.methods.mvss_net import MVSSNet, map_key, ours_to_official
from imlbench.methods.mvss_net.layers import BayarConv
from imlbench.methods.mvss_net.losses import (LossSettings, boundary, dice_loss, edge_target,
                                              mvss_losses)
from imlbench.methods.mvss_net.network import grey_view

MANIFEST = Path(__file__).parent / "reference" / "zoo" / "mvss_net.json"


def tiny(**overrides) -> MVSSNet:
    return MVSSNet(**{**MVSSNet.tiny_config(), **overrides})


def randomised(method: MVSSNet, seed: int = 0) -> MVSSNet:
    """Every tensor of the state_dict random (BN statistics, gains, counters), so a key that
    went to the wrong place shows; the Bayar taps un-normalised and stored through a permuted
    view, as the released kernel probably is."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in method.state_dict().items():
            if t.dtype == torch.int64:
                t.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
        kernel = method.net.bayar.kernel
        kernel.data = (torch.rand(24, 1, 3, generator=g) + 0.1).permute(1, 2, 0)
    return method


# -- the official state_dict ---------------------------------------------------------------
def test_the_default_model_is_the_official_architecture():
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        method = MVSSNet()
    official = ours_to_official(method.state_dict())
    got = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in official.items()}
    want = {name: (shape, dtype) for name, shape, dtype in manifest["state_dict"]}
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    assert got == want
    # the official count includes the 69,120 Sobel taps, which are buffers here (never trained)
    sobel = sum(b.numel() for n, b in method.named_buffers() if ".sobel." in n and "kernel" in n)
    assert sobel == 69_120
    assert sum(p.numel() for p in method.parameters()) + sobel == manifest["n_params"]


def test_the_key_mapping_is_one_to_one_and_says_what_it_does_not_know():
    for official, ours in [("model.layer4.2.conv2.weight", "net.rgb_backbone.layer4.2.conv2.weight"),
                           ("noise_extractor.model.fc.bias", "net.noise_backbone.fc.bias"),
                           ("constrain_conv.kernel", "net.bayar.kernel"),
                           ("sobel_y4.0.weight", "net.edge.sobel.3.kernel_y"),
                           ("sobel_x1.1.running_var", "net.edge.sobel.0.norm_x.running_var"),
                           ("erb_db_2.bn.weight", "net.edge.reduce.1.bn.weight"),
                           ("erb_trans_3.conv3.bias", "net.edge.fuse.2.conv3.bias"),
                           ("head.pam.alpha", "net.head.pam.alpha")]:
        assert map_key(official, to_ours=True) == ours
        assert map_key(ours, to_ours=False) == official
    with pytest.raises(CheckpointError, match="not a key of an official MVSS-Net"):
        map_key("decoder.weight", to_ours=True)
    with pytest.raises(CheckpointError, match="not a key of an official MVSS-Net"):
        map_key("erb_trans_4.conv1.weight", to_ours=True)  # there are three fusing ERBs


def test_the_backbone_is_dilated_multi_grid_at_output_stride_16():
    with torch.device("meta"):  # the dilations are in the modules, not in the state_dict
        method = MVSSNet()
    layer4 = method.net.rgb_backbone.layer4
    assert [b.conv2.dilation[0] for b in layer4] == [1, 2, 4]
    assert [b.conv2.stride[0] for b in layer4] == [1, 1, 1]
    feats = tiny().net.rgb_backbone(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 4]


# -- the released container ----------------------------------------------------------------
def write_released(method: MVSSNet, path: Path) -> dict[str, torch.Tensor]:
    """The released format: a bare state_dict in the official names, saved with torch.save's
    legacy (pre-1.6) serialisation, as torch 1.5.1 (requirements.txt) writes it."""
    state = ours_to_official(method.state_dict())
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return state


def test_a_released_file_loads_strictly_with_every_tensor(tmp_path):
    from imlbench.benchmark.loading import load_method

    source = randomised(tiny())
    path = tmp_path / "mvssnet_casia.pt"
    official = write_released(source, path)
    loaded = load_method("mvss_net", path, config=MVSSNet.tiny_config())  # weights_only: untrusted
    got = loaded.state_dict()
    assert len(got) == len(official)
    for key, value in official.items():
        assert torch.equal(got[map_key(key, to_ours=True)], value), key
    assert not loaded.training


def test_a_released_file_runs_through_the_cli(tmp_path, capsys):
    from imlbench.cli import main
    from tests.helpers import config_args, make_folder_dataset

    path = tmp_path / "mvssnet_defacto.pt"
    write_released(randomised(tiny()), path)
    make_folder_dataset(tmp_path / "tiny", n_tampered=2, n_authentic=1)
    argv = ["run", "--method", "mvss_net", "--checkpoint", str(path), "--dataset",
            str(tmp_path / "tiny"), "--results-dir", str(tmp_path / "res"), "--workers", "0",
            "--json", "--quiet"]
    argv += config_args(MVSSNet.tiny_config())
    capsys.readouterr()
    assert main(argv) == 0
    (cell,) = json.loads(capsys.readouterr().out)["results"]
    assert cell["n_images"] == 3 and cell["metrics"]["pixel_auc"] is not None


@pytest.mark.parametrize("container, message", [
    (lambda s: {"model_dict": s}, "bare state_dict"),  # MVSS-Net++'s container
    (lambda s: {f"module.{k}": v for k, v in s.items()}, "module."),
])
def test_other_containers_are_refused_in_one_line(tmp_path, container, message):
    path = tmp_path / "other.pt"
    torch.save(container(ours_to_official(tiny().state_dict())), path)
    with pytest.raises(CheckpointError, match=message) as info:
        MVSSNet.read_official_checkpoint(path, trust=False)
    assert "\n" not in str(info.value)


def test_a_file_of_another_size_names_the_mismatch(tmp_path):
    from imlbench.benchmark.loading import load_method

    path = tmp_path / "mvssnet_casia.pt"
    write_released(tiny(), path)
    with pytest.raises(CheckpointError, match="does not fit method 'mvss_net'"):
        load_method("mvss_net", path, config={**MVSSNet.tiny_config(), "backbone_width": 4})


def test_imagenet_initialisation_fills_both_views_from_a_torchvision_file(tmp_path):
    source = randomised(tiny()).net.rgb_backbone.state_dict()
    # torchvision's resnet50-19c8e357.pth predates the BatchNorm batch counters
    torch.save({k: v for k, v in source.items() if not k.endswith("num_batches_tracked")},
               tmp_path / "resnet.pth")
    method = tiny(pretrained_path=str(tmp_path / "resnet.pth"))
    for view in (method.net.rgb_backbone, method.net.noise_backbone):
        got = view.state_dict()
        assert all(torch.equal(got[k], v) for k, v in source.items() if "num_batches" not in k)
    with pytest.raises(ConfigError, match="pretrained_path"):
        tiny(pretrained_path=str(tmp_path / "missing.pth"))


# -- inference as the official code --------------------------------------------------------
def test_the_input_is_bgr_with_the_statistics_in_their_listed_order():
    method = tiny()
    rgb = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    x = method.normalize(rgb).flatten().tolist()
    assert x == pytest.approx([(0.6 - 0.485) / 0.229, (0.4 - 0.456) / 0.224, (0.2 - 0.406) / 0.225])
    assert tiny(channel_order="rgb").normalize(rgb).flatten().tolist() == pytest.approx(
        [(0.2 - 0.485) / 0.229, (0.4 - 0.456) / 0.224, (0.6 - 0.406) / 0.225])
    # the official rgb2gray reads channel 0 of its (BGR) input as blue
    assert grey_view(torch.eye(3).view(3, 3, 1, 1)).flatten().tolist() == pytest.approx(
        [0.1140, 0.5870, 0.2989])


def test_the_policy_is_cv2_linear_to_512_and_back():
    with torch.device("meta"):
        policy = MVSSNet().input_policy
    assert (policy.mode, policy.size, policy.kernel, policy.output_kernel) == \
        ("resize", 512, "cv2_linear", "cv2_linear_u8")  # the 8-bit map goes back as uint8
    with torch.device("meta"):
        assert MVSSNet(quantize_8bit=False).input_policy.output_kernel == "cv2_linear"


def test_the_map_is_8_bit_as_the_official_pngs_and_the_score_rule_is_selectable():
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    method = randomised(tiny()).eval()
    stored = method.predict(images)
    assert stored.image_score is None  # the runner takes the max of the map at the original size
    level = stored.mask_prob * 255
    assert torch.equal(level, level.round())
    method.config = type(method.config)(**{**MVSSNet.tiny_config(), "quantize_8bit": False,
                                           "image_score": "network_map"})
    raw = method.predict(images)
    assert torch.equal(stored.mask_prob, torch.floor(raw.mask_prob * 255) / 255)
    assert torch.equal(raw.image_score, raw.mask_prob.flatten(1).amax(1))
    assert raw.extra_maps["edge"].shape == raw.mask_prob.shape


def test_the_bayar_kernel_is_normalised_on_every_forward():
    layer = BayarConv()
    taps = torch.arange(1.0, 73.0).view(1, 3, 24)
    layer.kernel.data = taps.clone()
    layer.eval()
    weight = layer.constrained_kernel()
    assert weight.shape == (3, 1, 5, 5)
    flat = weight.flatten(1)
    assert torch.equal(flat[:, 12], torch.full((3,), -1.0))
    assert torch.allclose(flat.sum(1), torch.zeros(3), atol=1e-6)  # taps sum to 1, centre -1
    assert torch.allclose(flat[0, :12], taps[0, 0, :12] / taps[0, 0].sum())
    assert torch.equal(layer.kernel, taps)  # eval leaves the stored taps alone
    layer.train()
    layer(torch.zeros(1, 1, 8, 8))
    assert torch.allclose(layer.kernel.sum(-1), torch.ones(1, 3))  # training projects them


# -- the paper loss, by hand ---------------------------------------------------------------
def test_dice_loss_by_hand():
    prob = torch.tensor([[0.5, 1.0], [0.0, 0.25]]).view(1, 1, 2, 2)
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    # 2·Σpg = 3, Σp² = 1.3125, Σg² = 2
    assert dice_loss(prob, target).item() == pytest.approx(1 - 3 / 3.3125)
    assert dice_loss(prob, target, smooth=1.0).item() == pytest.approx(1 - 4 / 4.3125)


def test_the_edge_target_is_the_boundary_band_pooled_to_the_edge_map():
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 1:4, 1:4] = 1
    band = torch.ones(5, 5)
    band[2, 2] = 0
    assert torch.equal(boundary(mask, 3)[0, 0], band)
    assert torch.equal(boundary(mask, 1), torch.zeros_like(mask))
    big = torch.zeros(1, 1, 8, 8)
    big[..., :4, :4] = 1  # band (width 3): rows 3-4 and cols 3-4 of the dilated 5×5 corner
    assert edge_target(big, (4, 4), 3)[0, 0].tolist() == [
        [0, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]]


def test_the_combined_loss_by_hand():
    seg_logits = torch.zeros(2, 1, 4, 4)  # p = 0.5 everywhere
    edge_logits = torch.zeros(2, 1, 2, 2)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2, :2] = 1
    label = torch.tensor([1, 0])
    settings = LossSettings(edge_width=3)
    out = mvss_losses(seg_logits, edge_logits, mask, label, settings)
    # seg (tampered image only): 2·Σpg = 4, Σp² = 4, Σg² = 4 -> 1 - 4/8
    assert out["seg"].item() == pytest.approx(0.5)
    # the band around the 2×2 square touches all four 2×2 cells: Dice 1 - 4/(1 + 4)
    assert out["edge"].item() == pytest.approx(0.2)
    assert out["clf"].item() == pytest.approx(math.log(2))  # BCE(GMP = 0.5) for either label
    assert out["loss"].item() == pytest.approx(0.16 * 0.5 + 0.04 * math.log(2) + 0.8 * 0.2)

    both = mvss_losses(seg_logits, edge_logits, mask, label,
                       LossSettings(edge_width=3, authentic_pixel_losses=True))
    assert both["seg"].item() == pytest.approx((0.5 + 1.0) / 2)  # an empty target: Dice loss 1
    assert both["edge"].item() == pytest.approx((0.2 + 1.0) / 2)

    double = mvss_losses(seg_logits, edge_logits, mask, label,
                         LossSettings(edge_width=3, clf_double_sigmoid=True))
    assert double["clf"].item() == pytest.approx(
        (math.log(1 + math.exp(-0.5)) + math.log(1 + math.exp(0.5))) / 2)

    authentic = mvss_losses(seg_logits, edge_logits, mask, torch.tensor([0, 0]), settings)
    assert authentic["seg"].item() == 0 and authentic["edge"].item() == 0
    assert authentic["loss"].item() == pytest.approx(0.04 * math.log(2))


def test_the_loss_trains_every_branch():
    method = randomised(tiny()).train()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 10:40, 20:50] = 1
    out = method.loss({"image": images, "mask": mask, "label": torch.tensor([1, 0])})
    out["loss"].backward()
    for part in ("rgb_backbone", "noise_backbone", "edge", "head", "bayar"):
        grads = [p.grad for n, p in method.net.named_parameters() if n.startswith(part)]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), part


# -- config errors -------------------------------------------------------------------------
def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="channel_order"):
        MVSSNet(channel_order="yuv")
    with pytest.raises(ConfigError, match="layer4_dilations"):
        MVSSNet(layer4_dilations=(1, 2))
    with pytest.raises(ConfigError, match="edge_width"):
        MVSSNet(edge_width=4)
    with pytest.raises(UnknownOptionError, match="sobel"):
        MVSSNet(sobel=False)
