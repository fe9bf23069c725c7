"""Training data: an endless, stateless stream of augmented, shaped, flipped samples.

Item ``p`` of the stream is sample ``order(epoch)[k]`` of that epoch's samples, with
``epoch, k = divmod(p, n)``. An epoch's samples are drawn from the training sets by a
:class:`~imlbench.datasets.protocols.Sampling` seeded by ``(seed, epoch)`` (``concat``: every
sample once; ``balanced``: CAT-Net's fixed number per set), ``order(epoch)`` is a permutation
seeded by ``(seed, epoch)``; the recipe's augmentation (:mod:`imlbench.robustness.augment`, on
the decoded picture at its own resolution) by ``(seed, "augment", epoch, index)``, the crop by
``(seed, "crop", epoch, index)`` and the flip by ``(seed, epoch, index)``. Nothing depends on worker
count or on what came before, so a run resumed at optimizer step ``s`` simply starts reading at
position ``s × batch × accumulation`` and sees exactly the data the uninterrupted run would have
seen.

A method with file inputs (CAT-Net: ``file_inputs = ("jpeg_dct",)``) is trained as its official
code trains it: the inputs come from the file (:mod:`imlbench.datasets.jpeg_dct`), the item is a
random ``S``² crop on the 8×8 JPEG grid (seeded by ``(seed, "crop", epoch, index)``) instead of a
resize, which would move the pixels off their blocks, and it is not flipped (a flipped picture
is not the decoding of the flipped coefficients, and no augmentation can apply for that reason).

Shaping (the recipe's ``shaping``): ``resize`` brings the augmented picture to ``S``² with the
method's input kernel, exactly as the evaluation runner does; ``crop`` keeps the picture's own
resolution (and so its JPEG grid and resampling traces) and takes a random ``S``² window,
padding a smaller picture bottom/right with black and an untampered mask.
"""
from __future__ import annotations

from itertools import count
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from imlbench.datasets.base import DatasetError, Sample, load_image, load_mask
from imlbench.datasets.jpeg_dct import check_file_inputs, file_inputs, grid_crop, source_jpeg
from imlbench.datasets.protocols import Sampling
from imlbench.errors import ConfigError
from imlbench.methods.base import InputPolicy
from imlbench.methods.resample import shape_for_policy, to_float
from imlbench.robustness.augment import Augmentation
from imlbench.seeding import rng_for

SHAPINGS = ("resize", "crop")


def load_shaped(sample: Sample, policy: InputPolicy) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a sample and shape it as the evaluation runner does: image float [3, h, w] in
    [0, 1] and mask float [1, h, w] in {0, 1}, both after ``policy`` (with its kernel)."""
    image = load_image(sample.image_path)
    m = torch.from_numpy(load_mask(sample, image.shape[:2]))[None].float()
    shaped = shape_for_policy(image, policy, m)
    return shaped.image, shaped.mask


class TrainDataset(TorchDataset):
    """``__getitem__(position)`` → ``{"image": float [3,S,S] in [0,1], "mask": float [1,S,S]
    in {0,1}, "label": long []}``, plus the method's file inputs under their flat keys
    (``"jpeg_dct.coef"`` int16 [S,S], ``"jpeg_dct.qtable"`` float [8,8]) when it declares any.

    ``parts``: the sample lists of the training sets (one set: ``[samples]``), drawn from per
    epoch by ``sampling``. ``augment``: the recipe's augmentation (none: ``Augmentation(())``).
    ``shaping="resize"``: images are resized exactly as the evaluation runner resizes them (with
    the method's input ``kernel``; masks nearest), so training and test inputs match;
    ``"crop"``: random ``size``² windows at native resolution.
    """

    def __init__(self, parts: Sequence[Sequence[Sample]], size: int, seed: int,
                 hflip: bool = True, sampling: Sampling = Sampling(),
                 kernel: str = "bilinear_aa", file_inputs: Sequence[str] = (),
                 augment: Augmentation | None = None, shaping: str = "resize") -> None:
        self.parts = [list(part) for part in parts]
        if not any(self.parts):
            raise DatasetError("the training dataset has no samples")
        if shaping not in SHAPINGS:
            raise ValueError(f"shaping={shaping!r}; expected one of {', '.join(SHAPINGS)}")
        self.policy = InputPolicy("resize", size, kernel=kernel)
        check_file_inputs(file_inputs, "the trained method")
        self.file_inputs = tuple(file_inputs)
        self.augment = augment or Augmentation(())
        if self.augment and self.file_inputs:
            raise ConfigError(f"a method with file inputs {list(self.file_inputs)} trains on what "
                              "the file holds; its recipe cannot augment (set augment: [])")
        self.shaping = shaping
        self.seed = seed
        self.hflip = hflip
        self.sampling = sampling
        self._epoch = -1
        self._samples: list[Sample] = []
        self._order = np.arange(0)

    def __len__(self) -> int:
        """Samples per epoch (the stream itself is endless)."""
        if self.sampling.mode == "balanced":
            return len(self.parts) * int(self.sampling.per_dataset)
        return sum(len(part) for part in self.parts)

    def epoch(self, epoch: int) -> tuple[list[Sample], np.ndarray]:
        """The samples of ``epoch`` and the order they are read in (cached: positions arrive
        in order, so each epoch is drawn once per worker)."""
        if self._epoch != epoch:
            self._samples = self.sampling.epoch(self.parts, epoch, self.seed)
            self._order = rng_for(self.seed, "order", epoch).permutation(len(self._samples))
            self._epoch = epoch
        return self._samples, self._order

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        epoch, k = divmod(int(position), len(self))
        samples, order = self.epoch(epoch)
        index = int(order[k])
        s = samples[index]
        if self.file_inputs:
            return self._file_item(s, epoch, index)
        x, m = self._shaped(s, epoch, index)
        if self.hflip and rng_for(self.seed, "flip", epoch, index).random() < 0.5:
            x, m = x.flip(-1), m.flip(-1)
        return {"image": x.contiguous(), "mask": m.contiguous(),
                "label": torch.tensor(s.label, dtype=torch.long)}

    def _shaped(self, s: Sample, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image float [3,S,S] and mask float [1,S,S] of sample ``s``: augmented, then shaped."""
        if not self.augment and self.shaping == "resize":
            return load_shaped(s, self.policy)
        image = load_image(s.image_path)
        mask = load_mask(s, image.shape[:2]).astype(np.uint8)
        if self.augment:
            image, mask = self.augment.apply(image, mask, rng_for(self.seed, "augment", epoch, index))
        if self.shaping == "resize":
            shaped = shape_for_policy(image, self.policy, torch.from_numpy(mask)[None].float())
            return shaped.image, shaped.mask
        size = int(self.policy.size)
        h, w = image.shape[:2]
        rng = rng_for(self.seed, "crop", epoch, index)
        top, left = int(rng.integers(max(0, h - size) + 1)), int(rng.integers(max(0, w - size) + 1))
        x = torch.zeros(3, size, size)
        m = torch.zeros(1, size, size)
        window = image[top:top + size, left:left + size]
        x[:, :window.shape[0], :window.shape[1]] = to_float(window)
        m[0, :window.shape[0], :window.shape[1]] = torch.from_numpy(
            mask[top:top + size, left:left + size].astype(np.float32))
        return x, m

    def _file_item(self, s: Sample, epoch: int, index: int) -> dict[str, torch.Tensor]:
        """The item of a method with file inputs: computed from the file, then grid-cropped."""
        image = load_image(s.image_path)
        mask = load_mask(s, image.shape[:2]).astype(np.float32)
        image, extras = file_inputs(self.file_inputs, image, source_jpeg(s.image_path))
        crop, mask, extras = grid_crop(image, mask, extras, int(self.policy.size),
                                       rng_for(self.seed, "crop", epoch, index))
        item = {"image": torch.from_numpy(crop).permute(2, 0, 1).contiguous(),
                "mask": torch.from_numpy(mask)[None], "label": torch.tensor(s.label, dtype=torch.long)}
        return {**item, **{key: torch.from_numpy(value) for key, value in extras.items()}}


class StreamPositions(Sampler[int]):
    """Positions ``start, start + 1, ...`` of the training stream, without end (the loop decides
    when to stop).

    Under data-parallel training (``world_size`` > 1) this rank's share: the stream is cut into
    blocks of ``block`` positions (one micro-batch) dealt to the ranks in turn, so the ranks
    together see exactly the positions one process would, ``world_size`` blocks per micro-step.
    ``start`` counts positions of the whole stream.
    """

    def __init__(self, start: int = 0, rank: int = 0, world_size: int = 1, block: int = 1) -> None:
        if world_size > 1 and start % (block * world_size):
            raise ValueError(f"start {start} must be a multiple of block x world_size")
        self.start, self.rank, self.world_size, self.block = start, rank, world_size, block

    def __iter__(self) -> Iterator[int]:
        if self.world_size == 1:
            return count(self.start)
        return self._blocks()

    def _blocks(self) -> Iterator[int]:
        first = self.start // (self.block * self.world_size)
        for j in count(first):
            g = j * self.world_size + self.rank
            yield from range(g * self.block, (g + 1) * self.block)
