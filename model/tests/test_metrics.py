import numpy as np
import torch

from glimpse_model.metrics import recall_metrics


def test_known_ranks():
    # 2 images, 4 captions (2 each); caption 2 (image 1) prefers image 0
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    m = recall_metrics(img, txt, np.array([0, 0, 1, 1]), ks=(1,))
    assert m["t2i"]["r1"] == 75.0  # captions 0, 1, 3 rank their image first
    assert m["i2t"]["r1"] == 100.0  # each image's best own caption beats all others


def test_ties_count_against_the_query():
    # a constant embedding ties everything: no direction may score above chance
    n = 50
    img, txt = torch.ones(n, 4) / 2, torch.ones(5 * n, 4) / 2
    m = recall_metrics(img, txt, np.repeat(np.arange(n), 5))
    assert m["t2i"]["r10"] == 0.0 and m["t2i"]["medr"] == n
    assert m["i2t"]["r10"] == 0.0
