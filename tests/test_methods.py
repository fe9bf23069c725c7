"""The Method contract, checked for every registered method (a new plug-in is tested for free),
and the sanity methods' known scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.registry import METHODS
from imlbench.seeding import rng_for

ALL_METHODS = METHODS.list(include_test_only=True)


def build_small(name: str) -> Method:
    """The method with its defaults, or its ``tiny_config()`` when it declares one (networks
    keep the contract tests cheap that way; generic wrappers need arguments), as built."""
    factory = METHODS.get(name)
    tiny = getattr(factory, "tiny_config", None)
    return METHODS.build(name, **(tiny() if callable(tiny) else {}))


def inputs_for(name: str, policy: InputPolicy) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch shaped like the runner shapes it for ``policy``: ``images float32 [B, 3, H, W]``
    (exactly uint8 / 255) and ``masks float32 [B, 1, H, W]`` in {0, 1} (a rectangle)."""
    if policy.mode == "native":  # odd sizes, not multiples of 8 or 32
        b, h, w = 1, 45, 58
    elif policy.mode in ("resize", "canvas"):  # a canvas reaches predict at its full size
        b, h, w = 2, policy.size, policy.size
    else:
        b, h, w = 2, policy.multiple, 2 * policy.multiple
    rng = rng_for("test_methods", name)
    pixels = rng.integers(0, 256, size=(b, 3, h, w), dtype=np.uint8)
    masks = np.zeros((b, 1, h, w), dtype=np.float32)
    masks[:, :, h // 4: h // 4 + h // 2, w // 3: w // 3 + w // 3] = 1.0
    return torch.from_numpy(pixels).float() / 255, torch.from_numpy(masks)


def run_predict(method: Method, images: torch.Tensor, masks: torch.Tensor) -> Prediction:
    """``predict`` as the runner calls it: eval mode, inference mode, masks only for oracles."""
    method.eval()
    with torch.inference_mode():
        return method.predict(images, masks=masks if method.needs_ground_truth else None)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_builds_and_describes_itself(name):
    method = build_small(name)
    assert isinstance(method, Method)
    assert isinstance(method.input_policy, InputPolicy)
    assert METHODS.entry(name).description, f"{name}: give the class a one-line docstring"
    if not method.trainable:  # nothing to train: frozen or at least not in training mode
        assert not any(p.requires_grad for p in method.parameters()) or not method.training


@pytest.mark.parametrize("name", ALL_METHODS)
def test_prediction_contract(name):
    method = build_small(name)
    images, masks = inputs_for(name, method.input_policy)
    pred = run_predict(method, images, masks)
    assert isinstance(pred, Prediction)
    prob = pred.mask_prob
    b, _, h, w = images.shape
    assert prob.shape[:2] == (b, 1) and prob.is_floating_point()
    # the documented contract is the input resolution; the runner also accepts an exact
    # integer fraction of it (e.g. a 1/4-resolution decoder output), so this does too
    ph, pw = prob.shape[-2:]
    assert (ph, pw) == (h, w) or (h % ph == 0 and w % pw == 0 and h // ph == w // pw)
    assert torch.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1
    if pred.image_score is not None:
        score = pred.image_score
        assert score.shape == (b,) and score.is_floating_point()
        assert torch.isfinite(score).all() and score.min() >= 0 and score.max() <= 1


@pytest.mark.parametrize("name", ALL_METHODS)
def test_prediction_is_deterministic(name):
    method = build_small(name)
    images, masks = inputs_for(name, method.input_policy)
    first, second = run_predict(method, images, masks), run_predict(method, images, masks)
    assert torch.equal(first.mask_prob, second.mask_prob)
    assert (first.image_score is None) == (second.image_score is None)
    if first.image_score is not None:
        assert torch.equal(first.image_score, second.image_score)


@pytest.mark.parametrize("name", [n for n in ALL_METHODS if METHODS.get(n).needs_ground_truth])
def test_ground_truth_methods_refuse_to_run_without_masks(name):
    method = build_small(name)
    images, _ = inputs_for(name, method.input_policy)
    with pytest.raises(ValueError, match="mask"):
        method.predict(images)


# -- sanity methods score what they claim -------------------------------------------------------

def tampered_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return inputs_for("sanity", InputPolicy("native"))


def test_oracle_has_perfect_f1_and_auc():
    images, masks = tampered_batch()
    prob = run_predict(build_small("oracle"), images, masks).mask_prob
    truth = masks.flatten().numpy()
    assert f1_score(truth, prob.flatten().numpy() > 0.5) == 1.0
    assert roc_auc_score(truth, prob.flatten().numpy()) == 1.0


def test_inverted_oracle_has_zero_auc():
    images, masks = tampered_batch()
    prob = run_predict(build_small("inverted_oracle"), images, masks).mask_prob
    assert roc_auc_score(masks.flatten().numpy(), prob.flatten().numpy()) == 0.0


def test_oracle_rejects_masks_of_another_shape():
    images, masks = tampered_batch()
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        build_small("oracle").predict(images, masks=masks[:, :, :-1])


@pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
def test_constant_map_and_score_equal_the_value(value):
    images, _ = tampered_batch()
    pred = METHODS.build("constant", value=value).predict(images)
    assert torch.all(pred.mask_prob == value) and torch.all(pred.image_score == value)
    with pytest.raises(ValueError, match="probability"):
        METHODS.build("constant", value=1.5)


def test_random_map_depends_on_input_and_seed_only():
    images, _ = tampered_batch()
    base = METHODS.build("random").predict(images).mask_prob
    assert torch.equal(base, METHODS.build("random").predict(images.clone()).mask_prob)
    assert not torch.equal(base, METHODS.build("random", seed=1).predict(images).mask_prob)
    assert not torch.equal(base, METHODS.build("random").predict(images.flip(-1)).mask_prob)
    # batch composition does not matter: each image is seeded by its own pixels
    pair = METHODS.build("random").predict(torch.cat([images.flip(-1), images])).mask_prob
    assert torch.equal(pair[1:], base)
    assert 0.45 < float(base.mean()) < 0.55
