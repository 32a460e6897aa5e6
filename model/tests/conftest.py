import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")

from helpers import make_tiny_dataset, write_published_version  # noqa: E402

# tiny but real: every component of the production model, just narrower
TINY = {
    "backbone": "tiny", "backbone_weights": "none", "image_size": 64, "cache_hflip": True, "augment_scale_aspect": False,
    "word_dim": 32, "text_hidden": 48, "image_hidden": 128, "embed_dim": 256, "image_head": "attn", "tta_hflip": True,
    "epochs": 8, "batch_size": 32, "lr": 3e-3, "warmup_steps": 10, "vocab_min_count": 1,
    "max_len": 16, "dropout": 0.1, "num_threads": 2, "progress": "none", "seed": 7,
    "text_encoder": "bilstm", "text_proj_hidden": 1024, "qb_beta": 0.0, "tta_zoom": 0.0,
}


@pytest.fixture(scope="session")
def tiny_data():
    return make_tiny_dataset()


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, tiny_data):
    root = tmp_path_factory.mktemp("store")
    version = write_published_version(root, *tiny_data)
    return root, version


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_store):
    """One in-process training run on the published tiny dataset (shared by several tests)."""
    from glimpse_model.config import Config
    from glimpse_model.train import train

    root, version = tiny_store
    out = tmp_path_factory.mktemp("runs")
    cfg = Config.from_dict(dict(TINY, run_name="ref", out_dir=str(out), cache_dir=str(out / "cache"),
                                store_dir=str(root), bucket="glimpse", dataset="flickr8k",
                                dataset_version="latest"))
    final = train(cfg)
    return cfg, final
