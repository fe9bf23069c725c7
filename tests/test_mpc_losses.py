"""MPC loss pieces against hand-computed values, slow reference loops, cv2 and torchvision."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from imlbench.methods.mpc.losses import (ContrastSettings, code_form_loss, image_contrast_loss,
                                         mask_pyramid, paper_form_loss, resize_mask,
                                         sample_indices, sigmoid_focal_loss)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- code form -------------------------------------------------------------------------------
@pytest.mark.parametrize("tau, expected", [
    # Q = {q1=(1,0), q2=(0,1)}, N = {n=(1,0)}. s̄_1 = q1·q2 = 0 and s̄_2 = 0 (one other query each).
    # q1: −log(e^0 / (e^0 + e^{1/τ})) = log(1 + e^{1/τ});  q2: q2·n = 0 -> log(1 + 1) = log 2.
    # τ=1:   (log(1+e) + log 2) / 2    = (1.3132617 + 0.6931472) / 2 = 1.0032044
    # τ=0.1: (log(1+e^10) + log 2) / 2 = (10.0000454 + 0.6931472) / 2 = 5.3465963
    (1.0, 1.0032044),
    (0.1, 5.3465963),
])
def test_code_form_hand_computed(tau: float, expected: float) -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    n = torch.tensor([[1.0, 0.0]])
    assert code_form_loss(q, n, tau).item() == pytest.approx(expected, abs=1e-6)


def _code_form_reference(q: torch.Tensor, n: torch.Tensor, tau: float) -> float:
    """The issue's formula, one query at a time, in float64."""
    q, n = q.double(), n.double()
    total = 0.0
    for i in range(len(q)):
        s_bar = sum(float(q[i] @ q[j]) for j in range(len(q)) if j != i) / (len(q) - 1)
        denom = math.exp(s_bar / tau) + sum(math.exp(float(q[i] @ m) / tau) for m in n)
        total += -math.log(math.exp(s_bar / tau) / denom)
    return total / len(q)


def test_code_form_matches_reference_loop() -> None:
    g = _gen(1)
    q = F.normalize(torch.randn(7, 5, generator=g), dim=1)
    n = F.normalize(torch.randn(4, 5, generator=g), dim=1)
    assert code_form_loss(q, n, 0.5).item() == pytest.approx(_code_form_reference(q, n, 0.5), rel=1e-5)


def test_code_form_degenerate_sets_give_zero_not_nan() -> None:
    unit = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert code_form_loss(unit, torch.zeros(0, 2), 0.1).item() == 0.0  # no negatives: log(1) = 0
    assert code_form_loss(torch.zeros(0, 2), unit, 0.1).item() == 0.0  # no queries (official: NaN)
    assert code_form_loss(unit[:1], unit, 0.1).item() == 0.0  # one query: no pair to average (NaN)


# -- paper form ------------------------------------------------------------------------------
def test_paper_form_within_hand_computed() -> None:
    # Anchors = positives = {a1=(1,0), a2=(0.6,0.8)} (an anchor is not its own positive),
    # negative n=(0,1), τ=1. a1·a2 = 0.6, a1·n = 0, a2·n = 0.8.
    # a1: −log(e^.6 / (e^.6 + e^0))  = log(1 + e^-0.6) = 0.4374880
    # a2: −log(e^.6 / (e^.6 + e^.8)) = log(1 + e^0.2)  = 0.7981389;  mean = 0.6178134
    a = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    n = torch.tensor([[0.0, 1.0]])
    assert paper_form_loss(a, a, n, 1.0, same_set=True).item() == pytest.approx(0.6178134, abs=1e-6)


def test_paper_form_cross_hand_computed() -> None:
    # Anchor a=(1,0); positives p1=(1,0), p2=(0,1); negative n=(0,1); τ=1.
    # p1: −log(e^1 / (e^1 + e^0)) = log(1 + e^-1) = 0.3132617
    # p2: −log(e^0 / (e^0 + e^0)) = log 2         = 0.6931472;  mean over positives = 0.5032044
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    n = torch.tensor([[0.0, 1.0]])
    assert paper_form_loss(a, p, n, 1.0, same_set=False).item() == pytest.approx(0.5032044, abs=1e-6)


def test_paper_form_degenerate_sets_give_zero() -> None:
    unit = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    empty = torch.zeros(0, 2)
    assert paper_form_loss(unit, unit, empty, 0.1, same_set=True).item() == 0.0  # no negatives
    assert paper_form_loss(empty, unit, unit, 0.1, same_set=False).item() == 0.0  # no anchors
    assert paper_form_loss(unit[:1], unit[:1], unit, 0.1, same_set=True).item() == 0.0  # no positive


# -- one image, all terms ---------------------------------------------------------------------
def _sets(n_x: int = 12, n_y: int = 9, dim: int = 6, seed: int = 0) -> dict:
    g = _gen(seed)

    def one(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        tampered = torch.zeros(n, dtype=torch.bool)
        tampered[: n // 3] = True
        return F.normalize(torch.randn(n, dim, generator=g), dim=1), tampered

    return {"X": one(n_x), "Y": one(n_y), "X2": one(n_x)}


def test_image_loss_code_form_sums_the_official_directed_pairs() -> None:
    sets = _sets()
    got = image_contrast_loss(sets, ContrastSettings("code", temperature=0.2), _gen())

    def ell(a: str, b: str) -> float:  # caps not binding: the sets are used whole
        (fa, ta), (fb, tb) = sets[a], sets[b]
        return _code_form_reference(fa[~ta], fb[tb], 0.2)

    expected = {"within": ell("X", "X"), "scale": ell("X", "Y") + ell("Y", "X"),
                "view": ell("X", "X2") + ell("X2", "X")}
    assert {k: v.item() for k, v in got.items()} == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("fill", [0.0, 1.0], ids=["authentic_only", "fully_tampered"])
def test_image_loss_single_class_image_is_zero(form: str, fill: float) -> None:
    sets = {k: (f, torch.full_like(t, bool(fill))) for k, (f, t) in _sets().items()}
    got = image_contrast_loss(sets, ContrastSettings(form), _gen())
    assert all(v.item() == 0.0 for v in got.values()), got


# -- sampling cap ----------------------------------------------------------------------------
def test_sample_indices_caps_and_is_deterministic() -> None:
    candidates = torch.zeros(40, dtype=torch.bool)
    candidates[::3] = True  # 14 candidates
    picked = sample_indices(candidates, 5, _gen(3))
    assert picked.numel() == 5 and picked.unique().numel() == 5
    assert candidates[picked].all()
    assert torch.equal(picked, sample_indices(candidates, 5, _gen(3)))
    assert not torch.equal(picked.sort().values, sample_indices(candidates, 5, _gen(4)).sort().values)
    assert torch.equal(sample_indices(candidates, 100, _gen(3)), candidates.nonzero().squeeze(1))


def test_image_loss_respects_the_cap() -> None:
    """With a cap of 2 queries the code-form within term equals ℓ on the two sampled rows."""
    sets = {"X": _sets()["X"]}
    settings = ContrastSettings("code", terms=("within",), max_samples=2)
    got = image_contrast_loss(sets, settings, _gen(7))["within"].item()
    g = _gen(7)  # replay the same draws: authentic queries first, then tampered negatives
    feats, tampered = sets["X"]
    q = feats[sample_indices(~tampered, 2, g)]
    n = feats[sample_indices(tampered, 2, g)]
    assert got == pytest.approx(_code_form_reference(q, n, 0.1), rel=1e-5)


# -- masks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("src, dst", [((64, 64), (16, 16)), ((50, 70), (32, 32)), ((20, 12), (32, 32))])
def test_resize_mask_matches_cv2_bilinear_then_threshold_127(src, dst) -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random(src) < 0.5).astype(np.uint8)
    mask[: src[0] // 2, : src[1] // 3] = 1  # a solid block plus noise: both edges and ties
    expected = cv2.resize(mask * 255, dst[::-1], interpolation=cv2.INTER_LINEAR) > 127
    got = resize_mask(torch.from_numpy(mask).float()[None, None], dst)[0, 0].numpy() > 0.5
    assert (got == expected).mean() > 0.995  # cv2 uses 11-bit fixed-point weights
    if src[0] % dst[0] == 0:  # integer ratios: exact (2×2-block means, ties count as tampered)
        assert np.array_equal(got, expected)


def test_mask_pyramid_is_nearest_on_even_pixels() -> None:
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0, 0] = 1  # kept by nearest (even position)
    mask[..., 3, 3] = 1  # dropped at 1/2 (odd position)
    half, quarter = mask_pyramid(mask, [(4, 4), (2, 2)])
    assert half[0].nonzero().tolist() == [[0, 0]]
    assert quarter[0].nonzero().tolist() == [[0, 0]]


def test_sigmoid_focal_loss_matches_torchvision() -> None:
    g = _gen(2)
    logits = torch.randn(2, 1, 5, 5, generator=g) * 3
    target = (torch.rand(2, 1, 5, 5, generator=g) > 0.5).float()
    expected = tv_sigmoid_focal_loss(logits, target, alpha=0.5, gamma=2, reduction="mean")
    assert sigmoid_focal_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
