"""Optimisation schedules: the optimizer's parameter groups (no weight decay on biases, norms,
embeddings and the temperature; a pretrained text tower's layers at their own rate; phase 2's
unfrozen backbone blocks), AdamW, and linear warmup + cosine decay of the learning rate.

train.py builds one ``Optim`` per phase from these; checkpoints.py saves and restores its state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import Config
from .model import GlimpseModel


@dataclass
class Optim:
    """One phase's optimizer, LR schedule, AMP loss scaler (None without AMP) and the parameters
    whose gradients are clipped."""
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    params: list


def lr_lambda_factory(total_steps: int, warmup: int, min_ratio: float):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        p = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def param_groups(named_params, wd: float, lr: float):
    decay, no_decay = [], []
    for n, p in named_params:
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "embed" in n or "norm" in n or "logit_scale" in n:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": wd, "lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr}]


def phase_epochs(cfg: Config, phase: int) -> int:
    return cfg.epochs if phase == 1 else cfg.phase2_epochs


def optimizer_groups(named, cfg: Config, lr: float) -> list[dict]:
    """Optimizer groups; a pretrained text tower's trained layers learn at ``text_lr_mult``·lr."""
    named = list(named)
    groups = param_groups([(n, p) for n, p in named if not n.startswith("text.bert.")], cfg.weight_decay, lr)
    bert = [(n, p) for n, p in named if n.startswith("text.bert.") and p.requires_grad]
    return groups + (param_groups(bert, cfg.weight_decay, lr * cfg.text_lr_mult) if bert else [])


def adamw(groups: list[dict], lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def cosine_schedule(opt, total_steps: int, warmup: int, min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda_factory(total_steps, warmup, min_ratio))


def phase2_groups(model: GlimpseModel, cfg: Config) -> list[dict]:
    """Unfreezes the top ``phase2_unfreeze`` backbone blocks; groups of the heads (at phase2_lr)
    and of those blocks (at phase2_lr·phase2_backbone_lr_mult)."""
    blocks = list(model.backbone.blocks)[-cfg.phase2_unfreeze:] if cfg.phase2_unfreeze else []
    bb_params = [p for b in blocks for p in b.parameters()]
    for p in bb_params:
        p.requires_grad_(True)
    head_named = [(n, p) for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = optimizer_groups(head_named, cfg, cfg.phase2_lr)
    groups.append({"params": bb_params, "weight_decay": cfg.weight_decay,
                   "lr": cfg.phase2_lr * cfg.phase2_backbone_lr_mult})
    return groups
