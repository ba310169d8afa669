"""The one training loop, for the classifier (training.train) and the language model (pretrain).

AdamW without decay on 1-D parameters, a linear warm-up then decay, shuffled length-bucketed
batches, gradient clipping, an evaluation after each epoch, early stopping and a time budget.
What differs between the two models comes in as functions: the loss of a batch and the
evaluation that scores an epoch.

The order of every random draw is part of the results: `make train` rebuilds the shipped weights
bit for bit. The caller seeds (`seed_everything`) and builds its model; the loop draws batches
from its own `random.Random(seed)`; batch losses draw from torch (token dropout, dropout).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

log = logging.getLogger(__name__)

BatchLoss = Callable[[list[int]], tuple[Tensor, int]]
"""Row indices of one batch -> its mean loss and how many terms it averages (rows, tokens)."""


@dataclass(frozen=True)
class EpochEnd:
    """What the loop knows when an epoch's batches are done: the evaluation's input."""

    epoch: int
    train_loss: float  # mean over the epoch, each batch weighted by its count
    count: int  # rows, or predicted tokens, the epoch's loss averaged
    lr: float  # the first parameter group's, after the epoch's last step
    seconds: float  # since the loop started


Evaluate = Callable[[EpochEnd], tuple[dict[str, Any], float]]
"""After each epoch: the row for the history, and the score the best epoch has highest."""


@dataclass(frozen=True)
class LoopConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    clip: float
    warmup_frac: float
    seed: int
    schedule: str = "linear"  # after the warm-up: linear | cosine | constant
    patience: int | None = None  # stop after this many epochs without a better score
    keep_best: bool = False  # end with the best epoch's weights rather than the last epoch's
    max_minutes: float = 0.0  # 0: no time budget; else the epoch running then is the last

    @classmethod
    def of(cls, cfg: Any, **overrides: Any) -> LoopConfig:
        """The loop's settings from a config holding them under the same names (TrainConfig,
        PretrainConfig); what it lacks keeps the default here, `overrides` win."""
        taken = {f.name: getattr(cfg, f.name) for f in fields(cls) if hasattr(cfg, f.name)}
        return cls(**{**taken, **overrides})


@dataclass
class Fitted:
    best_epoch: int  # 0 when no epoch scored (a NaN score)
    history: list[dict[str, Any]]
    seconds: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def length_bucketed_batches(
    lengths: list[int], batch_size: int, rng: random.Random
) -> Iterator[list[int]]:
    """Shuffled batches of similar-length sequences: less padding, still random order."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(idx), pool):
        chunk = sorted(idx[start : start + pool], key=lengths.__getitem__)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    yield from batches


def collate(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)


def lr_lambda(schedule: str, total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return max(0.0, 1.0 - progress)

    return f


def total_steps(rows: int, batch_size: int, epochs: int) -> int:
    return math.ceil(rows / batch_size) * epochs


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and other 1-D parameters: the usual AdamW split."""
    return [
        {"params": [p for p in model.parameters() if p.dim() > 1], "weight_decay": weight_decay},
        {"params": [p for p in model.parameters() if p.dim() <= 1], "weight_decay": 0.0},
    ]


def fit(
    model: nn.Module,
    lengths: list[int],
    batch_loss: BatchLoss,
    evaluate: Evaluate,
    cfg: LoopConfig,
    progress: bool = True,
    param_groups: list[dict[str, Any]] | None = None,
    schedule: Callable[[int], float] | None = None,
    on_epoch_start: Callable[[int, nn.Module], None] | None = None,
    checkpoint: Callable[[nn.Module, list[dict[str, Any]]], None] | None = None,
) -> Fitted:
    """Train `model` on the rows whose sequence lengths are `lengths`; it ends in eval mode.

    `param_groups` and `schedule` (step -> lr multiplier) replace the decay split and the
    warm-up schedule (fine-tuning's discriminative rates and slanted triangle);
    `on_epoch_start(epoch, model)` runs before each epoch (gradual unfreezing);
    `checkpoint(model, history)` after each epoch's evaluation (saving a long run as it goes).
    """
    opt = torch.optim.AdamW(param_groups or decay_groups(model, cfg.weight_decay), lr=cfg.lr)
    total = total_steps(len(lengths), cfg.batch_size, cfg.epochs)
    warmup = max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, schedule or lr_lambda(cfg.schedule, total, warmup)
    )
    rng = random.Random(cfg.seed)
    deadline = time.time() + cfg.max_minutes * 60 if cfg.max_minutes > 0 else math.inf
    best_score, best_epoch, best_state, bad_epochs = -math.inf, 0, None, 0
    history: list[dict[str, Any]] = []
    t0 = time.time()
    for epoch in range(1, cfg.epochs + 1):
        if on_epoch_start is not None:
            on_epoch_start(epoch, model)
        model.train()
        loss_sum, count, out_of_time = 0.0, 0, False
        bar = tqdm(
            list(length_bucketed_batches(lengths, cfg.batch_size, rng)),
            desc=f"epoch {epoch}/{cfg.epochs}",
            disable=not progress,
            file=sys.stderr,
            leave=False,
            mininterval=1.0,
        )
        for batch in bar:
            loss, n = batch_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * n
            count += n
            bar.set_postfix(loss=f"{loss_sum / max(count, 1):.4f}", refresh=False)
            if time.time() > deadline:
                out_of_time = True
                break
        bar.close()
        lr = float(sched.get_last_lr()[0])
        end = EpochEnd(epoch, loss_sum / max(count, 1), count, lr, time.time() - t0)
        row, score = evaluate(end)
        history.append(row)
        improved = score > best_score
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
            if cfg.keep_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        figures = "  ".join(f"{k} {_figure(v)}" for k, v in row.items() if k != "epoch")
        log.info("epoch %d/%d  %s%s", epoch, cfg.epochs, figures, "  *best" if improved else "")
        if checkpoint is not None:
            checkpoint(model, history)
        if out_of_time:
            log.info("time budget of %.1f minutes spent; stopping", cfg.max_minutes)
            break
        if cfg.patience is not None and bad_epochs >= cfg.patience:
            log.info("early stop: no better score for %d epochs", cfg.patience)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return Fitted(best_epoch, history, time.time() - t0)


def _figure(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
