"""Photos of other sizes: the upload round trip training may see (augment.py), its cached variants
(features.py, train.cached_batches) and the fixed uploads robustness.py measures."""
from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from glimpse_model.augment import UploadAugment, training_augment
from glimpse_model.config import Config
from glimpse_model.data import ImageTextDataset, preprocess_spec, squash
from glimpse_model.features import AugmentView, cache_path, load_pixels
from glimpse_model.model import build_backbone
from glimpse_model.robustness import PHONE, Upload, parse_aspect, resized

SKIER = Path(__file__).parent / "fixtures" / "images" / "skier.jpg"


def _photo(size: int = 224) -> Image.Image:
    return squash(Image.open(SKIER).convert("RGB"), size)


def test_the_round_trip_is_deterministic_for_a_seed_and_changes_pixels(monkeypatch):
    aug = UploadAugment()
    im = _photo()
    a = np.asarray(aug.variant(im, 240, seed=7, image_id="x", k=0))
    assert a.shape == (240, 240, 3)
    assert np.array_equal(a, np.asarray(aug.variant(im, 240, seed=7, image_id="x", k=0)))
    plain = np.asarray(squash(im, 240))
    others = [np.asarray(aug.variant(im, 240, seed=s, image_id=i, k=k))
              for s, i, k in ((7, "x", 1), (8, "x", 0), (7, "y", 0))]
    for o in [a, *others]:
        assert np.abs(o.astype(int) - plain).mean() > 0.5           # the pixels changed
    for o in others:
        assert not np.array_equal(o, a)                              # another draw
    # every draw stays within the settings: width in [min_width, 224], aspect within ±25 %
    seen = []
    resize = Image.Image.resize

    def spy(self, size, *args, **kw):
        seen.append(tuple(size))
        return resize(self, size, *args, **kw)
    monkeypatch.setattr(Image.Image, "resize", spy)
    for k in range(40):
        aug.variant(im, 224, seed=1, image_id="x", k=k)
    down = [s for s in seen if s != (224, 224)]   # the downscales (the squash back is to 224×224)
    assert all(120 <= w <= 224 and 0.75 * w - 1 <= h <= 1.25 * w + 1 for w, h in down), down
    assert min(w for w, _ in down) < 150 and len({w for w, _ in down}) > 10


def test_the_round_trip_settings_are_checked():
    with pytest.raises(ValueError, match="augment_aspect"):
        UploadAugment(aspect=1.5)
    with pytest.raises(ValueError, match="augment_jpeg_prob"):
        UploadAugment(jpeg_prob=2)
    off = Config.from_dict({"augment_scale_aspect": False, "augment_views": 0})
    assert UploadAugment.from_config(off) is None and training_augment(off) is None
    assert training_augment(Config()) == UploadAugment(mirror=True)                # the shipped recipe's
    assert training_augment(Config.from_dict({"augment_scale_aspect": False})) is None  # one key switches it off
    with pytest.raises(ValueError, match="needs augment_views >= 1"):
        training_augment(Config.from_dict({"augment_scale_aspect": True, "augment_views": 0}))
    phase2 = {"augment_scale_aspect": True, "phase2_epochs": 2, "phase2_mode": "images"}
    assert training_augment(Config.from_dict(phase2)) == UploadAugment(mirror=True)  # drawn per image
    aug = training_augment(Config.from_dict({"augment_scale_aspect": True, "augment_views": 2,
                                             "augment_min_width": 100, "cache_hflip": False}))
    assert aug == UploadAugment(min_width=100, mirror=False)


def test_the_feature_cache_key_names_backbone_size_and_augmentation(tmp_path, tiny_data):
    images, captions, splits = tiny_data
    ds = ImageTextDataset(captions, splits, images.__getitem__, source="test", version="v")
    tiny, _ = build_backbone("tiny", "none")
    mnv3, _ = build_backbone("mobilenet_v3_small", "none")
    cfg = Config.from_dict({"backbone": "tiny", "cache_dir": str(tmp_path)})
    other = Config.from_dict({"backbone": "mobilenet_v3_small", "cache_dir": str(tmp_path)})
    s64, s96 = preprocess_spec("tiny", 64), preprocess_spec("tiny", 96)
    aug = UploadAugment()
    paths = [
        cache_path(cfg, tiny, ds, "train", s64),
        cache_path(cfg, tiny, ds, "train", s96),                                       # size
        cache_path(other, mnv3, ds, "train", preprocess_spec("mobilenet_v3_small", 64)),  # backbone
        cache_path(cfg, tiny, ds, "train", s64, flip=True),
        cache_path(cfg, tiny, ds, "train", s64, augment=AugmentView(aug, 0, 1)),
        cache_path(cfg, tiny, ds, "train", s64, augment=AugmentView(aug, 1, 1)),       # variant
        cache_path(cfg, tiny, ds, "train", s64, augment=AugmentView(aug, 0, 2)),       # seed
        cache_path(cfg, tiny, ds, "train", s64, augment=AugmentView(UploadAugment(min_width=100), 0, 1)),
        cache_path(cfg, tiny, ds, "train", s64, augment=AugmentView(UploadAugment(mirror=True), 0, 1)),
        cache_path(cfg, tiny, ds, "train", s64, stop=2),
    ]
    assert len(set(paths)) == len(paths), paths
    assert paths[0].parent != paths[1].parent != paths[2].parent
    assert paths[0].parent.name.startswith("tiny-") and paths[0].parent.name.endswith("-64")
    # the cached variant is the round trip of the stored image, squashed to the input
    iid = splits["train"][0]
    view = AugmentView(aug, 0, 1)
    got = load_pixels(ds, [iid], s96, transform=view.transform(96))
    stored = Image.open(io.BytesIO(images[iid])).convert("RGB")
    want = np.asarray(aug.variant(stored, 96, 1, iid, 0), dtype=np.float32) / 255
    assert got.shape == (1, 3, 96, 96)
    assert np.allclose(got[0].numpy().transpose(1, 2, 0), (want - 0.5) / 0.5, atol=1e-5)


def test_cached_batches_draw_among_the_views_deterministically():
    from glimpse_model.train import cached_batches
    n_img, views = 12, 4
    grids = [torch.full((n_img, 1, 1, 1), float(v)) + torch.arange(n_img).view(-1, 1, 1, 1) * 10 for v in range(views)]
    owner = torch.arange(n_img).repeat_interleave(5)
    model = SimpleNamespace(encode_grid=lambda g: g)

    def draws(seed, epoch):
        out = []
        for thunk, im, _ in cached_batches(model, grids, owner, seed, 1, epoch, 20, 3, "cpu"):
            g = thunk().flatten()
            assert torch.equal((g // 10).long(), im)                   # each caption gets its own image
            out.append((g % 10).long())
        return torch.cat(out)
    a = draws(3, 1)
    assert torch.equal(a, draws(3, 1)) and not torch.equal(a, draws(3, 2))
    assert set(a.tolist()) == set(range(views))
    # two views (the image and its mirror): the draws runs made before the round trips
    two = [g.clone() for g in grids[:2]]
    g = torch.Generator().manual_seed(3 * 1000 + 1)
    perm = torch.randperm(len(owner), generator=g)
    flips = torch.rand(len(owner), generator=g) < 0.5
    thunk, im, idx = next(cached_batches(model, two, owner, 3, 1, 1, 20, 1, "cpu"))
    assert torch.equal(idx, perm[:20])
    assert torch.equal(thunk(), torch.where(flips[idx].view(-1, 1, 1, 1), two[1][im], two[0][im]))


def test_training_on_cached_round_trips(tiny_store, tmp_path):
    """augment_views: the variants are cached beside the image and its mirror (train split only),
    the run trains on them, records its resolved input size, and evaluates dev un-augmented."""
    from glimpse_model.train import train
    root, _ = tiny_store
    cfg = Config.from_dict(dict(TINY, run_name="aug", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                                store_dir=str(root), epochs=1, max_train_images=64, image_size=0,
                                augment_scale_aspect=True, augment_views=2, augment_min_width=24))
    final = train(cfg)
    assert final["rsum"] > 0
    names = sorted(p.name for p in (tmp_path / "cache" / "features").glob("*/*.pt"))
    key = "up24-a0.25-j0.5-q60_95-m-seed7"
    assert names == sorted(["dev.pt", "dev_flip.pt", "train.pt", "train_flip.pt",
                            f"train_aug0-{key}.pt", f"train_aug1-{key}.pt"]), names
    folder = next((tmp_path / "cache" / "features").iterdir())
    assert folder.name.endswith("-224")                                 # tiny's native size
    recorded = json.loads((tmp_path / "aug" / "config.json").read_text())
    assert recorded["image_size"] == 224 and recorded["augment_views"] == 2
    assert json.loads((tmp_path / "aug" / "preprocess.json").read_text())["width"] == 224


def test_phase2_images_draw_a_round_trip_per_load_from_torchs_seed(tiny_data):
    from glimpse_model.train import Phase2Images
    images, _, splits = tiny_data
    blobs = [images[i] for i in splits["train"][:3]]
    spec = preprocess_spec("tiny", 48)

    def loads(augment, seed=0):
        torch.manual_seed(seed)
        data = Phase2Images(blobs, spec, augment)
        return torch.stack([data[i] for i in (0, 1, 2, 0)])
    a = loads(UploadAugment(mirror=True))
    assert a.shape == (4, 3, 48, 48) and torch.equal(a, loads(UploadAugment(mirror=True)))
    assert not torch.equal(a[0], a[3])                              # drawn anew each load
    assert not torch.equal(a, loads(None)) and not torch.equal(a, loads(UploadAugment(), seed=1))


@pytest.mark.parametrize("width,aspect,size", [(200, "3:2", (200, 133)), (200, "4:3", (200, 150)),
                                               (120, "0.75", (120, 160))])
def test_a_resized_upload_has_the_stated_size(width, aspect, size):
    up = resized(width, parse_aspect(aspect))
    assert (up.width, up.height) == size and up.name == f"{size[0]}x{size[1]}"
    assert up("x", _photo()).size == size
    q = resized(width, parse_aspect(aspect), 70)
    assert q.name.endswith("-q70") and q("x", _photo()).size == size
    with pytest.raises(ValueError):
        parse_aspect("0:1")


def test_a_phone_upload_is_a_12_megapixel_jpeg():
    assert (PHONE.width, PHONE.height, PHONE.quality) == (3024, 2268, 85)
    out = PHONE("x", _photo())
    assert out.size == (3024, 2268) and out.mode == "RGB"
    lossless = Upload("l", 3024, 2268)("x", _photo())
    assert not np.array_equal(np.asarray(out), np.asarray(lossless))   # JPEG-encoded
