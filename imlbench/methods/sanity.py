"""Test-only sanity localizers with known scores: they check the harness, not forensics.

``oracle`` must score pixel F1/AUC 1, ``inverted_oracle`` AUC 0, ``constant`` AUC 0.5,
``random`` about 0.5. A harness that gets other numbers resizes, crops or pairs masks wrongly.
"""
from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import torch

from imlbench.errors import ConfigError
from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.registry import METHODS
from imlbench.seeding import rng_for


class SanityMethod(Method):
    """Common metadata: native input, nothing to train."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("native")
    trainable: ClassVar[bool] = False


def _checked_masks(name: str, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """``masks`` as ``float [B, 1, H, W]`` in {0, 1}, or an error saying what was passed."""
    expected = (images.shape[0], 1, *images.shape[-2:])
    if masks is None:
        raise ValueError(f"{name} needs the ground-truth masks (needs_ground_truth=True): call "
                         f"predict(images, masks=float {list(expected)})")
    if tuple(masks.shape) != expected:
        raise ValueError(f"{name}: masks must be [B, 1, H, W] = {list(expected)} like the images, "
                         f"got {list(masks.shape)}")
    return (masks > 0.5).float()


@METHODS.register("oracle", test_only=True)
class Oracle(SanityMethod):
    """Returns the ground-truth mask itself (pixel F1 and AUC 1 on tampered images)."""

    needs_ground_truth: ClassVar[bool] = True

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        return Prediction(mask_prob=_checked_masks("oracle", images, masks))


@METHODS.register("inverted_oracle", test_only=True)
class InvertedOracle(SanityMethod):
    """Returns ``1 - mask`` (pixel AUC 0 on tampered images: catches flipped score directions)."""

    needs_ground_truth: ClassVar[bool] = True

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        return Prediction(mask_prob=1.0 - _checked_masks("inverted_oracle", images, masks))


@METHODS.register("constant", test_only=True)
class ConstantMap(SanityMethod):
    """The same probability ``value`` everywhere and as image score (AUC 0.5 by ties)."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"constant: value must be a probability in [0, 1], got {value}")
        self.value = float(value)

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        b, _, h, w = images.shape
        return Prediction(mask_prob=images.new_full((b, 1, h, w), self.value, dtype=torch.float32),
                          image_score=images.new_full((b,), self.value, dtype=torch.float32))


@METHODS.register("random", test_only=True)
class RandomMap(SanityMethod):
    """Uniform noise in [0, 1] per pixel and per image score (chance level, AUC ≈ 0.5).

    Seeded by ``seed`` and a hash of the image's pixels, so the same input always gets the
    same output, whatever the batch composition, order or process.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        b, _, h, w = images.shape
        maps = np.empty((b, 1, h, w), dtype=np.float32)
        scores = np.empty(b, dtype=np.float32)
        pixels = images.detach().to("cpu", torch.float32).numpy()
        for i in range(b):
            digest = hashlib.blake2b(pixels[i].tobytes(), digest_size=16).hexdigest()
            rng = rng_for("random", self.seed, h, w, digest)
            maps[i, 0] = rng.random((h, w), dtype=np.float32)
            scores[i] = rng.random(dtype=np.float32)
        return Prediction(mask_prob=torch.from_numpy(maps).to(images.device),
                          image_score=torch.from_numpy(scores).to(images.device))
