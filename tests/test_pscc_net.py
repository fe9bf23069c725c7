"""PSCC-Net: the official architecture's names and shapes, the released folder layouts, the
grid and output resampling, and the losses against hand-computed values."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from imlbench.methods.pscc_net import PSCCNet, to_official
from imlbench.methods.pscc_net.losses import balanced_bce, detection_ce, mask_pyramid

MANIFEST = Path(__file__).parent / "reference" / "zoo" / "pscc_net.json"


def tiny_model(seed: int = 0) -> PSCCNet:
    torch.manual_seed(seed)
    return PSCCNet(**PSCCNet.tiny_config()).eval()


def randomised(model: PSCCNet, seed: int = 1) -> PSCCNet:
    """Every tensor of the state_dict random (BN statistics and counters too), so a load that
    missed one would show."""
    g = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict().items():
        if t.dtype == torch.int64:
            t.fill_(int(torch.randint(1, 10**5, (1,), generator=g)))
        elif name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
        else:
            t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return model


# -- the official architecture -------------------------------------------------------------
def test_default_model_has_the_released_names_and_shapes():
    """The full-size default model, mapped to the official names, equals the manifest of the
    three released files (names, shapes and order)."""
    expected = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        model = PSCCNet()
    files = to_official(model.state_dict())
    assert list(files) == list(expected["files"])
    for name, state in files.items():
        got = [[k, list(v.shape)] for k, v in state.items()]
        assert got == expected["files"][name], name
    assert sum(p.numel() for p in model.parameters()) == expected["n_params"] == 3_667_942


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="grid"):
        PSCCNet(**{**PSCCNet.tiny_config(), "grid": 36})
    with pytest.raises(TypeError, match="crop_size"):
        PSCCNet(crop_size=256)


# -- the released folder --------------------------------------------------------------------
def write_released(model: PSCCNet, folder: Path, layout: str) -> None:
    """The three files as the official train.py saves them: bare ``module.``-prefixed
    state_dicts (``torch.save(nn.DataParallel(net).state_dict(), ...)``)."""
    for file, state in to_official(model.state_dict()).items():
        stem = file.removesuffix(".pth")
        target = {"flat": folder, "official": folder / f"{stem}_checkpoint",
                  "clone": folder / "checkpoint" / f"{stem}_checkpoint"}[layout]
        target.mkdir(parents=True, exist_ok=True)
        torch.save(state, target / file)


@pytest.mark.parametrize("layout", ["flat", "official", "clone"])
def test_released_folder_loads_strictly_in_both_layouts(layout, tmp_path):
    from imlbench.benchmark.loading import load_method

    source = randomised(tiny_model())
    write_released(source, tmp_path / "ckpt", layout)
    loaded = load_method("pscc_net", tmp_path / "ckpt", config=PSCCNet.tiny_config())
    expected, got = source.state_dict(), loaded.state_dict()
    assert got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k


def test_released_folder_runs_through_the_cli(tmp_path, capsys):
    from imlbench.cli import main
    from tests.helpers import config_args, make_folder_dataset

    write_released(randomised(tiny_model()), tmp_path / "ckpt", "official")
    make_folder_dataset(tmp_path / "tiny", n_tampered=2, n_authentic=1)
    argv = ["run", "--method", "pscc_net", "--checkpoint", str(tmp_path / "ckpt"),
            "--dataset", str(tmp_path / "tiny"), "--results-dir", str(tmp_path / "res"),
            "--workers", "0", "--json", "--quiet"]
    argv += config_args(PSCCNet.tiny_config())
    capsys.readouterr()
    assert main(argv) == 0
    (cell,) = json.loads(capsys.readouterr().out)["results"]
    assert cell["n_images"] == 3 and cell["metrics"]["pixel_auc"] is not None


def test_a_missing_file_is_one_line_naming_the_expected_layouts(tmp_path):
    write_released(tiny_model(), tmp_path, "flat")
    (tmp_path / "NLCDetection.pth").unlink()
    with pytest.raises(FileNotFoundError) as info:
        PSCCNet.read_official_checkpoint(tmp_path, trust=False)
    message = str(info.value)
    assert "\n" not in message and "lacks NLCDetection.pth" in message
    assert "HRNet.pth, NLCDetection.pth, DetectionHead.pth side by side" in message
    assert "NLCDetection_checkpoint/NLCDetection.pth" in message


def test_the_cli_says_which_files_a_folder_lacks_in_one_line(tmp_path, capsys):
    from imlbench.cli import main
    from tests.helpers import make_folder_dataset

    write_released(tiny_model(), tmp_path / "ckpt", "official")
    (tmp_path / "ckpt" / "HRNet_checkpoint" / "HRNet.pth").unlink()
    make_folder_dataset(tmp_path / "tiny", n_tampered=1, n_authentic=0)
    capsys.readouterr()
    code = main(["run", "--method", "pscc_net", "--checkpoint", str(tmp_path / "ckpt"),
                 "--dataset", str(tmp_path / "tiny"), "--results-dir", str(tmp_path / "res"),
                 "--workers", "0", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "lacks HRNet.pth" in err
    assert "Traceback" not in err


def test_files_without_the_dataparallel_prefix_are_refused(tmp_path):
    write_released(tiny_model(), tmp_path, "flat")
    state = torch.load(tmp_path / "HRNet.pth", weights_only=True)
    torch.save({k.removeprefix("module."): v for k, v in state.items()}, tmp_path / "HRNet.pth")
    with pytest.raises(ValueError, match="HRNet.pth has keys without the 'module.' prefix"):
        PSCCNet.read_official_checkpoint(tmp_path, trust=False)


# -- inference ------------------------------------------------------------------------------
def test_map_is_mask1_brought_to_the_image_with_align_corners():
    model = randomised(tiny_model())
    for m in model.modules():  # sane BN statistics for a non-degenerate map
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    images = torch.rand(1, 3, 45, 58)
    with torch.no_grad():
        (mask1, *_), logits = model.forward_all(images)
        pred = model.predict(images)
    assert mask1.shape[-2:] == (32, 32)  # the tiny grid, whatever the image size
    expected = F.interpolate(mask1, size=(45, 58), mode="bilinear", align_corners=True)
    assert torch.equal(pred.mask_prob, expected)
    assert torch.allclose(pred.image_score, torch.softmax(logits, 1)[:, 1])


def test_at_the_grid_size_the_feature_resampling_is_the_identity():
    """Training runs at the grid size (256² officially): the resampling to the grid and the
    map's way back are exact copies there."""
    model = randomised(tiny_model())
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features = model.backbone(images)
        from imlbench.methods.pscc_net.heads import to_grid
        for f, g in zip(features, to_grid(features, 32)):
            assert torch.equal(f, g)
        assert torch.equal(model.predict(images).mask_prob, model.forward_all(images)[0][0])


# -- losses, against values computed by hand -------------------------------------------------
def test_balanced_bce_matches_the_hand_computed_value():
    prob = torch.tensor([[0.9, 0.2], [0.4, 0.7]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # 1 positive of 4: weight 0.5 / (1/4) = 2 on it, 0.5 / (3/4) = 2/3 on the negatives
    by_hand = (2 * -math.log(0.9) + 2 / 3 * (-math.log(0.8) - math.log(0.6) - math.log(0.3))) / 4
    assert balanced_bce(prob, target).item() == pytest.approx(by_hand, rel=1e-6)
    # no positive pixel: plain mean BCE (the official "balance is not working" case)
    plain = (-math.log(0.1) - math.log(0.8) - math.log(0.6) - math.log(0.3)) / 4
    assert balanced_bce(prob, torch.zeros(2, 2)).item() == pytest.approx(plain, rel=1e-6)
    # all positive: weight 0.5 everywhere
    allpos = 0.5 * (-math.log(0.9) - math.log(0.2) - math.log(0.4) - math.log(0.7)) / 4
    assert balanced_bce(prob, torch.ones(2, 2)).item() == pytest.approx(allpos, rel=1e-6)


def test_detection_ce_matches_the_hand_computed_value():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    label = torch.tensor([0, 3])  # any manipulation class counts as forged
    l0, l1 = math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1))
    by_hand = (4 * l0 + 4 / 3 * l1) / (4 + 4 / 3)  # class weights 1/0.25, 1/0.75
    assert detection_ce(logits, label, 0.25).item() == pytest.approx(by_hand, rel=1e-6)


def test_mask_pyramid_keeps_the_own_size_and_thresholds_the_smaller_ones():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :4] = 1
    full, half, quarter = mask_pyramid(mask, [(8, 8), (4, 4), (2, 2)])
    assert torch.equal(full, mask)
    expected_half = torch.zeros(1, 1, 4, 4)
    expected_half[..., :2, :2] = 1
    assert torch.equal(half, expected_half)
    assert torch.equal(quarter, torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))


def test_loss_is_the_unweighted_sum_of_the_four_masks_and_the_detection_term():
    model = tiny_model().train()
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 8:20, 4:16] = 1
    batch = {"image": torch.rand(2, 3, 32, 32), "mask": mask, "label": torch.tensor([1, 0])}
    terms = model.loss(batch)
    assert set(terms) == {"loss", "mask1", "mask2", "mask3", "mask4", "detection"}
    parts = sum(v for k, v in terms.items() if k != "loss")
    assert torch.allclose(terms["loss"], parts)
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
