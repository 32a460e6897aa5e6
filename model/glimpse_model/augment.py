"""Photos of other sizes: the random upload round trip training may see (``augment_scale_aspect``).

Serving squashes any upload to the square input (preprocess.json: resize "fill", bilinear), so a
photo 200 px wide, or a phone photo re-encoded as JPEG, reaches the image tower with other pixels
than the 224×224 Flickr8K copies it was trained on. ``UploadAugment`` mimics such an upload on a
training image: downscale to a random width in [``min_width``, its width] with its aspect ratio
changed by up to ±``aspect``, re-encode as JPEG (quality 60–95) with probability ``jpeg_prob``,
then squash back to the input size with the resize serving uses (data.squash).

Phase 2 on images draws a new round trip for every image it loads; the cached phases (phase 1 and
phase 2 cached: features.py) cache ``augment_views`` variants of each train image, variant ``k``
of an image always the same pixels for the same seed, and sample among them each epoch
(train.cached_batches). Evaluation never augments. robustness.py measures the fixed uploads
("200 px wide", "phone") a served model sees.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image

from .data import squash

#: The JPEG qualities a round trip re-encodes at (inclusive).
JPEG_QUALITY = (60, 95)


def jpeg_round_trip(im: Image.Image, quality: int) -> Image.Image:
    """``im`` encoded as a JPEG at ``quality`` and decoded again (RGB)."""
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


@dataclass(frozen=True)
class UploadAugment:
    """The random upload round trip (module docstring); ``mirror``: also mirror half the variants
    (the cached variants stand beside both the image and its mirror)."""
    min_width: int = 120
    aspect: float = 0.25
    jpeg_prob: float = 0.5
    mirror: bool = False

    def __post_init__(self):
        if self.min_width < 8:
            raise ValueError(f"augment_min_width must be at least 8 (got {self.min_width})")
        if not 0 <= self.aspect < 1:
            raise ValueError(f"augment_aspect must be in [0, 1) (got {self.aspect})")
        if not 0 <= self.jpeg_prob <= 1:
            raise ValueError(f"augment_jpeg_prob must be in [0, 1] (got {self.jpeg_prob})")

    @classmethod
    def from_config(cls, cfg, mirror: bool = False) -> "UploadAugment | None":
        """The round trip a run's config asks for (``augment_scale_aspect``), or None."""
        if not cfg.augment_scale_aspect:
            return None
        return cls(cfg.augment_min_width, cfg.augment_aspect, cfg.augment_jpeg_prob, mirror)

    def key(self) -> str:
        """Names the settings in a feature cache file (variants of other settings never mix)."""
        q0, q1 = JPEG_QUALITY
        return f"up{self.min_width}-a{self.aspect:g}-j{self.jpeg_prob:g}-q{q0}_{q1}" + ("-m" if self.mirror else "")

    def __call__(self, im: Image.Image, size: int, rng: random.Random) -> Image.Image:
        """One round trip of ``im`` drawn from ``rng``, squashed to ``size``×``size``."""
        w0, h0 = im.size
        w = rng.randint(min(self.min_width, w0), w0)
        h = max(1, round(w * h0 / w0 * rng.uniform(1 - self.aspect, 1 + self.aspect)))
        out = im.resize((w, h), Image.BILINEAR)
        if rng.random() < self.jpeg_prob:
            out = jpeg_round_trip(out, rng.randint(*JPEG_QUALITY))
        if self.mirror and rng.random() < 0.5:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        return squash(out, size)

    def variant(self, im: Image.Image, size: int, seed: int, image_id: str, k: int) -> Image.Image:
        """Cached variant ``k`` of image ``image_id``: the same pixels for the same (seed, image, k)."""
        return self(im, size, random.Random(f"{seed}|{image_id}|{k}"))


def training_augment(cfg) -> UploadAugment | None:
    """The round trip a run trains with (None with ``augment_scale_aspect`` off, whatever
    ``augment_views`` says: switching it off is one key), checked against the phases that would
    use it: cached training needs ``augment_views`` variants. Raises ValueError naming the conflict."""
    if cfg.augment_views < 0:
        raise ValueError(f"augment_views must not be negative (got {cfg.augment_views})")
    aug = UploadAugment.from_config(cfg, mirror=cfg.cache_hflip)
    images_phase = cfg.phase2_epochs > 0 and cfg.phase2_mode == "images"
    if aug is not None and not cfg.augment_views and not images_phase:
        raise ValueError("augment_scale_aspect on cached features needs augment_views >= 1 "
                         "(or phase 2 on images, which draws a round trip per image)")
    return aug
