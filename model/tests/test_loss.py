"""The contrastive losses (glimpse_model/loss.py) on batches small enough to work out by hand.

    cd model
    uv run --frozen pytest -q tests/test_loss.py
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from glimpse_model.loss import contrastive_loss, infonce_loss, vsepp_loss

EYE = torch.eye(2)
# captions at 37° and 53° from their images: sim = [[0.6, 0.8], [0.8, 0.6]], each caption is closer
# to the other image than to its own
TXT = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
IDS = torch.tensor([0, 1])


def test_infonce_by_hand():
    # sim = I at scale 1: every row and column is the softmax of [1, 0] → CE = log(1 + e^-1)
    loss = contrastive_loss(EYE, EYE, IDS, torch.tensor(0.0), "infonce")
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    # scale 10: logits [[6, 8], [8, 6]] → CE = log(1 + e^2), the same in both directions
    loss = contrastive_loss(EYE, TXT, IDS, torch.tensor(math.log(10.0)), "infonce")
    assert loss.item() == pytest.approx(math.log(1 + math.exp(2)), abs=1e-5)


def test_infonce_scale_is_capped_at_100():
    emb = F.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    ids = torch.arange(6)
    capped = contrastive_loss(emb, emb.flip(0), ids, torch.tensor(math.log(100.0)))
    assert torch.equal(contrastive_loss(emb, emb.flip(0), ids, torch.tensor(math.log(1000.0))), capped)


def test_vsepp_by_hand():
    # margin 0.2 + hardest negative 0.8 − positive 0.6 = 0.4, per direction
    assert contrastive_loss(EYE, TXT, IDS, torch.tensor(0.0), "vsepp", margin=0.2).item() == pytest.approx(0.8)
    # matched with a gap larger than the margin: no cost
    assert contrastive_loss(EYE, EYE, IDS, torch.tensor(0.0), "vsepp", margin=0.2).item() == 0.0


def test_both_is_infonce_plus_weighted_vsepp():
    scale = torch.tensor(math.log(10.0))
    loss = contrastive_loss(EYE, TXT, IDS, scale, "both", margin=0.2, vsepp_weight=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(2)) + 0.5 * 0.8, abs=1e-5)
    sim, same = EYE @ TXT.t(), IDS[None] == IDS[:, None]
    assert torch.equal(infonce_loss(sim, same & ~torch.eye(2, dtype=torch.bool), scale),
                       contrastive_loss(EYE, TXT, IDS, scale, "infonce"))
    assert torch.equal(vsepp_loss(sim, same, 0.2), contrastive_loss(EYE, TXT, IDS, scale, "vsepp"))


def test_two_captions_of_one_image_are_not_negatives():
    # rows 0 and 1 are two captions of image 0: each other's column is left out of the softmax
    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ids = torch.tensor([0, 0, 1])
    loss = contrastive_loss(img, img, ids, torch.tensor(0.0), "infonce")
    # rows 0, 1: softmax of [1, 0] (the other caption masked); row 2: of [0, 0, 1]; sim is symmetric
    expected = (2 * math.log(1 + math.exp(-1)) + math.log(2 + math.e) - 1) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # VSE++: the hardest negative of rows 0/1 is image 1 (0), never the other caption (1)
    assert contrastive_loss(img, img, ids, torch.tensor(0.0), "vsepp", margin=0.2).item() == 0.0


@pytest.mark.parametrize("kind", ["infonce", "vsepp", "both"])
def test_matched_pairs_cost_less_than_shuffled(kind):
    g = torch.Generator().manual_seed(1)
    img = F.normalize(torch.randn(16, 32, generator=g), dim=-1)
    txt = F.normalize(img + 0.1 * torch.randn(16, 32, generator=g), dim=-1)
    ids, scale = torch.arange(16), torch.tensor(math.log(1 / 0.07))
    matched = contrastive_loss(img, txt, ids, scale, kind)
    shuffled = contrastive_loss(img, txt[torch.randperm(16, generator=g)], ids, scale, kind)
    assert matched < shuffled
    # symmetric: swapping the two sides changes nothing
    assert contrastive_loss(txt, img, ids, scale, kind).item() == pytest.approx(matched.item(), rel=1e-6)
