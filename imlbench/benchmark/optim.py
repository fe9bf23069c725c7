"""Optimizer and learning-rate schedule of one training stage, from the recipe's mappings."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from imlbench.errors import ConfigError
from imlbench.methods.base import Method

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def build_optimizer(method: Method, params: Sequence[torch.nn.Parameter],
                    cfg: dict[str, Any]) -> torch.optim.Optimizer:
    cfg = dict(cfg)
    name, custom = cfg.pop("name"), cfg.pop("custom_keys", {})
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    lr, wd = cfg.pop("lr"), cfg.pop("weight_decay", 0.0)
    names = {id(p): n for n, p in method.named_parameters()}
    keys = sorted(sorted(custom), key=len, reverse=True)
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for p in params:
        key = next((k for k in keys if k in names.get(id(p), "")), None)
        mult = custom.get(key, {})
        groups.setdefault((mult.get("lr_mult", 1.0), mult.get("decay_mult", 1.0)), []).append(p)
    param_groups = [{"params": ps, "lr": lr * lm, "weight_decay": wd * dm}
                    for (lm, dm), ps in groups.items()]
    return OPTIMIZERS[name](param_groups, lr=lr, **cfg)


def lr_factor(step: int, total: int, cfg: dict[str, Any]) -> float:
    """Multiplier of the base LR after ``step`` optimizer steps out of ``total``."""
    warmup = cfg.get("warmup_steps", 0)
    if step < warmup:
        start = cfg.get("warmup_start", 0.0)
        return start + (1.0 - start) * step / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = cfg.get("min_lr_ratio", 0.0)
    name = cfg["name"]
    if name == "poly":
        decay = (1.0 - t) ** cfg.get("power", 0.9)
    elif name == "cosine":
        decay = 0.5 * (1.0 + np.cos(np.pi * t))
    elif name == "constant":
        decay = 1.0
    else:
        raise ConfigError(f"unknown schedule {name!r}; choose poly, cosine or constant")
    return floor + (1.0 - floor) * float(decay)


def build_schedule(opt: torch.optim.Optimizer, steps: int,
                   cfg: dict[str, Any]) -> torch.optim.lr_scheduler.LambdaLR:
    """``opt``'s LR times :func:`lr_factor` of the optimizer steps done (stepped once per step)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, cfg))
