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


def test_bias_of_the_ranked_side_changes_rankings():
    # caption 2 (of image 1) is a hub: image 0 ranks it first until its bias pushes it down
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[0.8, 0.6], [0.0, 1.0], [0.9, 0.43], [0.1, 0.99]])
    owner = np.array([0, 1, 1, 1])
    assert recall_metrics(img, txt, owner, ks=(1,))["i2t"]["r1"] == 50.0
    m = recall_metrics(img, txt, owner, ks=(1,), txt_bias=torch.tensor([0.0, 0.0, -0.5, 0.0]))
    assert m["i2t"]["r1"] == 100.0
    # the t2i direction is untouched by caption biases, and changed by image biases
    assert m["t2i"] == recall_metrics(img, txt, owner, ks=(1,))["t2i"]
    assert recall_metrics(img, txt, owner, ks=(1,), img_bias=torch.tensor([-2.0, 0.0]))["t2i"]["r1"] == 75.0
