"""Train the Glimpse image–text encoder: the training loop and its dev evaluation.

Phase 1: the backbone is frozen; its spatial grids (and a pretrained text tower's frozen bottom)
are computed once and cached (``model/.cache``), then the image head + text tower train on the
cache — the shipped recipe trains on full Flickr8K in ~20 minutes on a 2-core CPU.  Phase 2
(optional, not in the shipped recipe): fine-tune the top ``--phase2-unfreeze`` backbone blocks with
the heads — ``--phase2-mode images`` end to end on augmented images (GPU), ``cached`` on cached
activations of the frozen bottom (CPU).

    cd model
    uv run python -m glimpse_model.train --config configs/flickr8k_pretrained_cpu.json \
        --flickr8k-dir ../../shared/datasets/flickr8k

    # from a published dataset version (folder store or MinIO via MINIO_* env); no config: the
    # defaults, which are the same recipe
    uv run python -m glimpse_model.train --store-dir ../.data/store --bucket glimpse \
        --dataset flickr8k --dataset-version latest

    # continue a killed run bit-for-bit
    uv run python -m glimpse_model.train --config configs/flickr8k_pretrained_cpu.json ... --resume

Config: every field of ``glimpse_model.config.Config`` is a flag; a JSON document can be
given with ``--config file.json`` (which must name ``backbone`` and ``text_encoder``) or env
``GLIMPSE_TRAIN_CONFIG``.  Outputs in ``runs/<run-name>/``: checkpoint.pt (last epoch, with
optimizer/scheduler/RNG state), best.pt (best dev rsum), vocab.json, preprocess.json, config.json,
dev_metrics.json, events.jsonl, report.png.  With an object store for the events, best.pt and
checkpoint.pt are mirrored to ``runs/<run-name>/`` there after each epoch, and ``--resume`` with no
local checkpoint fetches them (and events.jsonl) first: a new pod continues a run bit-for-bit.

``train`` sets a run up and loops the epochs of each phase over ``train_one_epoch`` (the loss is
``loss.contrastive_loss``), ``evaluate`` (dev recall) and ``end_epoch`` (best.pt, the checkpoint,
the store mirror, the "epoch" event).  Beside it: schedule.py (optimizer groups, learning-rate
schedules), checkpoints.py (the run folder, its store mirror, resuming), encode.py (embeddings in
bulk), report.py (report.png).
"""
from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .augment import UploadAugment, training_augment
from .checkpoints import RUN_STATE, RunFiles, open_run, restore, resume_point, rng_state
from .config import Config, git_commit, parse_config, pick_device, seed_everything
from .data import Tokenizer, WordPieceTokenizer, load_dataset, open_rgb, pad_batch, preprocess_spec
from .encode import cached_text, encode_cached_text, encode_grids, encode_images, encode_texts
from .events import EventLog
from .features import view_grids
from .loss import contrastive_loss
from .metrics import recall_metrics
from .model import GlimpseModel, build_backbone
from .report import write_report
from .schedule import Optim, adamw, cosine_schedule, optimizer_groups, phase2_groups, phase_epochs


def optimizer_step(loss, opt, scaler, params, grad_clip: float) -> None:
    """Backward, gradient clipping and the optimizer step, with AMP loss scaling on CUDA."""
    params = list(params)
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()


def caption_table(ds, ids: list[str], tok: Tokenizer):
    seqs, owner, texts = [], [], []
    for i, iid in enumerate(ids):
        for c in ds.captions[iid]:
            seqs.append(tok.encode(c))
            owner.append(i)
            texts.append(c)
    tids, lens = pad_batch(seqs, tok.pad_id)
    return torch.from_numpy(tids), torch.from_numpy(lens), np.array(owner), texts


def usable_ids(ds, split: str, limit: int = 0) -> list[str]:
    ids = [i for i in ds.splits.get(split, []) if ds.captions.get(i)]
    return ids[:limit] if limit else ids


class Phase2Images(torch.utils.data.Dataset):
    """Train images for phase 2 on images, augmented anew each time one is loaded: an upload round
    trip first with ``augment`` (augment.py), then a random resized crop, a mirror, colour jitter."""

    def __init__(self, blobs: list[bytes], spec: dict, augment: UploadAugment | None = None):
        import torchvision.transforms as T
        self.blobs = blobs
        self.size = size = spec["width"]
        # the crop's random mirror already mirrors half the images
        self.augment = replace(augment, mirror=False) if augment is not None else None
        self.tf = T.Compose([
            T.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.75, 1.333)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.2, 0.2, 0.2),
            T.ToTensor(),
            T.Normalize(spec["mean"], spec["std"]),
        ])

    def __len__(self):
        return len(self.blobs)

    def __getitem__(self, i):
        im = open_rgb(self.blobs[i])
        if self.augment is not None:
            # drawn from torch's generator, like the transforms after it (seeded; per worker in a DataLoader)
            im = self.augment(im, self.size, random.Random(int(torch.randint(0, 1 << 62, ()))))
        return self.tf(im)


# ---- what travels between the training units ------------------------------------------------
@dataclass
class Captions:
    """A split's captions as training uses them: padded token ids, lengths, the image (an index
    into the split's ids) of each, and with a pretrained text tower what its frozen bottom gives
    each caption (``cached_text``) and the layer the trained top starts at."""
    tids: torch.Tensor
    lens: torch.Tensor
    owner: np.ndarray
    cache: torch.Tensor | None = None
    start: int | None = None


@dataclass
class Progress:
    """What the run accumulates epoch after epoch; the checkpoint keeps all but ``epochs_run``."""
    history: dict = field(default_factory=lambda: {"steps": [], "evals": []})
    best_rsum: float = -1.0
    global_step: int = 0
    epochs_run: int = 0  # by this process: --stop-after-epochs counts these


# ---- one epoch ---------------------------------------------------------------------------------
def cached_batches(model: GlimpseModel, grids: list[torch.Tensor], owner: torch.Tensor, seed: int,
                   phase: int, epoch: int, batch_size: int, steps: int, device):
    """Every training caption once (``owner``: its image), with one of its image's cached views
    (``grids``: the image, then its mirror, then its upload round trips; each caption draws one):
    (image-embedding thunk, image of each caption, caption rows).  The order and the draws depend
    on seed, phase and epoch only."""
    g = torch.Generator().manual_seed(seed * 1000 + (500 if phase == 2 else 0) + epoch)
    perm = torch.randperm(len(owner), generator=g)
    if len(grids) <= 2:  # the image (and its mirror): the draws of the runs made before round trips
        view = ((torch.rand(len(owner), generator=g) < 0.5).long() if len(grids) == 2
                else torch.zeros(len(owner), dtype=torch.long))
    else:
        view = torch.randint(0, len(grids), (len(owner),), generator=g)
    for s in range(steps):
        idx = perm[s * batch_size:(s + 1) * batch_size]
        im, v = owner[idx], view[idx]
        grid = grids[0][im]
        for j in range(1, len(grids)):
            if bool((v == j).any()):
                grid[v == j] = grids[j][im[v == j]]
        yield (lambda grid=grid: model.encode_grid(grid.to(device, non_blocking=True))), im, idx


def image_batches(model: GlimpseModel, images: Phase2Images, caps_of: list[np.ndarray], seed: int, epoch: int,
                  batch_size: int, num_workers: int, device):
    """Every training image once, augmented, with one of its captions (``caps_of[i]``: the
    caption rows of image i), for phase 2 on images; batches as in ``cached_batches``."""
    n = len(caps_of)
    g = torch.Generator().manual_seed(seed * 1000 + 500 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    pick = torch.randint(0, 1 << 30, (n,), generator=g).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(images, perm), batch_size=batch_size,
                                         shuffle=False, num_workers=num_workers, drop_last=True)
    for s, pix in enumerate(loader):
        im_idx = torch.tensor(perm[s * batch_size:(s + 1) * batch_size])
        cap = torch.tensor([caps_of[i][pick[i] % len(caps_of[i])] for i in im_idx.tolist()])
        yield (lambda pix=pix: model.encode_image(pix.to(device))), im_idx, cap


def encode_caption_rows(model: GlimpseModel, caps: Captions, rows: torch.Tensor, device) -> torch.Tensor:
    """Embeddings of the captions ``rows`` of ``caps``, with gradients (training)."""
    lens = caps.lens[rows]
    if caps.start is not None:
        return encode_cached_text(model, caps.cache[rows], lens, caps.start, device)
    return model.encode_text(caps.tids[rows, : int(lens.max())].to(device), lens.to(device))


def train_one_epoch(model: GlimpseModel, batches, captions: Captions, optim: Optim, cfg: Config, device,
                    amp: bool, events: EventLog, progress: Progress, *, phase: int, epoch: int,
                    steps: int, batch_size: int) -> tuple[float, float]:
    """One epoch over ``batches`` of (image-embedding thunk, image ids, caption rows): the loss,
    the optimizer step and the progress events; returns (mean loss, seconds)."""
    n_epochs = phase_epochs(cfg, phase)
    model.train()
    if phase == 2:
        model.backbone.eval()  # frozen BatchNorm statistics; the top blocks' weights train
    t_ep, loss_sum, t_log = time.time(), 0.0, time.time()
    events.start_bar(steps, f"phase{phase} epoch {epoch}/{n_epochs}")
    for s, (embed_images, im, cap) in enumerate(batches):
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            ie = embed_images()
            te = encode_caption_rows(model, captions, cap, device)
            loss = contrastive_loss(ie.float(), te.float(), im.to(device), model.logit_scale,
                                    cfg.loss, cfg.margin, cfg.vsepp_weight)
        optimizer_step(loss, optim.opt, optim.scaler, optim.params, cfg.grad_clip)
        optim.sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100.0))
        progress.global_step += 1
        lv = float(loss)
        loss_sum += lv
        progress.history["steps"].append((progress.global_step, lv))
        events.tick(1, loss=f"{lv:.3f}")
        if time.time() - t_log > 10 or s == steps - 1:
            el = time.time() - t_ep
            per_step = el / (s + 1)
            remaining = (steps - s - 1) + steps * (n_epochs - epoch)
            events.emit("step", phase=phase, epoch=epoch, step=progress.global_step, loss=round(lv, 5),
                        lr=optim.sched.get_last_lr()[0], temperature=round(1 / float(model.logit_scale.exp()), 5),
                        throughput=round((s + 1) * batch_size / el, 1), eta_s=round(remaining * per_step, 1))
            t_log = time.time()
    events.close_bar()
    return loss_sum / steps, time.time() - t_ep


def evaluate(model: GlimpseModel, captions: Captions, device, grids: list[torch.Tensor] | None = None,
             ds=None, ids: list[str] | None = None, spec: dict | None = None) -> dict:
    """Dev recall (``recall_metrics``) of ``captions`` against their images: the images' cached
    activations ``grids`` (the image, then its test-time views), or without grids the images
    ``ids`` of ``ds`` through the whole model.  (evaluate.py is the command that evaluates a
    finished run from its files; this one reuses what training holds in memory.)"""
    te = (encode_texts(model, captions.tids, captions.lens, device, cache=captions.cache, start=captions.start)
          if captions.start is not None else encode_texts(model, captions.tids, captions.lens, device))
    if grids is not None:
        ie = encode_grids(model, grids[0], device, views=grids[1:])
    else:
        ie = encode_images(model, ds, ids, spec, device)
    return recall_metrics(ie, te, captions.owner)


def eval_due(cfg: Config, phase: int, epoch: int) -> bool:
    return epoch % cfg.eval_every == 0 or epoch == phase_epochs(cfg, phase)


def end_epoch(cfg: Config, model: GlimpseModel, tok, optim: Optim, files: RunFiles, progress: Progress,
              events: EventLog, *, phase: int, epoch: int, loss: float, secs: float, dev: dict | None,
              t_start: float) -> None:
    """After an epoch (``dev``: its evaluation, None when not due): its history entry, best.pt when
    dev improved, the checkpoint (--resume continues from it), their mirror in the store and the
    "epoch" event; exits once this process has run --stop-after-epochs epochs."""
    progress.history["evals"].append({"phase": phase, "epoch": epoch, "step": progress.global_step, "loss": loss,
                                      "dev": dev, "epoch_s": round(secs, 1)})
    if dev is not None and dev["rsum"] > progress.best_rsum:
        progress.best_rsum = dev["rsum"]
        files.save("best.pt", {"model": model.state_dict(), "dev": dev, "phase": phase, "epoch": epoch,
                               "config": cfg.to_dict(), "vocab": tok.tokens})
    files.save("checkpoint.pt", {"model": model.state_dict(), "optimizer": optim.opt.state_dict(),
                                 "scheduler": optim.sched.state_dict(),
                                 "scaler": optim.scaler.state_dict() if optim.scaler else None,
                                 "phase": phase, "epoch": epoch, "global_step": progress.global_step,
                                 "history": progress.history, "best_rsum": progress.best_rsum, "rng": rng_state(),
                                 "config": cfg.to_dict()})
    files.mirror()
    progress.epochs_run += 1
    events.emit("epoch", phase=phase, epoch=epoch, step=progress.global_step, loss=round(loss, 5),
                dev=dev, best_rsum=progress.best_rsum, epoch_s=round(secs, 1),
                elapsed_s=round(time.time() - t_start, 1), checkpoint=str(files.checkpoint),
                force_upload=True)
    if cfg.stop_after_epochs and progress.epochs_run >= cfg.stop_after_epochs:
        events.emit("stopped", phase=phase, epoch=epoch, reason="stop_after_epochs", force_upload=True)
        events.close_bar()
        raise SystemExit(0)


# ---- setting a run up, and finishing it ------------------------------------------------------------


def build_tokenizer(cfg: Config, ds, train_ids: list[str]):
    """MiniLM's WordPiece tokenizer, or a vocabulary of the training captions."""
    if cfg.text_encoder == "minilm_l6":
        from .pretrained import minilm_dir
        return WordPieceTokenizer.from_file(minilm_dir(cfg.cache_dir) / "tokenizer.json", cfg.max_len)
    return Tokenizer.build((c for i in train_ids for c in ds.captions[i]), cfg.vocab_min_count, cfg.max_len)


def frozen_backbone(cfg: Config):
    """(backbone, where its weights came from), frozen: phase 1 trains on its cached output."""
    backbone, source = build_backbone(cfg.backbone, cfg.backbone_weights)
    for p in backbone.parameters():
        p.requires_grad_(False)
    backbone.eval()
    return backbone, source


def feature_log(events: EventLog, phase: int, split: str):
    """view_grids' progress callback: a "features" event at most every 10 s, and at the end."""
    last = [0.0]

    def f(done, total, elapsed):
        if time.time() - last[0] > 10 or done == total:
            last[0] = time.time()
            events.emit("features", phase=phase, split=split, done=done, total=total,
                        throughput=round(done / max(elapsed, 1e-6), 1),
                        eta_s=round((total - done) * elapsed / max(done, 1), 1))
    return f


def load_grids(cfg: Config, backbone, ds, train_ids: list[str], n_train: int, dev_ids: list[str], spec: dict,
               device, events: EventLog, phase: int, stop: int | None = None,
               augment: UploadAugment | None = None) -> tuple[dict, float]:
    """Backbone activations, from the cache or computed once: the final grids (phase 1) or the
    input of block ``stop``. {"train": [image, mirror (cache_hflip), cfg.augment_views upload
    round trips (``augment``)], "dev": [image, then its test-time views]}, and the seconds it took.
    The cache holds every usable training image (``train_ids``), so --max-train-images (the first
    ``n_train``) reuses it."""
    tr, s1 = view_grids(cfg, backbone, ds, "train", train_ids, spec, device, cfg.cache_hflip,
                        log=feature_log(events, phase, "train"), stop=stop, augment=augment,
                        augment_views=cfg.augment_views)
    dv, s2 = view_grids(cfg, backbone, ds, "dev", dev_ids, spec, device, cfg.tta_hflip, cfg.tta_zoom,
                        log=feature_log(events, phase, "dev"), stop=stop)
    return {"train": [g[:n_train] for g in tr], "dev": dv}, s1 + s2


def build_model(cfg: Config, tok, backbone, device, events: EventLog, fresh: bool) -> GlimpseModel:
    """The model, initialised from cfg.seed; a fresh run (not resumed: the checkpoint has the
    weights) starts its heads and text tower from --init-from."""
    torch.manual_seed(cfg.seed)
    model = GlimpseModel(cfg, len(tok), backbone, backbone.out_channels).to(device)

    if cfg.init_from and fresh:
        init = torch.load(cfg.init_from, map_location="cpu", weights_only=False)
        if init.get("vocab") != tok.tokens:
            raise SystemExit(f"--init-from {cfg.init_from}: its vocabulary differs from this run's")
        missing, unexpected = model.load_state_dict(
            {k: v for k, v in init["model"].items() if not k.startswith("backbone.")}, strict=False)
        if unexpected or any(not k.startswith("backbone.") for k in missing):
            raise SystemExit(f"--init-from {cfg.init_from}: different architecture "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        events.emit("init_from", phase=1, path=cfg.init_from, dev=init.get("dev"))
    return model


def cache_text_bottom(cfg: Config, model: GlimpseModel, tok, train: Captions, dev: Captions, device,
                      events: EventLog) -> float:
    """A pretrained text tower: its frozen bottom runs once over every caption (``cached_text``),
    kept in ``train``/``dev``; returns the seconds it took."""
    start = model.text.layers - cfg.text_unfreeze
    t0 = time.time()
    for caps in (train, dev):
        caps.cache, caps.start = cached_text(cfg, model, tok, caps.tids, caps.lens, start, device), start
    secs = time.time() - t0
    events.emit("features_ready", phase=1, seconds=round(time.time() - t0, 1), text_start=start,
                text=list(train.cache.shape[1:]), force_upload=True)
    return secs


def finish_run(cfg: Config, files: RunFiles, ds, progress: Progress, events: EventLog, t_start: float,
               feat_secs: float) -> dict:
    """The run's outputs, from its best checkpoint: dev_metrics.json (returned), config.json,
    report.png and the "done" event."""
    best = torch.load(files.best, map_location="cpu", weights_only=False)
    train_secs = time.time() - t_start
    final = {"split": "dev", **best["dev"], "dataset_version": ds.version,
             "selected": {"phase": best["phase"], "epoch": best["epoch"]},
             "train_wall_s": round(train_secs, 1), "feature_cache_s": round(feat_secs, 1)}
    (files.dir / "dev_metrics.json").write_text(json.dumps(final, indent=2) + "\n")
    cfg.save(files.dir / "config.json")
    write_report(progress.history, files.dir / "report.png", cfg)
    events.emit("done", phase=best["phase"], epoch=best["epoch"], step=progress.global_step, dev=best["dev"],
                wall_s=round(train_secs, 1), best=str(files.best), force_upload=True)
    return final


def train(cfg: Config) -> dict:
    """One training run as ``cfg`` describes it (see the module docstring); returns its dev metrics."""
    if cfg.phase2_mode not in ("images", "cached"):
        raise SystemExit(f"--phase2-mode must be images or cached, not {cfg.phase2_mode!r}")
    try:
        cfg.image_size = cfg.input_size  # 0: the backbone's native size; the run records the size it used
        augment = training_augment(cfg)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    t_start = time.time()
    torch.set_num_threads(max(1, cfg.num_threads))
    device = pick_device(cfg.device)
    use_amp = bool(cfg.amp and device.type == "cuda")
    files = open_run(cfg)
    saved = resume_point(cfg, files)
    events = EventLog(files.dir / "events.jsonl", cfg.run_name, files.store,
                      cfg.events_key or f"runs/{cfg.run_name}/events.jsonl", cfg.progress)
    seed_everything(cfg.seed)

    # ---- data, tokenizer, the frozen backbone's cached features, the model ----------------------
    ds = load_dataset(cfg)
    cfg.dataset_source, cfg.dataset_version_resolved = ds.source, ds.version
    cfg.git_commit = git_commit()
    all_train_ids = usable_ids(ds, cfg.train_split)
    train_ids = all_train_ids[: cfg.max_train_images] if cfg.max_train_images else all_train_ids
    dev_ids = usable_ids(ds, cfg.dev_split)
    events.emit("start", phase=0, device=str(device), amp=use_amp, resumed=saved is not None,
                dataset=ds.source, dataset_version=ds.version, train_images=len(train_ids),
                dev_images=len(dev_ids), force_upload=True)
    tok = build_tokenizer(cfg, ds, train_ids)
    tok.save(files.dir / "vocab.json")
    spec = preprocess_spec(cfg.backbone, cfg.image_size)
    (files.dir / "preprocess.json").write_text(json.dumps(spec, indent=1) + "\n")
    backbone, cfg.weights_source = frozen_backbone(cfg)

    grids, feat_secs = load_grids(cfg, backbone, ds, all_train_ids, len(train_ids), dev_ids, spec, device,
                                  events, phase=1, augment=augment)
    if not cfg.feature_grid:  # pooled-only ablation: collapse the grid to 1x1
        grids = {k: [v.float().mean((2, 3), keepdim=True).half() for v in vs] for k, vs in grids.items()}
    events.emit("features_ready", phase=1, seconds=round(feat_secs, 1),
                grid=list(grids["train"][0].shape[1:]), force_upload=True)
    train_caps = Captions(*caption_table(ds, train_ids, tok)[:3])
    dev_caps = Captions(*caption_table(ds, dev_ids, tok)[:3])
    tr_owner_t = torch.from_numpy(train_caps.owner)
    model = build_model(cfg, tok, backbone, device, events, fresh=saved is None)
    if cfg.text_encoder == "minilm_l6":
        feat_secs += cache_text_bottom(cfg, model, tok, train_caps, dev_caps, device, events)

    # ---- where to start: the first epoch, or the one after the checkpoint's ------------------
    progress, start_phase, start_epoch = Progress(), 1, 1
    if saved is not None:
        model.load_state_dict(saved["model"])
        progress = Progress(saved["history"], saved["best_rsum"], saved["global_step"])
        start_phase, start_epoch = saved["phase"], saved["epoch"] + 1
        if start_epoch > phase_epochs(cfg, start_phase):
            start_phase, start_epoch = start_phase + 1, 1
    M = len(train_caps.tids)
    B = min(cfg.batch_size, M)
    steps1 = max(1, M // B)
    # RUN_STATE files not yet in the store (a resumed run pushes what it starts from once)
    files.unpushed = {n for n in RUN_STATE if (files.dir / n).is_file()}
    pending = saved  # the checkpoint's optimizer/RNG state: restored once, by the first phase that runs

    # ---- phase 1: cached grids ----------------------------------------------------------
    if start_phase == 1 and cfg.epochs > 0:
        opt = adamw(optimizer_groups(model.named_parameters(), cfg, cfg.lr), cfg.lr)
        sched = cosine_schedule(opt, steps1 * cfg.epochs, cfg.warmup_steps, cfg.min_lr_ratio)
        optim = Optim(opt, sched, torch.amp.GradScaler("cuda") if use_amp else None, list(model.parameters()))
        if pending is not None:
            restore(pending, optim, 1, cfg.epochs)
            pending = None
        for epoch in range(start_epoch, cfg.epochs + 1):
            batches = cached_batches(model, grids["train"], tr_owner_t, cfg.seed, 1, epoch, B, steps1, device)
            loss, secs = train_one_epoch(model, batches, train_caps, optim, cfg, device, use_amp, events, progress,
                                         phase=1, epoch=epoch, steps=steps1, batch_size=B)
            dev = evaluate(model, dev_caps, device, grids["dev"]) if eval_due(cfg, 1, epoch) else None
            end_epoch(cfg, model, tok, optim, files, progress, events, phase=1, epoch=epoch, loss=loss, secs=secs,
                      dev=dev, t_start=t_start)
        start_epoch = 1

    # ---- phase 2: fine-tune the top of the backbone ------------------------------------------
    # "images": end-to-end on augmented images (GPU); "cached": the frozen bottom of the
    # backbone runs once, its activations are cached and only the top blocks + heads train
    # (CPU-friendly, mirror augmentation only).
    if cfg.phase2_epochs > 0:
        if not (saved is not None and saved["phase"] == 2) and files.best.is_file():
            # start from phase 1's best (no phase-1 epochs: from --init-from as it is)
            model.load_state_dict(torch.load(files.best, map_location="cpu", weights_only=False)["model"])
        groups = phase2_groups(model, cfg)
        opt = adamw(groups, cfg.phase2_lr)
        scaler = torch.amp.GradScaler("cuda") if use_amp else None
        cached = cfg.phase2_mode == "cached"
        if cached:
            split_at = len(model.backbone.blocks) - cfg.phase2_unfreeze
            # the frozen bottom is the same before and after phase 1 (the cache key hashes only it)
            grids, secs = load_grids(cfg, backbone, ds, all_train_ids, len(train_ids), dev_ids, spec, device,
                                     events, phase=2, stop=split_at, augment=augment)
            feat_secs += secs
            model.grid_start = split_at
            steps2, B2 = steps1, B
        else:
            B2 = min(cfg.phase2_batch_size, len(train_ids))
            img_ds = Phase2Images([ds.read_image(i) for i in train_ids], spec, augment)
            # an "epoch" visits every training image once with one of its captions
            steps2 = max(1, len(train_ids) // B2)
            caps_of = [np.nonzero(train_caps.owner == i)[0] for i in range(len(train_ids))]
        sched = cosine_schedule(opt, steps2 * cfg.phase2_epochs, min(cfg.phase2_warmup_steps, steps2),
                                cfg.min_lr_ratio)
        optim = Optim(opt, sched, scaler, [p for gr in groups for p in gr["params"]])
        if pending is not None:
            restore(pending, optim, 2, cfg.phase2_epochs)
            pending = None
        for epoch in range(start_epoch if start_phase == 2 else 1, cfg.phase2_epochs + 1):
            batches = (cached_batches(model, grids["train"], tr_owner_t, cfg.seed, 2, epoch, B2, steps2, device)
                       if cached else image_batches(model, img_ds, caps_of, cfg.seed, epoch, B2, cfg.num_workers, device))
            loss, secs = train_one_epoch(model, batches, train_caps, optim, cfg, device, use_amp, events, progress,
                                         phase=2, epoch=epoch, steps=steps2, batch_size=B2)
            dev = None
            if eval_due(cfg, 2, epoch):
                dev = (evaluate(model, dev_caps, device, grids["dev"]) if cached
                       else evaluate(model, dev_caps, device, ds=ds, ids=dev_ids, spec=spec))
            end_epoch(cfg, model, tok, optim, files, progress, events, phase=2, epoch=epoch, loss=loss, secs=secs,
                      dev=dev, t_start=t_start)

    return finish_run(cfg, files, ds, progress, events, t_start, feat_secs)


def main(argv=None) -> int:
    cfg, _ = parse_config(argv, __doc__)
    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
