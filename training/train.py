"""Supervised training of the classifier: AdamW, clipping, warm-up + decay, early stopping."""

from __future__ import annotations

import copy
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.network import ClassifierConfig, SentimentClassifier
from model.predictor import batched_probabilities
from model.vocab import UNK_ID, Vocab
from training.metrics import classification_report

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    # network
    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.4
    embed_dropout: float = 0.2
    pooling: str = "max_mean"
    # text
    max_len: int = 100  # median review: 28 tokens; longer ones keep their first 100
    min_freq: int = 2
    max_vocab: int = 30000
    # optimisation
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    warmup_frac: float = 0.06
    schedule: str = "linear"  # linear | cosine | constant, after a linear warm-up
    patience: int = 3
    class_weights: str = "none"  # none | balanced
    # Share of training tokens replaced by <unk> each step: regularises the large embedding
    # table and teaches the model what to do with words it has never seen (live posts have many).
    token_dropout: float = 0.1
    oversample: bool = False  # repeat minority-class rows until every class matches the largest
    # "ppmi": start the embedding from PPMI-SVD word vectors of the unlabelled corpus
    # (training/embeddings.py) instead of random noise.
    init_embeddings: str = "ppmi"
    # Character-aware tokens (a token's vector adds its characters' mean), sentiment knowledge
    # (a learned vector per lexicon cue) and unseen words spelled out in characters instead of
    # <unk>: see training/features.py. Off here, so that every experiment keeps its recipe;
    # `make train` turns them on for the shipped model.
    char_features: bool = False
    chars_per_token: int = 4
    knowledge: bool = False
    oov_chars: bool = False
    # Weight of a teacher's soft targets in the loss (0: labels only). The teacher is the
    # TF-IDF + logistic regression model of training.linear, cross-fitted so that no row's
    # target comes from a model that saw it: one BiLSTM learns what the two together know.
    distill: float = 0.0
    seed: int = 13
    labels: tuple[str, ...] = ("negative", "positive")

    def __post_init__(self) -> None:
        if self.schedule not in ("linear", "cosine", "constant"):
            raise ValueError("schedule must be linear, cosine or constant")
        if self.class_weights not in ("none", "balanced"):
            raise ValueError("class_weights must be none or balanced")
        if self.init_embeddings not in ("none", "ppmi"):
            raise ValueError("init_embeddings must be none or ppmi")
        if not 0.0 <= self.token_dropout < 1.0:
            raise ValueError("token_dropout must be in [0, 1)")
        if not 0.0 <= self.distill <= 1.0:
            raise ValueError("distill must be in [0, 1]")
        if self.distill and self.oversample:
            raise ValueError("distill and oversample cannot be combined; use class_weights")
        if self.epochs < 1 or self.batch_size < 1 or self.max_len < 1:
            raise ValueError("epochs, batch_size and max_len must be positive")

    def classifier_config(
        self, vocab_size: int, char_vocab_size: int = 0, cue_kinds: int = 0
    ) -> ClassifierConfig:
        return ClassifierConfig(
            vocab_size=vocab_size,
            char_vocab_size=char_vocab_size,
            chars_per_token=self.chars_per_token,
            cue_kinds=cue_kinds,
            embed_dim=self.embed_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            embed_dropout=self.embed_dropout,
            pooling=self.pooling,
            labels=tuple(self.labels),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d


@dataclass
class TrainResult:
    model: SentimentClassifier
    best_epoch: int
    best_val: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode_all(vocab: Vocab, token_lists: list[list[str]], max_len: int) -> list[list[int]]:
    return [vocab.encode(t, max_len) or [UNK_ID] for t in token_lists]


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


def lr_lambda(schedule: str, total: int, warmup: int) -> Any:
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


def class_weight_tensor(y: list[int], n_labels: int, mode: str) -> torch.Tensor | None:
    """'balanced' weighs each class by n / (k * count), as scikit-learn does."""
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=n_labels).astype(np.float64)
    w = len(y) / (n_labels * np.maximum(counts, 1))
    return torch.tensor(w, dtype=torch.float32)


def evaluate_ids(
    model: SentimentClassifier,
    seqs: list[list[int]],
    y: list[int],
    labels: tuple[str, ...],
    device: torch.device,
) -> tuple[dict[str, Any], np.ndarray]:
    model.eval()
    probs = batched_probabilities(model, seqs, 256, device, len(labels)).numpy()
    return classification_report(np.asarray(y), probs, labels), probs


def train_classifier(
    cfg: TrainConfig,
    vocab: Vocab,
    train_ids: list[list[int]],
    train_y: list[int],
    val_ids: list[list[int]],
    val_y: list[int],
    device: torch.device,
    model: SentimentClassifier | None = None,
    progress: bool = True,
    param_groups: list[dict[str, Any]] | None = None,
    schedule: Callable[[int], float] | None = None,
    on_epoch_start: Callable[[int, SentimentClassifier], None] | None = None,
    soft_targets: np.ndarray | None = None,
) -> TrainResult:
    """Train with early stopping on validation macro-F1; the best epoch's weights are restored.

    Fine-tuning (training.finetune) passes `param_groups` (per-group lr: discriminative rates),
    `schedule` (step -> lr multiplier, e.g. slanted triangular) and `on_epoch_start` (gradual
    unfreezing); without them this is plain AdamW with warm-up and decay. `soft_targets`
    (N, labels), a teacher's probabilities for the train rows, enter the loss with weight
    `cfg.distill`.
    """
    seed_everything(cfg.seed)
    model = model or SentimentClassifier(cfg.classifier_config(len(vocab)))
    model.to(device)
    labels = tuple(cfg.labels)
    if cfg.oversample:
        from training.imbalance import oversample

        train_ids, train_y = oversample(train_ids, train_y, cfg.seed)
    weights = class_weight_tensor(train_y, len(labels), cfg.class_weights)
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None)
    if param_groups is None:
        # No weight decay on biases (1-D parameters): the usual AdamW split.
        decay = [p for n, p in model.named_parameters() if p.dim() > 1]
        no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
        param_groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ]
    opt = torch.optim.AdamW(param_groups, lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, schedule or lr_lambda(cfg.schedule, total, max(1, int(cfg.warmup_frac * total)))
    )
    rng = random.Random(cfg.seed)
    lengths = [len(s) for s in train_ids]
    best_f1, best_epoch, best_state, best_val = -1.0, 0, None, {}
    history: list[dict[str, float]] = []
    bad_epochs = 0
    t0 = time.time()
    for epoch in range(1, cfg.epochs + 1):
        if on_epoch_start is not None:
            on_epoch_start(epoch, model)
        model.train()
        total_loss, seen = 0.0, 0
        bar = tqdm(
            list(length_bucketed_batches(lengths, cfg.batch_size, rng)),
            desc=f"epoch {epoch}/{cfg.epochs}",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )
        for batch in bar:
            ids, lens = collate([train_ids[i] for i in batch])
            if cfg.token_dropout > 0:
                drop = (torch.rand(ids.shape) < cfg.token_dropout) & (ids != 0)
                ids = ids.masked_fill(drop, UNK_ID)
            target = torch.tensor([train_y[i] for i in batch], device=device)
            logits = model(ids.to(device), lens)
            loss = loss_fn(logits, target)
            if soft_targets is not None and cfg.distill:
                soft = torch.as_tensor(soft_targets[batch], dtype=torch.float32, device=device)
                soft_loss = -(soft * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
                loss = (1 - cfg.distill) * loss + cfg.distill * soft_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            sched.step()
            total_loss += loss.item() * len(batch)
            seen += len(batch)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        val, _ = evaluate_ids(model, val_ids, val_y, labels, device)
        val_loss = _nll(model, val_ids, val_y, device)
        row = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val["accuracy"],
            "val_macro_f1": val["macro_f1"],
            "val_roc_auc": val["roc_auc"],
            "lr": sched.get_last_lr()[0],
        }
        history.append(row)
        improved = val["macro_f1"] > best_f1
        if improved:
            best_f1, best_epoch, best_val = val["macro_f1"], epoch, val
            best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
        if progress:
            print(
                f"epoch {epoch:2d}  train_loss {row['train_loss']:.4f}  val_loss {val_loss:.4f}  "
                f"val_acc {val['accuracy']:.4f}  val_f1 {val['macro_f1']:.4f}  "
                f"val_auc {val['roc_auc']:.4f}{'  *best' if improved else ''}",
                file=sys.stderr,
            )
        if bad_epochs >= cfg.patience:
            log.info("early stop: no val macro-F1 gain for %d epochs", cfg.patience)
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, best_epoch, best_val, history, time.time() - t0)


@torch.no_grad()
def _nll(
    model: SentimentClassifier, seqs: list[list[int]], y: list[int], device: torch.device
) -> float:
    model.eval()
    probs = batched_probabilities(model, seqs, 256, device, model.cfg.num_labels)
    p = probs[torch.arange(len(y)), torch.tensor(y)].clamp(min=1e-9)
    return float(-p.log().mean())
