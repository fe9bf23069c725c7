"""The embedded synthetic benchmark: manipulated crops of natural photos that ship with
installed packages (:mod:`imlbench.datasets.photos`), generated offline, seeded, cached.

Every image goes through the same history, so only the manipulation tells tampered from
authentic: a random crop (random scale, flip) of a photo, a prior JPEG at a random quality
(the "camera" save), then for tampered images one manipulation, then with probability
``final_jpeg_prob`` a final JPEG saved as ``.jpg`` (else a lossless ``.png``).

- ``splice``: a blob-shaped region of a crop of *another scene of the same split*, with its
  own JPEG history, optionally resampled and feather-blended. Mask = pasted region.
- ``copymove``: a region of the image pasted elsewhere in it, optionally rotated/scaled,
  never overlapping its source. Mask = the pasted *target* region only (the source is
  authentic content).
- ``removal``: a region filled by OpenCV Telea inpainting. Mask = inpainted region.

Masks are the binary region before feathering; every mask covers ``mask_area`` of its image.

Sets on disk: ``train``, ``val`` (all manipulations + authentic) and ``test-splice``,
``test-copymove``, ``test-removal`` (one manipulation + authentic each), under
``$IMLBENCH_HOME/synthetic/v<generator>-<key>/`` where the key hashes the config and the
photo table. Each sample draws its randomness from ``rng_for(seed, set, sample_id)`` only,
so a sample never depends on the others. Set ``IMLBENCH_SYNTH_PRESET=tiny`` to make the
registered ``synth-*`` datasets tiny (64-96 px, a few images per set) for fast tests.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from imlbench.errors import ConfigError
from imlbench.progress import progress_bar

from imlbench.datasets.base import DatasetError, Sample
from imlbench.datasets.manipulations import (blob_mask, copy_move, encode_jpeg, encode_png,
                                             jpeg_roundtrip, randint, random_crop, random_size,
                                             remove_object, resample, splice, uniform)
from imlbench.datasets.photos import PHOTOS, Photo, photos_in
from imlbench.paths import data_home
from imlbench.seeding import rng_for

GENERATOR_VERSION = 1
"""Bump whenever generation changes for the same config, so old caches are not reused."""
PRESET_ENV = "IMLBENCH_SYNTH_PRESET"
MANIFEST = "manifest.json"
MANIPULATIONS = ("splice", "copymove", "removal")
AUTHENTIC = "authentic"


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines the generated data; its hash names the cache folder.

    Counts are per set: ``n_test_*`` applies to each of the three test sets. Ranges are
    ``(low, high)`` and sampled uniformly per image; JPEG qualities are inclusive.
    """

    seed: int = 0
    n_train_tampered: int = 400
    n_train_authentic: int = 200
    n_val_tampered: int = 60
    n_val_authentic: int = 30
    n_test_tampered: int = 90
    n_test_authentic: int = 45
    short_side: tuple[int, int] = (256, 384)
    max_aspect: float = 1.33
    crop_scale: tuple[float, float] = (0.6, 1.0)
    """Output pixels per photo pixel (raised where the crop would not fit in the photo)."""
    prior_jpeg_quality: tuple[int, int] = (60, 95)
    final_jpeg_prob: float = 0.5
    final_jpeg_quality: tuple[int, int] = (70, 95)
    mask_area: tuple[float, float] = (0.02, 0.30)
    """Every mask's fraction of the image lies in this range (regions are redrawn otherwise)."""
    splice_area: tuple[float, float] = (0.03, 0.28)
    copymove_area: tuple[float, float] = (0.03, 0.14)
    removal_area: tuple[float, float] = (0.03, 0.12)
    feather_prob: float = 0.5
    feather_sigma: tuple[float, float] = (0.5, 2.0)
    donor_rescale_prob: float = 0.5
    donor_rescale: tuple[float, float] = (0.75, 1.33)
    copymove_transform_prob: float = 0.5
    inpaint_radius: tuple[int, int] = (2, 4)
    """Telea's neighbourhood in px; its cost grows with the square, so kept small."""


PRESETS: dict[str, SynthConfig] = {
    "default": SynthConfig(),
    "tiny": SynthConfig(n_train_tampered=6, n_train_authentic=3, n_val_tampered=3,
                        n_val_authentic=2, n_test_tampered=3, n_test_authentic=2,
                        short_side=(64, 96)),
}


def default_config() -> SynthConfig:
    """The preset named by ``$IMLBENCH_SYNTH_PRESET`` (default ``default``)."""
    name = os.environ.get(PRESET_ENV) or "default"
    if name not in PRESETS:
        raise ConfigError(f"${PRESET_ENV}={name!r} is not a synthetic preset; use one of "
                         f"{sorted(PRESETS)} or unset it")
    return PRESETS[name]


@dataclass(frozen=True)
class SetSpec:
    name: str
    split: str
    manipulations: tuple[str, ...]
    n_tampered: int
    n_authentic: int


def set_specs(config: SynthConfig) -> tuple[SetSpec, ...]:
    tests = tuple(SetSpec(f"test-{m}", "test", (m,), config.n_test_tampered, config.n_test_authentic)
                  for m in MANIPULATIONS)
    return (SetSpec("train", "train", MANIPULATIONS, config.n_train_tampered, config.n_train_authentic),
            SetSpec("val", "val", MANIPULATIONS, config.n_val_tampered, config.n_val_authentic)) + tests


SET_NAMES = tuple(s.name for s in set_specs(SynthConfig()))


def config_key(config: SynthConfig) -> str:
    """12 hex digits identifying (generator version, config, photo table)."""
    identity = {"generator": GENERATOR_VERSION, "config": asdict(config),
                "photos": [[p.name, p.sha256, p.scene, p.split] for p in PHOTOS]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def dataset_dir(config: SynthConfig | None = None) -> Path:
    config = config or default_config()
    return data_home() / "synthetic" / f"v{GENERATOR_VERSION}-{config_key(config)}"


# -- generation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    spec: SetSpec
    manipulation: str
    index: int

    @property
    def sample_id(self) -> str:
        return f"{self.manipulation}-{self.index:04d}"


def plan(config: SynthConfig) -> list[Job]:
    """Every sample to generate; tampered counts are shared out evenly over manipulations."""
    jobs = []
    for spec in set_specs(config):
        k = len(spec.manipulations)
        for i, manipulation in enumerate(spec.manipulations):
            n = spec.n_tampered // k + (i < spec.n_tampered % k)
            jobs += [Job(spec, manipulation, j) for j in range(n)]
        jobs += [Job(spec, AUTHENTIC, j) for j in range(spec.n_authentic)]
    return jobs


@dataclass
class _Context:
    config: SynthConfig
    pixels: dict[str, np.ndarray]
    rng: np.random.Generator
    host: Photo

    def crop(self, photo: Photo, out_hw: tuple[int, int]) -> tuple[np.ndarray, dict[str, Any]]:
        """A random crop of ``photo`` with its prior JPEG history."""
        crop, meta = random_crop(self.pixels[photo.name], self.rng, out_hw, self.config.crop_scale)
        quality = randint(self.rng, self.config.prior_jpeg_quality)
        return jpeg_roundtrip(crop, quality), {"photo": photo.name, **meta, "jpeg_quality": quality}

    def feather(self) -> float:
        c = self.config
        return uniform(self.rng, c.feather_sigma) if self.rng.random() < c.feather_prob else 0.0


def _splice(image: np.ndarray, ctx: _Context) -> tuple[np.ndarray, np.ndarray, dict] | None:
    c, rng = ctx.config, ctx.rng
    donors = [p for p in photos_in(ctx.host.split) if p.scene != ctx.host.scene]
    donor = donors[int(rng.integers(len(donors)))]
    rescale = uniform(rng, c.donor_rescale) if rng.random() < c.donor_rescale_prob else 1.0
    h, w = image.shape[:2]
    donor_pixels, donor_meta = ctx.crop(donor, (round(h / rescale), round(w / rescale)))
    if rescale != 1.0:
        donor_pixels = resample(donor_pixels, (h, w))
    mask = blob_mask((h, w), uniform(rng, c.splice_area), rng)
    sigma = ctx.feather()
    return splice(image, donor_pixels, mask, sigma), mask, {
        "donor": {**donor_meta, "rescale": rescale}, "feather_sigma": sigma}


def _copymove(image: np.ndarray, ctx: _Context) -> tuple[np.ndarray, np.ndarray, dict] | None:
    c, rng = ctx.config, ctx.rng
    sigma = ctx.feather()
    moved = copy_move(image, rng, uniform(rng, c.copymove_area), c.copymove_transform_prob, sigma)
    if moved is None:
        return None
    out, mask, meta = moved
    return out, mask, {"copy_move": meta, "feather_sigma": sigma}


def _removal(image: np.ndarray, ctx: _Context) -> tuple[np.ndarray, np.ndarray, dict] | None:
    c, rng = ctx.config, ctx.rng
    mask = blob_mask(image.shape[:2], uniform(rng, c.removal_area), rng)
    radius = randint(rng, c.inpaint_radius)
    return remove_object(image, mask, radius), mask, {"inpaint": {"method": "telea", "radius": radius}}


_MANIPULATE = {"splice": _splice, "copymove": _copymove, "removal": _removal}


def generate(job: Job, config: SynthConfig, pixels: dict[str, np.ndarray],
             ) -> tuple[bytes, str, np.ndarray | None, dict[str, Any]]:
    """One sample: ``(encoded image, ".png"|".jpg", mask bool [H, W] or None, metadata)``."""
    rng = rng_for("imlbench.synthetic", config.seed, job.spec.name, job.sample_id)
    photos = photos_in(job.spec.split)
    host = photos[job.index % len(photos)]
    ctx = _Context(config, pixels, rng, host)
    h, w = pixels[host.name].shape[:2]
    image, host_meta = ctx.crop(host, random_size(rng, config.short_side, config.max_aspect, w >= h))
    meta: dict[str, Any] = {"host": host_meta}
    mask = None
    if job.manipulation != AUTHENTIC:
        for _ in range(20):  # redraw regions whose rasterised area falls outside ``mask_area``
            result = _MANIPULATE[job.manipulation](image, ctx)
            if result is not None and config.mask_area[0] <= result[1].mean() <= config.mask_area[1]:
                break
        else:
            raise RuntimeError(f"synthetic {job.spec.name}/{job.sample_id}: no valid "
                               f"{job.manipulation} region in 20 draws; widen mask_area")
        image, mask, extra = result
        meta.update(extra, mask_area=round(float(mask.mean()), 5))
    if rng.random() < config.final_jpeg_prob:
        quality = randint(rng, config.final_jpeg_quality)
        meta["final"] = {"format": "jpeg", "quality": quality}
        return encode_jpeg(image, quality), ".jpg", mask, meta
    meta["final"] = {"format": "png"}
    return encode_png(image), ".png", mask, meta


# -- cache --------------------------------------------------------------------------------
def build_synthetic(force: bool = False, progress: bool = True,
                    config: SynthConfig | None = None) -> Path:
    """Generate the benchmark (all sets) unless it is cached; return its folder.

    The build happens in a hidden sibling folder that is renamed into place only once the
    manifest is written, so an interrupted build is never mistaken for a finished one.
    ``force`` rebuilds and replaces the cached copy.
    """
    config = config or default_config()
    root = dataset_dir(config)
    if (root / MANIFEST).is_file() and not force:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(root.parent)
    tmp = root.parent / f".building-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        pixels = {p.name: p.load() for p in PHOTOS}
        sets: dict[str, list[dict[str, Any]]] = {s.name: [] for s in set_specs(config)}
        jobs = plan(config)
        for job in progress_bar(jobs, desc=f"imlbench: building synthetic data {root.name}",
                                unit="img", enabled=progress):
            sets[job.spec.name].append(_write_sample(tmp, job, *generate(job, config, pixels)))
        manifest = {"generator_version": GENERATOR_VERSION, "key": config_key(config),
                    "config": asdict(config), "libraries": _library_versions(),
                    "photos": [asdict(p) for p in PHOTOS], "sets": sets}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _move_into_place(tmp, root, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _write_sample(tmp: Path, job: Job, encoded: bytes, ext: str, mask: np.ndarray | None,
                  meta: dict[str, Any]) -> dict[str, Any]:
    image_rel = f"{job.spec.name}/images/{job.sample_id}{ext}"
    mask_rel = f"{job.spec.name}/masks/{job.sample_id}.png" if mask is not None else None
    (tmp / image_rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp / image_rel).write_bytes(encoded)
    if mask_rel is not None:
        (tmp / mask_rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp / mask_rel, "PNG")
    return {"sample_id": job.sample_id, "image": image_rel, "mask": mask_rel,
            "label": int(mask is not None), "manipulation": job.manipulation, **meta}


def _move_into_place(tmp: Path, root: Path, force: bool) -> None:
    if root.exists():
        if not force and (root / MANIFEST).is_file():
            return  # another process finished the same build first; both are identical
        old = root.with_name(f"{tmp.name}-old")
        root.rename(old)
        tmp.rename(root)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        tmp.rename(root)
    except OSError:
        if not (root / MANIFEST).is_file():  # lost a race to a finished build: keep that one
            raise


def _remove_abandoned_builds(parent: Path) -> None:
    """Delete temp folders of builds on this host whose process is gone (killed mid-build)."""
    prefix = f".building-{socket.gethostname()}-"
    for stale in parent.glob(prefix + "*"):
        pid = stale.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _library_versions() -> dict[str, str]:
    """Recorded for provenance (encoders may differ across versions); not part of the key."""
    import cv2
    import PIL

    return {"numpy": np.__version__, "pillow": PIL.__version__, "opencv": cv2.__version__}


def load_manifest(config: SynthConfig | None = None, progress: bool = True) -> tuple[Path, dict]:
    """``(folder, manifest)`` of the benchmark for ``config``, building it on first use."""
    root = build_synthetic(progress=progress, config=config)
    return root, json.loads((root / MANIFEST).read_text())


def list_samples(set_name: str, config: SynthConfig | None = None,
                 progress: bool = True) -> list[Sample]:
    """Samples of one set (``train``, ``val``, ``test-splice``, ...), sorted by id."""
    if set_name not in SET_NAMES:
        raise ValueError(f"unknown synthetic set {set_name!r}; expected one of {SET_NAMES}")
    root, manifest = load_manifest(config, progress)
    samples = [Sample(r["sample_id"], root / r["image"], root / r["mask"] if r["mask"] else None,
                      r["label"], r["manipulation"])
               for r in sorted(manifest["sets"][set_name], key=lambda r: r["sample_id"])]
    missing = [s.image_path for s in samples if not s.image_path.is_file()]
    missing += [s.mask_path for s in samples if s.mask_path is not None and not s.mask_path.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} files of the cached synthetic benchmark are missing "
                           f"(e.g. {missing[0]}); rebuild it with `imlbench data synth --force`")
    return samples
