"""The ``mpc`` method: official state_dict manifest, key mapping, stages and freezing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from timm.layers import DropPath

from imlbench.errors import CheckpointError
from imlbench.methods.mpc import MPC, load_official_checkpoint
from imlbench.methods.mpc import keymap
from imlbench.registry import METHODS

MANIFEST = Path(__file__).parent / "reference" / "mpc_official_state_dict.json"
"""Names and shapes of the official MPC state dicts (trimmed from the shared reference)."""


@pytest.fixture(scope="module")
def manifest() -> dict:
    """``stage1_encoder`` and ``stage2_model`` as ``{official key: shape}``, official order.

    The file stores the stage-2 model as ``"encoder." + <stage-1 key>`` followed by its
    decoder keys (how the official stage-2 model nests the stage-1 encoder)."""
    data = json.loads(MANIFEST.read_text())
    stage2 = {f"encoder.{k}": v for k, v in data["stage1_encoder"].items()}
    stage2.update(data["stage2_decoder"])
    return {**data, "stage2_model": stage2}


@pytest.fixture(scope="module")
def paper_model_on_meta() -> MPC:
    with torch.device("meta"):  # shapes only: HRFormer-B without allocating 44 M weights
        return METHODS.build("mpc")


def _batch(fill: float | None = None, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(2, 1, size, size)
    if fill is None:
        mask[0, :, 8:40, 16:48] = 1  # image 0 tampered, image 1 authentic
    else:
        mask.fill_(fill)
    return {"image": torch.rand(2, 3, size, size, generator=g), "mask": mask,
            "label": mask.flatten(1).amax(1).long()}


def _tiny(**overrides) -> MPC:
    torch.manual_seed(0)
    return METHODS.build("mpc", **{**MPC.tiny_config(), **overrides})


# -- official manifest and key mapping -------------------------------------------------------
def _shapes(state: dict, rename) -> dict[str, list[int]]:
    return {rename(k): list(v.shape) for k, v in state.items()}


def test_paper_model_matches_official_manifest(manifest, paper_model_on_meta) -> None:
    model = paper_model_on_meta
    stage1 = _shapes(model.encoder.state_dict(), lambda k: keymap.encoder_key(k, to_ours=False))
    stage2 = _shapes(model.state_dict(), lambda k: keymap.model_key(k, to_ours=False))
    assert stage1 == manifest["stage1_encoder"]  # every name and shape, params and buffers
    assert stage2 == manifest["stage2_model"]
    assert sum(p.numel() for p in model.encoder.parameters()) == manifest["stage1_encoder_params"]
    assert sum(p.numel() for p in model.head.parameters()) == manifest["stage2_decoder_params"]


def test_key_mapping_is_a_bijection_on_the_manifest(manifest) -> None:
    for section, rename in (("stage1_encoder", keymap.encoder_key), ("stage2_model", keymap.model_key)):
        official = list(manifest[section])
        ours = [rename(k, to_ours=True) for k in official]
        assert len(set(ours)) == len(official)
        assert [rename(k, to_ours=False) for k in ours] == official


def test_model_key_rejects_unknown_prefix() -> None:
    with pytest.raises(CheckpointError, match="decoder.classifier"):
        keymap.model_key("classifier.0.weight", to_ours=True)


def test_load_official_full_size_checkpoints(manifest, tmp_path) -> None:
    """Files shaped exactly like the official ones load with strict=True into the paper model."""
    model = METHODS.build("mpc").requires_grad_(False)

    def fake(section: str) -> dict[str, torch.Tensor]:
        return {k: torch.full(shape, 0.5) if shape else torch.tensor(7)
                for k, shape in manifest[section].items()}

    torch.save(fake("stage2_model"), tmp_path / "stage2.pth")
    assert load_official_checkpoint(model, tmp_path / "stage2.pth") == "stage2"
    assert float(model.head[2].weight[0, 0]) == 0.5
    assert int(model.encoder.stem.bn1.num_batches_tracked) == 7

    # Stage-1 file (bare encoder keys, the prefix the official stage-2 script failed to match).
    stage1 = {k: v * 2 for k, v in fake("stage1_encoder").items() if v.is_floating_point()}
    stage1.update({k: v for k, v in fake("stage1_encoder").items() if not v.is_floating_point()})
    torch.save(stage1, tmp_path / "stage1.pth")
    assert load_official_checkpoint(model, tmp_path / "stage1.pth") == "stage1"
    assert float(model.encoder.embed[0].conv.weight[0, 0]) == 1.0
    assert float(model.head[2].weight[0, 0]) == 0.5  # the head is left as it was


def test_official_round_trip_and_strict_mismatch(tmp_path) -> None:
    source = _tiny()
    torch.manual_seed(1)
    target = METHODS.build("mpc", **MPC.tiny_config())
    assert not torch.equal(source.encoder.stem.conv1.weight, target.encoder.stem.conv1.weight)
    torch.save(keymap.ours_to_official(source.state_dict(), "stage2"), tmp_path / "s2.pth")
    load_official_checkpoint(target, tmp_path / "s2.pth")
    loaded = target.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded[key]), key
    with pytest.raises(RuntimeError, match="head_widths"):
        load_official_checkpoint(_tiny(head_widths=(16, 8, 8)), tmp_path / "s2.pth")
    with pytest.raises(FileNotFoundError, match="README"):
        load_official_checkpoint(target, tmp_path / "missing.pth")


# -- construction ----------------------------------------------------------------------------
def test_config_follows_kwargs() -> None:
    model = _tiny(input_size=96, stage1=False)
    assert model.input_policy.mode == "resize" and model.input_policy.size == 96
    assert model.stages == ("2",)
    assert METHODS.build("mpc", **MPC.tiny_config()).stages == ("1", "2")


@pytest.mark.parametrize("kwargs, match", [
    ({"views": ("within", "global")}, "views"),
    ({"stage1": False, "freeze_encoder": True}, "random frozen encoder"),
    ({"loss_form": "supcon"}, "loss_form"),
    ({"backbone": "huge"}, "backbone"),
    ({"input_size": 100}, "multiple of 32"),
])
def test_bad_config_is_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(TypeError, match="head_loss"):
        METHODS.build("mpc", head_los="ce")


def test_predict_returns_probabilities_at_a_quarter_of_the_input() -> None:
    model = _tiny().eval()  # the runner resizes them to the image as the official test does
    pred = model.predict(_batch()["image"])
    assert pred.mask_prob.shape == (2, 1, 16, 16) and pred.image_score is None
    assert 0 <= pred.mask_prob.min() and pred.mask_prob.max() <= 1


# -- stage 1 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["code", "paper"])
def test_stage1_step_trains_the_encoder_only(form: str) -> None:
    model = _tiny(loss_form=form)
    model.set_stage("1")
    model.train()
    out = model.loss(_batch())
    assert set(out) == {"loss", "within", "scale", "view"}
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in model.encoder.parameters()}
    assert all(p.grad is None for p in model.head.parameters())


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("fill", [0.0, 1.0], ids=["authentic_only", "fully_tampered"])
def test_stage1_single_class_batches_give_zero_not_nan(form: str, fill: float) -> None:
    model = _tiny(loss_form=form)
    model.set_stage("1")
    out = model.loss(_batch(fill))
    assert all(v.item() == 0.0 for v in out.values()), out
    out["loss"].backward()  # still differentiable (a zero gradient)


def test_stage1_views_subset_runs_one_pass() -> None:
    model = _tiny(views=("within", "scale"))
    model.set_stage("1")
    calls = []
    model.encoder.register_forward_hook(lambda *_: calls.append(1))
    out = model.loss(_batch())
    assert set(out) == {"loss", "within", "scale"} and len(calls) == 1


def test_stage1_sampling_follows_the_global_seed() -> None:
    """The pixel draws come from torch's global RNG, which the training loop seeds and saves."""
    model = _tiny(max_samples=8, drop_path_rate=0.0)  # only the sampling is random
    model.set_stage("1")

    def losses(seed: int) -> list[float]:
        torch.manual_seed(seed)
        return [model.loss(_batch())["loss"].item() for _ in range(2)]

    first = losses(0)
    assert first == losses(0)  # same seed, same draws
    assert first[0] != first[1]  # a new draw each step
    assert first != losses(1)


# -- stage 2 ---------------------------------------------------------------------------------
def test_stage2_frozen_encoder_is_unchanged_after_a_step() -> None:
    model = _tiny()
    model.set_stage("1")
    model.set_stage("2")
    model.train()  # what a training loop does every epoch: must not unfreeze the encoder
    assert not model.encoder.training and model.head.training
    assert all(not m.training for m in model.encoder.modules() if isinstance(m, DropPath))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = model.head[2].weight.clone()
    params = model.trainable_parameters()
    assert {id(p) for p in params} == {id(p) for p in model.head.parameters()}
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    out = model.loss(_batch())
    assert set(out) == {"loss", "focal"}
    out["loss"].backward()
    optimizer.step()
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights, BN stats, counters
    assert not torch.equal(head_before, model.head[2].weight)
    feats = [model.features(_batch()["image"]) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*feats))  # no drop-path: deterministic


def test_without_stage1_trains_encoder_and_head_jointly() -> None:
    model = _tiny(stage1=False, head_loss="ce")
    with pytest.raises(ValueError, match="stages"):
        model.set_stage("1")
    model.set_stage("2")
    model.train()
    assert model.encoder.training
    assert len(model.trainable_parameters()) == len(list(model.parameters()))
    out = model.loss(_batch())
    assert set(out) == {"loss", "ce"}
    out["loss"].backward()
    assert model.encoder.stem.conv1.weight.grad is not None


def test_registered_ablation_without_stage1() -> None:
    assert METHODS.get("mpc_no_stage1").stages == ("2",)  # what the training loop reads
    model = METHODS.build("mpc_no_stage1", **MPC.tiny_config())
    assert model.config.stage1 is False and model.stages == ("2",)
    with pytest.raises(ValueError, match="always skips"):
        METHODS.build("mpc_no_stage1", stage1=True)


def test_loss_before_set_stage_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="set_stage"):
        _tiny().loss(_batch())
