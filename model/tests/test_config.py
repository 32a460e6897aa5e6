"""The trainer's defaults are the recipe of the model a fresh clone serves (the demo pack's
model, demo/model/config.json): a bare run and StartTraining {} train that recipe."""
from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import get_type_hints

import pytest

from glimpse_model.config import (ARCHITECTURE_KEYS, MODEL_DIR, NATIVE_IMAGE_SIZE, REPO_ROOT, RETIRED, SCHEMA,
                                  SCHEMA_PATH, Config, _schema_default, native_image_size, parse_config)

SHIPPED_CONFIG = REPO_ROOT / "demo" / "model" / "config.json"
CONFIGS = sorted((MODEL_DIR / "configs").glob("*.json"))
RECIPE_FILE = MODEL_DIR / "configs" / "flickr8k_pretrained_cpu.json"
# The Training service's copy of config.schema.json (its image holds no model/).
SERVICE_SCHEMA = REPO_ROOT / "services" / "training" / "src" / "trainer-config.schema.json"
TRAINING_PROTO = REPO_ROOT / "proto" / "glimpse" / "training" / "v1" / "training_service.proto"

# Not the recipe: where and how a run executes (paths, store, device, threads, progress), what it
# records about itself, and the seed (a draw, not a choice; the Training service's seed 0 means
# this default too).
NOT_RECIPE = {
    "run_name", "out_dir", "cache_dir", "device", "amp", "num_threads", "num_workers", "resume", "progress",
    "events_to_store", "events_key", "stop_after_epochs", "source", "flickr8k_dir", "store", "store_dir",
    "bucket", "dataset", "dataset_version", "weights_source", "dataset_source",
    "dataset_version_resolved", "git_commit", "loss_choice_note", "soup_of", "seed",
}


def test_defaults_are_the_shipped_recipe():
    shipped = json.loads(SHIPPED_CONFIG.read_text())
    assert not shipped.get("soup_of"), "the shipped model is a soup: name the recipe the defaults follow"
    defaults = Config()
    defaults.image_size = defaults.input_size  # 0: the backbone's native size, which a run records
    recipe = [f.name for f in fields(Config) if f.name not in NOT_RECIPE]
    # Keys newer than the shipped model are absent from its config.json (it was trained without them).
    compared = [k for k in recipe if k in shipped]
    assert len(compared) >= 40, compared
    drift = {k: {"default": getattr(defaults, k), "shipped": shipped[k]} for k in compared
             if getattr(defaults, k) != shipped[k]}
    assert drift == {}, f"config.py defaults differ from {SHIPPED_CONFIG.relative_to(REPO_ROOT)}: {drift}"


def test_records_made_before_an_option_was_removed_still_load():
    """config.json / best.pt written before #25 hold pretrained_dir and word_vectors (the demo pack's
    config.json among them; export --from-export reads it): a record loads without them, while a
    config document naming one is refused as an unknown key."""
    shipped = json.loads(SHIPPED_CONFIG.read_text())
    record = {k: v for k, v in shipped.items() if k not in ("export", "selected_checkpoint")}
    cfg = Config.from_record({**record, **{k: "" for k in RETIRED}})
    assert cfg.backbone == shipped["backbone"] and not RETIRED & set(cfg.to_dict())
    assert not RETIRED & set(SCHEMA["properties"])
    for key in sorted(RETIRED):
        with pytest.raises(KeyError, match=f"unknown config key: {key}"):
            Config.from_dict({key: ""})


def test_config_is_the_schema():
    """config.schema.json is the one list: Config has its properties, in order, with their types and defaults."""
    props = SCHEMA["properties"]
    assert SCHEMA["additionalProperties"] is False
    assert [f.name for f in fields(Config)] == list(props)
    types = {"integer": int, "number": float, "boolean": bool, "string": str}
    hints = get_type_hints(Config)
    defaults = Config()
    for name, spec in props.items():
        assert hints[name] is types[spec["type"]], name
        want = spec["default"]
        if isinstance(want, str):
            want = want.replace("{model_dir}", str(MODEL_DIR))
        got = getattr(defaults, name)
        assert got == want and type(got) is types[spec["type"]], (name, got, want)
    assert defaults.out_dir == str(MODEL_DIR / "runs") and defaults.cache_dir == str(MODEL_DIR / ".cache")


def test_a_schema_default_of_another_type_is_refused():
    with pytest.raises(TypeError, match="seed's default 1.5 is not of type integer"):
        _schema_default("seed", {"type": "integer", "default": 1.5})
    with pytest.raises(TypeError, match="amp's default"):
        _schema_default("amp", {"type": "boolean", "default": 1})
    with pytest.raises(TypeError, match="epochs's default"):
        _schema_default("epochs", {"type": "integer", "default": True})
    assert type(_schema_default("lr", {"type": "number", "default": 1})) is float


@pytest.mark.parametrize("backbone,native", [
    ("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260),
    ("mobilenet_v3_small", 224), ("tiny", 224),
])
def test_image_size_defaults_to_the_backbones_native_size(backbone, native, monkeypatch):
    """image_size 0 (the default) is each backbone's native input; a size set explicitly stays; the
    preprocessing a run writes (preprocess.json) and the size it records follow."""
    from glimpse_model.data import preprocess_spec
    assert Config().image_size == 0 and native_image_size(backbone) == native
    cfg = Config.from_dict({"backbone": backbone})
    assert cfg.input_size == native
    assert preprocess_spec(backbone)["width"] == preprocess_spec(backbone)["height"] == native
    assert preprocess_spec(backbone, cfg.input_size)["width"] == native
    assert Config.from_dict({"backbone": backbone, "image_size": 200}).input_size == 200
    assert preprocess_spec(backbone, 200)["width"] == 200
    monkeypatch.delenv("GLIMPSE_TRAIN_CONFIG", raising=False)
    cfg, _ = parse_config(["--backbone", backbone, "--text-encoder", "bilstm"])
    assert cfg.input_size == native


def test_an_unknown_backbone_has_no_native_size():
    with pytest.raises(ValueError, match="unknown backbone 'efficientnet_lite3'"):
        Config.from_dict({"backbone": "efficientnet_lite3"}).input_size


def test_the_training_service_reads_an_identical_copy():
    assert SERVICE_SCHEMA.read_bytes() == SCHEMA_PATH.read_bytes(), (
        "run `cp model/glimpse_model/config.schema.json services/training/src/trainer-config.schema.json`")


def test_the_proto_documents_the_default_seed():
    """StartTraining's seed 0 is the trainer's own default (one seed on both sides)."""
    m = re.search(r"// 0 means (\d+)\b[^\n]*\n\s*int64 seed = \d+[ ;]", TRAINING_PROTO.read_text())
    assert m, "no '0 means N' comment above TrainingConfig.seed"
    assert int(m.group(1)) == Config().seed == SCHEMA["properties"]["seed"]["default"]


# ---- config files name their architecture -----------------------------------------------------
def test_every_config_file_names_a_tower_that_exists():
    """configs/ holds only recipes whose towers are in the tree, each named explicitly."""
    assert RECIPE_FILE in CONFIGS and len(CONFIGS) >= 2, CONFIGS
    for path in CONFIGS:
        doc = json.loads(path.read_text())
        assert set(ARCHITECTURE_KEYS) <= set(doc), path.name
        cfg, _ = parse_config(["--config", str(path)])
        assert cfg.backbone in NATIVE_IMAGE_SIZE, path.name
        assert cfg.text_encoder in ("minilm_l6", "bilstm"), path.name


def test_the_recipe_file_is_the_defaults():
    """configs/flickr8k_pretrained_cpu.json is the shipped recipe: every value it sets is the default,
    bar the run's name and the progress bar."""
    doc = json.loads(RECIPE_FILE.read_text())
    defaults = Config()
    drift = {k: (v, getattr(defaults, k)) for k, v in doc.items()
             if k not in ("run_name", "progress") and getattr(defaults, k) != v}
    assert drift == {}


@pytest.mark.parametrize("doc,missing", [
    ({"epochs": 2}, "names no backbone and no text_encoder"),
    ({"backbone": "tiny", "epochs": 2}, "names no text_encoder"),
    ({"text_encoder": "bilstm"}, "names no backbone"),
])
def test_a_config_file_without_its_architecture_is_refused(tmp_path, monkeypatch, capsys, doc, missing):
    monkeypatch.delenv("GLIMPSE_TRAIN_CONFIG", raising=False)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as e:
        parse_config(["--config", str(path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{path} {missing}: a config file must name its architecture" in err
    # the same file through the environment (GLIMPSE_TRAIN_CONFIG = a path)
    monkeypatch.setenv("GLIMPSE_TRAIN_CONFIG", str(path))
    with pytest.raises(SystemExit):
        parse_config([])
    assert missing in capsys.readouterr().err


def test_overrides_and_no_config_train_the_defaults(monkeypatch):
    """No document: the defaults (the shipped recipe). An inline document (the Training service's
    GLIMPSE_TRAIN_CONFIG, --config-json) is a set of overrides and need not name the towers."""
    monkeypatch.delenv("GLIMPSE_TRAIN_CONFIG", raising=False)
    cfg, _ = parse_config([])
    assert (cfg.backbone, cfg.text_encoder) == (Config().backbone, Config().text_encoder) == ("efficientnet_lite1", "minilm_l6")
    monkeypatch.setenv("GLIMPSE_TRAIN_CONFIG", json.dumps({"epochs": 2, "seed": 1234, "phase2_epochs": 0}))
    cfg, _ = parse_config(["--config-json", '{"batch_size": 8}'])
    assert (cfg.epochs, cfg.batch_size, cfg.backbone, cfg.text_encoder) == (2, 8, "efficientnet_lite1", "minilm_l6")
    cfg, _ = parse_config(["--config", '{"backbone": "tiny"}', "--text-encoder", "bilstm"])
    assert (cfg.backbone, cfg.text_encoder) == ("tiny", "bilstm")
