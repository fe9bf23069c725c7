"""The ``ncl`` method: registration, config, branches, ablations, and equality with ``seg_ce``."""
from __future__ import annotations

import pytest
import torch

from imlbench.methods.base import InputPolicy
from imlbench.methods.ncl import NCL, NCLConfig
from imlbench.methods.ncl_losses import PatchClass, label_patches
from imlbench.methods.seg_ce import SegCE
from imlbench.registry import METHODS

TINY = NCL.tiny_config()  # resnet10t, 32² input, 8-pixel patches -> 4×4 grid, 8×8 feature map
SIZE = TINY["input_size"]


def build(seed: int = 0, **overrides) -> NCL:
    torch.manual_seed(seed)
    return METHODS.build("ncl", **{**TINY, **overrides})


def make_batch(masks: torch.Tensor) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    n = masks.shape[0]
    return {"image": torch.rand(n, 3, SIZE, SIZE, generator=gen), "mask": masks,
            "label": (masks.flatten(1).amax(1) > 0).long()}


def square_mask(n: int = 2) -> torch.Tensor:
    """Tampered square rows/cols 4..19: tampered, authentic and contour patches at patch 8."""
    mask = torch.zeros(n, 1, SIZE, SIZE)
    mask[..., 4:20, 4:20] = 1
    return mask


def checkerboard_mask(n: int = 2) -> torch.Tensor:
    """Every patch mixes both kinds of pixel: only contour patches."""
    ij = torch.arange(SIZE)
    return ((ij[:, None] + ij[None, :]) % 2).float().expand(n, 1, SIZE, SIZE).clone()


def test_registered_as_trainable_with_paper_reference() -> None:
    entry = METHODS.entry("ncl")
    assert entry.obj is NCL and NCL.trainable
    assert "2309.14900" in NCL.reference and "ICCV 2023" in NCL.reference


def test_build_forwards_config_kwargs_and_input_policy_follows_size() -> None:
    m = build(contour="drop", temperature=0.2, input_size=64)
    assert m.config == NCLConfig(contour="drop", temperature=0.2, patch_size=8, proj_dim=8)
    assert m.heads["drop"][0].in_features == m.heads["drop"][0].out_features == 16  # hidden = C
    assert m.input_policy == InputPolicy("resize", 64)
    paper = NCL(backbone="resnet10t")
    assert paper.input_policy == InputPolicy("resize", 512) and paper.config.patch_size == 32


@pytest.mark.parametrize("input_size, patch_size", [(512, 32), (256, 16), (96, 4), (32, 4)])
def test_default_patch_size_keeps_a_16x16_grid_in_multiples_of_4(input_size: int, patch_size: int) -> None:
    assert build(input_size=input_size, patch_size=None).config.patch_size == patch_size


def test_unknown_option_names_the_closest_field() -> None:
    with pytest.raises(TypeError, match="Did you mean 'temperature'"):
        build(temprature=0.1)


@pytest.mark.parametrize("bad, match", [
    ({"contour": "both"}, "contour must be one of"),
    ({"patch_size": 6}, "multiple of the feature stride 4"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"contrast_weight": -1.0}, "weights must be >= 0"),
    ({"input_size": 30}, "input_size must be a multiple of 4"),
])
def test_bad_config_is_refused(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(**bad)


@pytest.mark.parametrize("contour, heads", [
    ("dual", ["tampered", "authentic"]), ("tampered", ["tampered"]),
    ("authentic", ["authentic"]), ("drop", ["drop"]),
])
def test_contour_policy_sets_branches(contour: str, heads: list[str]) -> None:
    m = build(contour=contour, pivot="both")
    terms = m.loss(make_batch(square_mask()))
    assert list(m.heads) == heads
    assert sorted(k for k in terms if k.startswith("supcon_")) == sorted(f"supcon_{h}" for h in heads)
    assert ("pivot" in terms) == (contour == "dual")


def test_loss_is_the_weighted_sum_of_its_terms() -> None:
    m = build(contrast_weight=0.3, consistency_weight=2.0, pivot="both")
    t = m.loss(make_batch(square_mask()))
    expected = t["ce"] + 0.3 * (t["supcon_tampered"] + t["supcon_authentic"]) / 2 + 2.0 * t["pivot"]
    assert t["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    m = build(contrast_weight=0.3, consistency_weight=2.0)  # alternate: one branch per step
    t = m.loss(make_batch(square_mask()))
    assert "supcon_authentic" not in t
    expected = t["ce"] + 0.3 * t["supcon_tampered"] + 2.0 * t["pivot"]
    assert t["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_default_pivot_is_the_papers_role_switching_and_is_always_labelled() -> None:
    """``alternate`` (the paper: roles switched while training) is the default; ``both`` was
    the default of the committed NCL study, so ``pivot`` always shows in ncl's label."""
    from imlbench.benchmark.evaluate import load

    assert NCLConfig().pivot == "alternate" and NCL.labelled_defaults == {"pivot": "alternate"}
    m = build()
    active = []
    for step in range(2):
        m.step_in_stage = step
        active.append(sorted(k for k in m.loss(make_batch(square_mask())) if k.startswith("supcon_")))
    assert active == [["supcon_tampered"], ["supcon_authentic"]]
    assert load("ela").label == "ela"  # other methods keep their bare names
    assert METHODS.get("ncl").labelled_defaults == {"pivot": "alternate"}


def test_paper_recipe_refuses_random_imagenet_weights(tmp_path) -> None:
    from imlbench.benchmark.recipes import load_recipe

    assert load_recipe("paper", "ncl").method["require_pretrained"] is True
    tiny = {**TINY, "require_pretrained": True}
    with pytest.raises(ValueError, match="pretrained_path=FILE.*require_pretrained=false"):
        build(**tiny)
    torch.manual_seed(0)
    weights = tmp_path / "resnet10t.pth"
    torch.save(build().net.encoder.state_dict(), weights)
    assert build(**tiny, pretrained_path=str(weights)).config == build().config
    assert isinstance(build(**{**tiny, "require_pretrained": False}), NCL)


def test_gradients_reach_both_branches_and_the_network() -> None:
    m = build()
    m.loss(make_batch(square_mask()))["loss"].backward()
    for role in ("tampered", "authentic"):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.heads[role].parameters())
    assert m.net.encoder.conv1[0].weight.grad.abs().sum() > 0


def test_alternate_pivot_switches_branch_and_consistency_still_trains_both() -> None:
    m = build(pivot="alternate", switch_every=2)
    active = []
    for step in range(4):
        m.step_in_stage = step  # what the training loop sets
        m.zero_grad()
        terms = m.loss(make_batch(square_mask()))
        terms["loss"].backward()
        active.append([k for k in terms if k.startswith("supcon_")])
        # the idle head still learns through the pivot-consistent loss
        assert all(p.grad.abs().sum() > 0 for p in m.heads["authentic"].parameters())
    assert active == [["supcon_tampered"]] * 2 + [["supcon_authentic"]] * 2


@pytest.mark.parametrize("masks", [
    torch.zeros(2, 1, SIZE, SIZE),  # authentic images: no tampered patch
    torch.ones(2, 1, SIZE, SIZE),  # fully tampered: no authentic patch
    checkerboard_mask(),  # only contour patches
], ids=["no-tampered", "no-authentic", "only-contour"])
@pytest.mark.parametrize("overrides", [
    {}, {"contour": "drop"}, {"scope": "batch"}, {"consistency": "embedding"},
], ids=["dual", "drop", "batch-scope", "embedding-consistency"])
def test_degenerate_batches_give_finite_loss_and_gradients(masks: torch.Tensor, overrides: dict) -> None:
    m = build(**overrides)
    terms = m.loss(make_batch(masks))
    terms["loss"].backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert all(v == 0 for k, v in terms.items() if k.startswith("supcon_"))


@pytest.mark.parametrize("contour, contour_gets_gradient", [("drop", False), ("dual", True)])
def test_drop_excludes_contour_patches(contour: str, contour_gets_gradient: bool) -> None:
    m = build(contour=contour, consistency_weight=0.0)
    mask = square_mask(1)
    features = torch.randn(1, m.net.classifier.in_channels, SIZE // 4, SIZE // 4, requires_grad=True)
    terms = m.contrast_terms(features, mask)
    sum(v for k, v in terms.items() if k.startswith("supcon_")).backward()
    # each patch of 8 pixels pools 2×2 feature cells; gradient per patch = sum over its cells
    grad_per_patch = features.grad.abs().sum(1)[0].reshape(4, 2, 4, 2).sum((1, 3))
    contour = label_patches(mask, 8)[0] == PatchClass.CONTOUR
    assert contour.any() and (~contour).any()
    assert (grad_per_patch[~contour] > 0).all()
    assert bool((grad_per_patch[contour] > 0).all()) is contour_gets_gradient
    if not contour_gets_gradient:
        assert (grad_per_patch[contour] == 0).all()


def test_without_contrast_ncl_is_seg_ce() -> None:
    torch.manual_seed(0)
    seg = SegCE(**SegCE.tiny_config())
    ncl = build(seed=0, contrast_weight=0.0)
    assert len(ncl.heads) == 0
    assert ncl.state_dict().keys() == seg.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(ncl.state_dict().values(), seg.state_dict().values()))
    batch = make_batch(square_mask())
    torch.manual_seed(5)  # the ASPP dropout draws from the global generator
    seg_loss = seg.loss(batch)["loss"]
    torch.manual_seed(5)
    ncl_terms = ncl.loss(batch)
    assert torch.equal(ncl_terms["loss"], seg_loss) and list(ncl_terms) == ["ce", "loss"]
    seg.eval(), ncl.eval()
    with torch.no_grad():
        assert torch.equal(ncl.predict(batch["image"]).mask_prob, seg.predict(batch["image"]).mask_prob)


def test_with_contrast_the_ce_term_is_seg_ce_loss() -> None:
    torch.manual_seed(0)
    seg = SegCE(**SegCE.tiny_config())
    ncl = build(seed=0)
    batch = make_batch(square_mask())
    torch.manual_seed(5)
    seg_loss = seg.loss(batch)["loss"]
    torch.manual_seed(5)
    assert torch.equal(ncl.loss(batch)["ce"], seg_loss)


def test_predict_returns_tampered_probability_map() -> None:
    m = build().eval()
    with torch.no_grad():
        pred = m.predict(torch.rand(2, 3, SIZE, SIZE))
    assert pred.mask_prob.shape == (2, 1, SIZE, SIZE) and pred.image_score is None
    assert ((pred.mask_prob >= 0) & (pred.mask_prob <= 1)).all()


def test_quick_recipe_has_seg_ce_budget_and_builds() -> None:
    from imlbench.benchmark.recipes import load_recipe

    ncl, seg = load_recipe("quick", "ncl"), load_recipe("quick", "seg_ce")
    assert ncl == seg  # same network, size, steps, batch, optimizer and schedule
    m = METHODS.build("ncl", **ncl.method)
    assert m.input_policy == InputPolicy("resize", ncl.image_size) and m.config.patch_size == 16


def test_paper_recipe_is_resnet101_at_512() -> None:
    import timm

    from imlbench.benchmark.recipes import load_recipe

    rcp = load_recipe("paper", "ncl")
    assert rcp.method == {"backbone": "resnet101", "input_size": 512, "require_pretrained": True}
    assert rcp.image_size == 512 and timm.is_model(rcp.method["backbone"])
    m = METHODS.build("ncl", **{**rcp.method, "backbone": "resnet10t",  # cheap stand-in encoder
                                "require_pretrained": False})
    assert m.config.patch_size == 32


def test_contrastive_terms_stay_float32_under_autocast() -> None:
    m = build()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = m.loss(make_batch(square_mask()))
    assert {k: v.dtype for k, v in terms.items()} == dict.fromkeys(terms, torch.float32)


def test_features_and_mask_on_different_grids_are_refused() -> None:
    m = build()
    with pytest.raises(ValueError, match="patch grid of the features"):
        m.contrast_terms(torch.randn(1, 16, SIZE // 8, SIZE // 8), square_mask(1))


def test_runs_under_the_old_default_are_never_taken_for_the_new_one(tmp_path, monkeypatch) -> None:
    """A checkpoint trained before ``pivot`` became labelled (method_config without it) is not
    found for today's default, and today's runs carry the pivot in config and label."""
    import json

    import yaml

    from imlbench.benchmark.checkpoints import find_checkpoint
    from imlbench.benchmark.evaluate import load
    from imlbench.benchmark.train import train
    from tests.helpers import make_folder_dataset

    monkeypatch.setenv("IMLBENCH_HOME", str(tmp_path / "home"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "image_size": 32, "batch_size": 2, "steps": 1, "tensorboard": False,
        "optimizer": {"name": "adamw", "lr": 1e-3}, "schedule": {"name": "constant"}}))
    result = train("ncl", dataset=make_folder_dataset(tmp_path / "data"), val_dataset=None,
                   recipe=recipe, method_config=TINY, protocol="synthetic", progress=False)
    sidecar = result.best_checkpoint.with_suffix(".json")
    assert json.loads(sidecar.read_text())["method_config"] == {**TINY, "pivot": "alternate"}
    assert find_checkpoint("ncl", "synthetic", config={**TINY, "pivot": "alternate"}) == result.best_checkpoint
    loaded = load("ncl", checkpoint=result.best_checkpoint, config=TINY)
    assert "pivot=alternate" in loaded.label and loaded.config["pivot"] == "alternate"
    assert "pivot=both" in load("ncl", checkpoint=result.best_checkpoint,
                                config={**TINY, "pivot": "both"}).label

    old = json.loads(sidecar.read_text())
    old["method_config"] = dict(TINY)  # as written when pivot=both was the unlabelled default
    sidecar.write_text(json.dumps(old))
    assert find_checkpoint("ncl", "synthetic", config={**TINY, "pivot": "alternate"}) is None
