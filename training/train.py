"""Supervised training of the classifier: the shared loop (training.loop) on labelled rows.

Early stopping watches validation macro-F1 and the best epoch's weights are kept; the batch loss
adds token dropout and, optionally, a teacher's soft targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from model.network import ClassifierConfig, NetworkConfig, SentimentClassifier
from model.predictor import batched_probabilities
from model.vocab import UNK_ID, Vocab
from training.classification_metrics import classification_report
from training.config import flat_keywords, flatten
from training.loop import EpochEnd, LoopConfig, collate, fit, seed_everything

# The label of a transfer row (training/transfer.py): it has only the teachers' soft target.
UNLABELLED = -1


@flat_keywords
@dataclass
class TrainConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
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
    # Whether the in-domain rows (--extra-train) learn from the teacher too. The teacher learned
    # mostly from reviews and is least sure on exactly those posts, so with false they learn
    # from their gold labels alone (training/README.md has the figures).
    distill_extra: bool = True
    # Classifier artifacts (build/senta-base; several joined by commas) that teach beside the
    # linear model: the soft targets become the teachers' mean. Senta never saw these rows, so
    # it needs no cross-fitting; a teacher fine-tuned on them gives near-gold targets for them,
    # and teaches mostly through the transfer set.
    teacher_model: str = ""
    # A character model's artifact (build/senta-base) whose vectors start the character table
    # (char_features) for every character both know, instead of random ones.
    char_init: str = ""
    # Each later copy of an in-domain row is a variant with its cue words swapped for others of
    # the same cue, with this probability (training/augment.py); 0 keeps the copies identical.
    augment: float = 0.0
    # A transfer set (training/transfer.py): this many variants of each train text (0.5: of
    # every other one), plus the unlabelled texts of these files (comma separated), learnt from
    # the teachers' probabilities alone, through the distillation term.
    transfer_variants: float = 0.0
    transfer_text: str = ""
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
        if not 0.0 <= self.augment <= 1.0:
            raise ValueError("augment must be in [0, 1]")
        if self.teacher_model and not self.distill:
            raise ValueError("teacher_model needs distill > 0")
        if (self.transfer_variants or self.transfer_text) and not self.distill:
            raise ValueError("transfer_variants and transfer_text need distill > 0")
        if self.transfer_variants < 0:
            raise ValueError("transfer_variants must be >= 0")
        if self.char_init and not self.char_features:
            raise ValueError("char_init needs char_features true")
        if self.distill and self.oversample:
            raise ValueError("distill and oversample cannot be combined; use class_weights")
        if self.epochs < 1 or self.batch_size < 1 or self.max_len < 1:
            raise ValueError("epochs, batch_size and max_len must be positive")

    def classifier_config(
        self, vocab_size: int, char_vocab_size: int = 0, cue_kinds: int = 0
    ) -> ClassifierConfig:
        return self.network.classifier_config(
            vocab_size,
            char_vocab_size=char_vocab_size,
            chars_per_token=self.chars_per_token,
            cue_kinds=cue_kinds,
            labels=tuple(self.labels),
        )

    def loop_config(self, keep_best: bool = True) -> LoopConfig:
        return LoopConfig.of(self, keep_best=keep_best)

    def to_dict(self) -> dict[str, Any]:
        """Flat, as the flags are: the `train_config` artifacts have always recorded."""
        d = flatten(self)
        d["labels"] = list(self.labels)
        return d


@dataclass
class TrainResult:
    model: SentimentClassifier
    best_epoch: int
    best_val: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def encode_all(vocab: Vocab, token_lists: list[list[str]], max_len: int) -> list[list[int]]:
    return [vocab.encode(t, max_len) or [UNK_ID] for t in token_lists]


def class_weight_tensor(y: list[int], n_labels: int, mode: str) -> torch.Tensor | None:
    """'balanced' weighs each class by n / (k * count), as scikit-learn does."""
    if mode == "none":
        return None
    labelled = [i for i in y if i >= 0]  # not the transfer rows (UNLABELLED)
    counts = np.bincount(labelled, minlength=n_labels).astype(np.float64)
    w = len(labelled) / (n_labels * np.maximum(counts, 1))
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
    keep_best: bool = True,
) -> TrainResult:
    """Train with early stopping on validation macro-F1; the best epoch's weights are restored
    (the last epoch's with `keep_best` false).

    Fine-tuning (training.finetune) passes `param_groups` (per-group lr: discriminative rates),
    `schedule` (step -> lr multiplier, e.g. slanted triangular) and `on_epoch_start` (gradual
    unfreezing); without them this is plain AdamW with warm-up and decay. `soft_targets`
    (N, labels), a teacher's probabilities for the train rows, enter the loss with weight
    `cfg.distill`; rows labelled UNLABELLED (a transfer set) learn from them alone.
    """
    seed_everything(cfg.seed)
    net = model or SentimentClassifier(cfg.classifier_config(len(vocab)))
    net.to(device)
    labels = tuple(cfg.labels)
    if cfg.oversample:
        from training.imbalance import oversample

        train_ids, train_y = oversample(train_ids, train_y, cfg.seed)
    weights = class_weight_tensor(train_y, len(labels), cfg.class_weights)
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None)

    def batch_loss(batch: list[int]) -> tuple[torch.Tensor, int]:
        ids, lens = collate([train_ids[i] for i in batch])
        if cfg.token_dropout > 0:
            drop = (torch.rand(ids.shape) < cfg.token_dropout) & (ids != 0)
            ids = ids.masked_fill(drop, UNK_ID)
        target = torch.tensor([train_y[i] for i in batch], device=device)
        logits = net(ids.to(device), lens)
        labelled = target != UNLABELLED
        if bool(labelled.all()):
            loss = loss_fn(logits, target)
        elif bool(labelled.any()):
            loss = loss_fn(logits[labelled], target[labelled])
        else:  # transfer rows only: the distillation term below is the whole loss
            loss = logits.new_zeros(())
        if soft_targets is not None and cfg.distill:
            soft = torch.as_tensor(soft_targets[batch], dtype=torch.float32, device=device)
            soft_loss = -(soft * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
            loss = (1 - cfg.distill) * loss + cfg.distill * soft_loss
        return loss, len(batch)

    reports: dict[int, dict[str, Any]] = {}

    def evaluate(end: EpochEnd) -> tuple[dict[str, Any], float]:
        val, _ = evaluate_ids(net, val_ids, val_y, labels, device)
        reports[end.epoch] = val
        row = {
            "epoch": end.epoch,
            "train_loss": end.train_loss,
            "val_loss": _nll(net, val_ids, val_y, device),
            "val_accuracy": val["accuracy"],
            "val_macro_f1": val["macro_f1"],
            "val_roc_auc": val["roc_auc"],
            "lr": end.lr,
        }
        return row, val["macro_f1"]

    def start_epoch(epoch: int, _: nn.Module) -> None:
        if on_epoch_start is not None:
            on_epoch_start(epoch, net)

    lengths = [len(s) for s in train_ids]
    fitted = fit(
        net,
        lengths,
        batch_loss,
        evaluate,
        cfg.loop_config(keep_best),
        progress,
        param_groups=param_groups,
        schedule=schedule,
        on_epoch_start=start_epoch,
    )
    return TrainResult(
        net, fitted.best_epoch, reports[fitted.best_epoch], fitted.history, fitted.seconds
    )


@torch.no_grad()
def _nll(
    model: SentimentClassifier, seqs: list[list[int]], y: list[int], device: torch.device
) -> float:
    model.eval()
    probs = batched_probabilities(model, seqs, 256, device, model.cfg.num_labels)
    p = probs[torch.arange(len(y)), torch.tensor(y)].clamp(min=1e-9)
    return float(-p.log().mean())
