"""NCL patch labelling and loss terms against hand-computed values on tiny inputs."""
from __future__ import annotations

import math

import pytest
import torch

from imlbench.methods.ncl_losses import (
    IGNORE, PatchClass, contrast_targets, label_patches, pivot_consistency, supcon_loss)

A, T, C = PatchClass.AUTHENTIC, PatchClass.TAMPERED, PatchClass.CONTOUR


def test_label_patches_8x8_patch4() -> None:
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0:4, 0:4] = 1  # top-left patch fully tampered
    mask[..., 5, 6] = 1  # one tampered pixel inside the bottom-right patch
    assert label_patches(mask, 4).tolist() == [[[T, A], [A, C]]]


def test_label_patches_partial_border_patches_use_only_covered_pixels() -> None:
    # 10x10 with patch 4: row/column bands [0-3], [4-7], [8-9]; the last band is partial.
    mask = torch.zeros(1, 1, 10, 10)
    mask[..., 2:9, 0:8] = 1  # rows 2..8 tampered in columns 0..7
    mask[..., 4:8, 8:10] = 1  # the partial patch (1, 2) is tampered in every pixel it covers
    expected = [[C, C, A],  # rows 0-1 authentic, 2-3 tampered
                [T, T, T],  # (1, 2) would be CONTOUR if the border were padded with zeros
                [C, C, A]]  # row 8 tampered, row 9 authentic
    assert label_patches(mask, 4).tolist() == [expected]


def test_label_patches_batch_of_authentic_and_fully_tampered() -> None:
    mask = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    assert label_patches(mask, 2).tolist() == [[[A, A], [A, A]], [[T, T], [T, T]]]


def test_label_patches_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        label_patches(torch.zeros(8, 8), 4)


@pytest.mark.parametrize("role, contour_target", [("tampered", 1), ("authentic", 0), ("drop", IGNORE)])
def test_contrast_targets(role: str, contour_target: int) -> None:
    classes = torch.tensor([[A, T, C]])
    assert contrast_targets(classes, role).tolist() == [[0, 1, contour_target]]


def test_contrast_targets_rejects_unknown_role() -> None:
    with pytest.raises(ValueError, match="contour_as"):
        contrast_targets(torch.tensor([[C]]), "both")


# Three unit embeddings in 2-D: z1=(1,0) and z2=(0,1) tampered, z3=(-1,0) authentic.
# Dot products: z1.z2 = 0, z1.z3 = -1, z2.z3 = 0.
Z3 = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
T3 = torch.tensor([[1, 1, 0]])


@pytest.mark.parametrize("temperature, expected", [
    # anchor 1: positive z2 (logit 0), candidates z2, z3 (logits 0, -1/t): log(1 + e^(-1/t))
    # anchor 2: positive z1 (logit 0), candidates z1, z3 (logits 0, 0): log 2
    # anchor 3: no positive -> not an anchor.  Loss = mean of the two.
    (1.0, (math.log(1 + math.exp(-1)) + math.log(2)) / 2),  # = 0.503204
    (0.5, (math.log(1 + math.exp(-2)) + math.log(2)) / 2),  # = 0.410038
])
def test_supcon_hand_computed(temperature: float, expected: float) -> None:
    assert supcon_loss(Z3, T3, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_supcon_ignored_patch_changes_nothing() -> None:
    z = torch.cat([Z3, torch.tensor([[[0.0, -1.0]]])], dim=1)
    targets = torch.tensor([[1, 1, 0, IGNORE]])
    assert supcon_loss(z, targets, 1.0).item() == pytest.approx(supcon_loss(Z3, T3, 1.0).item())


def test_supcon_groups_are_contrasted_separately() -> None:
    # Group 2: z1=z2=(1,0) tampered, z3=(0,1) authentic. Anchors 1 and 2: positive logit 1,
    # negative logit 0 -> -log(e / (e + 1)) = log(1 + e^-1) each; anchor 3 has no positive.
    # Mean over the 4 anchors of both groups: (3 log(1 + e^-1) + log 2) / 4 = 0.408233.
    z = torch.cat([Z3, torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])])
    targets = torch.cat([T3, torch.tensor([[1, 1, 0]])])
    expected = (3 * math.log(1 + math.exp(-1)) + math.log(2)) / 4
    assert supcon_loss(z, targets, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # As one group the cross-group pairs count, so the value differs.
    assert supcon_loss(z.reshape(1, 6, 2), targets.reshape(1, 6), 1.0).item() != pytest.approx(expected)


@pytest.mark.parametrize("targets", [
    [[1, 1, 1]],  # an image without authentic patches: no anchor has a negative
    [[0, 0, 0]],  # an authentic image
    [[IGNORE, IGNORE, IGNORE]],  # only contour patches, dropped
    [[1, IGNORE, IGNORE]],  # a single usable patch
])
def test_supcon_without_both_classes_is_zero_with_finite_gradient(targets: list) -> None:
    z = torch.nn.functional.normalize(torch.randn(1, 3, 2), dim=-1).requires_grad_()
    loss = supcon_loss(z, torch.tensor(targets), 0.1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(z.grad).all()


def test_supcon_gradient_is_finite_with_empty_group_beside_a_full_one() -> None:
    z = torch.nn.functional.normalize(torch.randn(2, 3, 2), dim=-1).requires_grad_()
    loss = supcon_loss(z, torch.tensor([[1, 1, 0], [IGNORE, IGNORE, IGNORE]]), 0.07)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(z.grad).all()
    assert z.grad[1].abs().sum() == 0  # the dropped group gets no gradient


# Branch embeddings of patches 1 (authentic), 2 (tampered), 3 (contour), unit vectors in 2-D.
ZT = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
ZA = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]]])
CLS = torch.tensor([[A, T, C]])


def test_pivot_consistency_similarity_hand_computed() -> None:
    # Shared pairs (1,2) and (2,1): zT1.zT2 = 0, zA1.zA2 = 0.6 -> (0 - 0.6)^2 = 0.36 each.
    # The contour patch 3 is excluded (its embeddings differ on purpose).
    assert pivot_consistency(ZT, ZA, CLS, "similarity").item() == pytest.approx(0.36)


def test_pivot_consistency_embedding_hand_computed() -> None:
    # Patch 1: ||0||^2 = 0; patch 2: (0-0.6)^2 + (1-0.8)^2 = 0.4; contour excluded -> mean 0.2.
    assert pivot_consistency(ZT, ZA, CLS, "embedding").item() == pytest.approx(0.2)


@pytest.mark.parametrize("form", ["similarity", "embedding"])
def test_pivot_consistency_only_contour_patches_is_zero_with_gradient(form: str) -> None:
    z_t, z_a = ZT.clone().requires_grad_(), ZA.clone().requires_grad_()
    loss = pivot_consistency(z_t, z_a, torch.full((1, 3), C), form)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z_t.grad).all() and torch.isfinite(z_a.grad).all()


def test_pivot_consistency_rejects_unknown_form() -> None:
    with pytest.raises(ValueError, match="similarity"):
        pivot_consistency(ZT, ZA, CLS, "cosine")
