"""CAT-Net v2: official names and shapes, the released container, the JPEG-domain input path
(runner and training stream), the official output rule and the weighted loss."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from imlbench.benchmark.loading import load_method
from imlbench.benchmark.runner import evaluate_cell
from imlbench.benchmark.train_data import TrainDataset
from imlbench.datasets.base import Dataset, Sample, load_image
from imlbench.datasets.jpeg_dct import decode_rgb, encode_reference_jpeg, read_jpeg_dct
from imlbench.methods.cat_net import CatNet, convert_official_state_dict
from imlbench.methods.cat_net.model import dct_volume
from imlbench.registry import METHODS
from imlbench.robustness import parse_spec
from imlbench.robustness.perturbations import encode_jpeg
from imlbench.weights import UntrustedCheckpointError

MANIFEST = Path(__file__).parent / "reference" / "zoo" / "cat_net.json"
TINY = CatNet.tiny_config()


def tiny(**overrides) -> CatNet:
    torch.manual_seed(0)
    model = CatNet(**{**TINY, **overrides})
    with torch.no_grad():  # non-trivial BatchNorm statistics, so every tensor matters
        for name, t in model.state_dict().items():
            if name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn_like(t) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
    return model.eval()


def official(model: CatNet) -> dict[str, torch.Tensor]:
    """Our state dict under the official names (what ``state_dict`` of ``CAT_Net`` holds)."""
    return {k.removeprefix("net."): v.clone() for k, v in model.state_dict().items()}


def released_file(path: Path, model: CatNet) -> Path:
    """A file as tools/train.py writes best.pth.tar (legacy pickle, numpy.float64 metric)."""
    state = official(model)
    torch.save({"epoch": 42, "best_p_mIoU": np.float64(0.61), "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.005, "momentum": 0.9}]}},
               path, _use_new_zipfile_serialization=False)
    return path


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = np.stack([128 + 70 * np.sin(xx / (4 + c) + yy / 9) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


# -- official names and shapes --------------------------------------------------------------------
def test_full_size_state_dict_is_the_released_one():
    manifest = json.loads(MANIFEST.read_text())
    with torch.device("meta"):
        model = METHODS.build("cat_net")
    ours = [[k.removeprefix("net."), list(v.shape)] for k, v in model.state_dict().items()]
    assert all(k.startswith("net.") for k in model.state_dict())
    assert ours == manifest["state_dict"]  # every name and shape, in order (2926 entries)
    assert sum(p.numel() for p in model.parameters()) == manifest["n_params"] == 114_263_810
    assert model.input_policy.mode == "native" and CatNet.file_inputs == ("jpeg_dct",)


def test_dct_only_variant_is_the_dct_stream_with_its_own_head():
    with torch.device("meta"):
        model = METHODS.build("cat_net", variant="dct_only")
    names = list(model.state_dict())
    assert not any(k.startswith(("net.conv1", "net.stage", "net.transition")) for k in names)
    assert model.state_dict()["net.last_layer.0.weight"].shape == (672, 672, 1, 1)
    assert sum(p.numel() for p in model.parameters()) == 43_536_554  # network_DCT.py, counted


# -- the released container ----------------------------------------------------------------------
def test_released_container_is_refused_untrusted_and_loads_trusted(tmp_path):
    source = tiny()
    path = released_file(tmp_path / "CAT_full_v2.pth.tar", source)
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load_method("cat_net", path, config=TINY)
    loaded = load_method("cat_net", path, config=TINY, trust_checkpoint=True)
    expected, got = source.state_dict(), loaded.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_released_container_runs_through_the_cli(tmp_path, capsys):
    from imlbench.cli import main
    from tests.helpers import config_args, make_folder_dataset

    path = released_file(tmp_path / "CAT_full_v2.pth.tar", tiny())
    make_folder_dataset(tmp_path / "data", n_tampered=1, n_authentic=1, sizes=((37, 45),))
    args = ["run", "--method", "cat_net", "--checkpoint", str(path), "--dataset",
            str(tmp_path / "data"), "--results-dir", str(tmp_path / "res"), "--workers", "0",
            "--quiet", "--device", "cpu"]
    args += config_args(TINY)
    assert main(args) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert main(args + ["--trust-checkpoint"]) == 0


def test_dct_only_file_loads_with_its_config_and_not_as_the_full_model(tmp_path):
    source = tiny(variant="dct_only")
    path = released_file(tmp_path / "DCT_only_v2.pth.tar", source)
    loaded = load_method("cat_net", path, config={**TINY, "variant": "dct_only"}, trust_checkpoint=True)
    assert torch.equal(loaded.net.last_layer[3].weight, source.net.last_layer[3].weight)
    with pytest.raises(Exception, match="conv1.weight"):  # the full model misses the RGB stream
        load_method("cat_net", path, config=TINY, trust_checkpoint=True)


def test_bare_or_dataparallel_state_dicts_are_accepted(tmp_path):
    source = tiny()
    path = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in official(source).items()}, path)
    loaded = load_method("cat_net", path, config=TINY)  # tensors only: no trust needed
    assert torch.equal(loaded.net.conv1.weight, source.net.conv1.weight)
    with pytest.raises(ValueError, match="epoch"):
        convert_official_state_dict({"epoch": 3})


# -- the output rule, normalisation and padding --------------------------------------------------
def test_map_is_the_softmax_of_logits_upsampled_to_the_8_padded_size():
    model = tiny()
    image = torch.from_numpy(picture(37, 45)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        images, extras = model.pixels_as_file(image)
        prob = model.predict(images, extras=extras).mask_prob
        logits = model.logits(images, extras)
    assert logits.shape == (1, 2, 10, 12) and prob.shape == (1, 1, 37, 45)
    expected = F.interpolate(logits, size=(40, 48), mode="bilinear", align_corners=False)
    assert torch.allclose(prob, expected.softmax(1)[:, 1:, :37, :45], atol=1e-6)
    assert prob.max() - prob.min() > 1e-3  # a map worth comparing
    rgb, volume, qtable = model.network_inputs(images, extras)
    assert rgb.shape == (1, 3, 40, 48) and torch.all(rgb[:, :, 37:] == 0) and torch.all(rgb[..., 45:] == 0)
    pixels = (images * 255).round()
    assert torch.allclose(rgb[:, :, :37, :45], (pixels - 127.5) / 127.5, atol=1e-6)
    assert volume.shape == (1, 21, 40, 48) and qtable.shape == (1, 8, 8)


def test_without_extras_the_pixels_are_treated_as_a_non_jpeg_file():
    model = tiny()
    pixels = picture(24, 32, seed=3)
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    data = encode_reference_jpeg(pixels)
    dct = read_jpeg_dct(data)
    decoded = torch.from_numpy(decode_rgb(data)).permute(2, 0, 1)[None].float() / 255
    extras = {"jpeg_dct.coef": torch.from_numpy(dct.coef)[None],
              "jpeg_dct.qtable": torch.from_numpy(dct.qtable)[None]}
    with torch.no_grad():
        assert torch.equal(model.predict(image).mask_prob, model.predict(decoded, extras=extras).mask_prob)


def test_coefficients_of_another_size_are_an_error():
    model = tiny()
    extras = {"jpeg_dct.coef": torch.zeros(1, 32, 32, dtype=torch.int16),
              "jpeg_dct.qtable": torch.ones(1, 8, 8)}
    with pytest.raises(ValueError, match="do not belong"):
        model.predict(torch.rand(1, 3, 40, 40), extras=extras)


def test_dct_volume_is_a_one_hot_of_the_clipped_magnitude():
    coef = torch.tensor([[[-25, -3, 0, 19, 20, 3]]], dtype=torch.int16)
    volume = dct_volume(coef)
    assert volume.shape == (1, 21, 1, 6) and torch.all(volume.sum(1) == 1)
    assert volume[0, :, 0].argmax(0).tolist() == [20, 3, 0, 19, 20, 3]


def test_qtable_enters_in_natural_order():
    """A transposed table is a different input (the official x1 = blocks * q[u, v])."""
    model = tiny()
    pixels = picture(32, 40, seed=5)
    data = encode_jpeg(pixels, 60)
    dct = read_jpeg_dct(data)
    image = torch.from_numpy(decode_rgb(data)).permute(2, 0, 1)[None].float() / 255
    extras = {"jpeg_dct.coef": torch.from_numpy(dct.coef)[None],
              "jpeg_dct.qtable": torch.from_numpy(dct.qtable)[None]}
    flipped = {**extras, "jpeg_dct.qtable": extras["jpeg_dct.qtable"].transpose(-1, -2)}
    with torch.no_grad():
        a = model.predict(image, extras=extras).mask_prob
        b = model.predict(image, extras=flipped).mask_prob
    assert (a - b).abs().max() > 1e-4


# -- the runner and the training stream feed the file's coefficients ------------------------------
class Spy(CatNet):
    """Records what ``predict`` receives."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []

    def predict(self, images, masks=None, extras=None):
        self.seen.append((images.clone(), {k: v.clone() for k, v in (extras or {}).items()}))
        return super().predict(images, masks, extras)


@pytest.fixture
def jpeg_and_png(tmp_path) -> Dataset:
    mask = np.zeros((37, 45), np.uint8)
    mask[5:20, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    Image.fromarray(picture(37, 45, 1)).save(tmp_path / "a.jpg", quality=80)
    Image.fromarray(picture(30, 41, 2)).save(tmp_path / "b.png")
    samples = [Sample("a", tmp_path / "a.jpg", tmp_path / "m.png", 1, "test"),
               Sample("b", tmp_path / "b.png", None, 0, "test")]
    return Dataset("jpeg_and_png", lambda: samples)


def _received(dataset: Dataset, spec: str) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    spy = Spy(**TINY)
    evaluate_cell(spy, dataset, perturbation=parse_spec(spec), device="cpu", num_workers=0,
                  progress=False)
    return spy.seen


def _as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255


def test_clean_cells_get_the_files_own_coefficients_or_the_q100_resave(jpeg_and_png):
    (img_a, ex_a), (img_b, ex_b) = _received(jpeg_and_png, "none")
    a, b = jpeg_and_png.samples
    own = read_jpeg_dct(a.image_path)
    assert torch.equal(ex_a["jpeg_dct.coef"][0], torch.from_numpy(own.coef))
    assert torch.equal(ex_a["jpeg_dct.qtable"][0], torch.from_numpy(own.qtable))
    assert torch.equal(img_a, _as_tensor(load_image(a.image_path)))
    resave = encode_reference_jpeg(load_image(b.image_path))
    assert torch.equal(ex_b["jpeg_dct.coef"][0], torch.from_numpy(read_jpeg_dct(resave).coef))
    assert torch.all(ex_b["jpeg_dct.qtable"] == 1)
    assert torch.equal(img_b, _as_tensor(decode_rgb(resave)))  # RGB of the re-save too


def test_a_jpeg_perturbation_feeds_the_coefficients_of_the_file_it_produced(jpeg_and_png):
    spec = parse_spec("jpeg:55")
    for (image, extras), s in zip(_received(jpeg_and_png, "jpeg:55"), jpeg_and_png.samples):
        pixels, data = spec.apply_encoded(load_image(s.image_path), s.sample_id)
        written = read_jpeg_dct(data)  # that file read back
        assert torch.equal(extras["jpeg_dct.coef"][0], torch.from_numpy(written.coef))
        assert torch.equal(extras["jpeg_dct.qtable"][0], torch.from_numpy(written.qtable))
        assert torch.equal(image, _as_tensor(decode_rgb(data)))
        assert extras["jpeg_dct.qtable"].max() > 1  # q55, not the q100 re-save


def test_after_a_pixel_perturbation_the_result_is_resaved_at_q100(jpeg_and_png):
    spec = parse_spec("gaussian_noise:3")
    (image, extras), _ = _received(jpeg_and_png, "gaussian_noise:3")
    s = jpeg_and_png.samples[0]
    resave = encode_reference_jpeg(spec.apply(load_image(s.image_path), s.sample_id))
    assert torch.equal(extras["jpeg_dct.coef"][0], torch.from_numpy(read_jpeg_dct(resave).coef))
    assert torch.equal(image, _as_tensor(decode_rgb(resave)))


def test_training_items_are_grid_crops_of_the_file_domain_input(jpeg_and_png):
    data = TrainDataset([jpeg_and_png.samples], 24, seed=0, file_inputs=("jpeg_dct",))
    coef_a = read_jpeg_dct(jpeg_and_png.samples[0].image_path).coef
    pixels_a = load_image(jpeg_and_png.samples[0].image_path)
    found = 0
    for position in range(6):
        item = data[position]
        assert item["image"].shape == (3, 24, 24) and item["jpeg_dct.coef"].shape == (24, 24)
        if torch.all(item["jpeg_dct.qtable"] == 1):
            continue  # the PNG's re-save
        coef = item["jpeg_dct.coef"].numpy()
        hits = [(t, l) for t in range(0, 17, 8) for l in range(0, 25, 8)
                if np.array_equal(coef, coef_a[t:t + 24, l:l + 24])]
        assert hits, "the crop is not on the 8x8 grid of the file's coefficients"
        t, l = hits[0]
        assert torch.equal(item["image"], torch.from_numpy(pixels_a[t:t + 24, l:l + 24]).permute(2, 0, 1) / 255.0)
        found += 1
    assert found
    batch = torch.utils.data.default_collate([data[0], data[1]])
    model = tiny().train()
    losses = model.loss(batch)
    losses["loss"].backward()
    assert model.net.conv1.weight.grad.abs().sum() > 0  # RGB stream
    assert model.net.dc_layer0_dil[0].weight.grad.abs().sum() > 0  # DCT stream


def test_loss_is_the_weighted_cross_entropy_at_mask_size():
    model = tiny()
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 4:20, 8:24] = 1
    batch = {"image": torch.rand(2, 3, 32, 32), "mask": mask, "label": torch.tensor([1, 0])}
    with torch.no_grad():
        logits = F.interpolate(model.logits(batch["image"]), size=(32, 32), mode="bilinear")
        w = torch.where(mask[:, 0] > 0, 2.5, 0.5)
        nll = -logits.log_softmax(1).gather(1, mask.long()).squeeze(1)
        assert torch.allclose(model.loss(batch)["loss"], (w * nll).sum() / w.sum(), atol=1e-6)


def test_example_inputs_count_the_dct_stream():
    from imlbench.benchmark.complexity import measure

    model = tiny()
    full = measure("cat_net", 64, method=model)
    assert full.params == sum(p.numel() for p in model.parameters()) and full.flops > 0
    assert full.input_shape == (1, 3, 64, 64)


def test_batchnorm_momentum_is_the_official_one_unless_configured():
    momenta = {m.momentum for m in tiny().modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.01}
    quick = {m.momentum for m in tiny(bn_momentum=0.1).modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert quick == {0.1}
