"""Markdown report and PNG plots written beside the artifact."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in CI
import matplotlib.pyplot as plt
import numpy as np

from model import strict_json
from training.classification_metrics import roc_curve


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    a.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    a.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    a.legend()
    for key, name in (
        ("val_accuracy", "accuracy"),
        ("val_macro_f1", "macro-F1"),
        ("val_roc_auc", "ROC-AUC"),
    ):
        b.plot(epochs, [h[key] for h in history], marker="o", label=name)
    b.set(title="Validation metrics", xlabel="epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path) -> None:
    m = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test)")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                color="white" if m[i, j] > m.max() / 2 else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_roc(y_true: np.ndarray, scores: np.ndarray, auc: float, path: Path) -> None:
    fpr, tpr = roc_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(x: float) -> str:
    return f"{x:.4f}"


RESULTS = Path(__file__).resolve().parent / "results"
ABLATION = RESULTS / "ablation" / "ablation.md"
SEEDS = RESULTS / "seeds" / "seeds.md"
ADAPTATION = RESULTS / "adaptation"
ADAPTATION_SENTA = RESULTS / "adaptation-senta"
FOUNDATION = RESULTS / "foundation" / "foundation.md"


def _architecture(
    cfg: dict[str, Any], tok: dict[str, Any], init_from: dict[str, Any] | None = None
) -> str:
    if init_from:
        return _fine_tuned(cfg, init_from)
    words = f"{tok.get('segmenter', 'jieba')} words"
    parts = ["word embedding"]
    if cfg.get("char_features"):
        parts.append("the mean of its characters' vectors")
    if cfg.get("knowledge"):
        parts.append("its lexicon cue's vector")
    token = " + ".join(parts)
    oov = "; unseen words spelled out in characters" if cfg.get("oov_chars") else ""
    return (f"{words} (each token: {token}{oov}) -> BiLSTM {cfg.get('hidden_size', '')} -> "
            f"{cfg.get('pooling', 'max_mean')} pooling -> dense{_distilled(cfg)}")  # fmt: skip


def _foundation() -> str:
    if not FOUNDATION.exists():
        return ""
    return (
        "\n## The pretrained foundation, side by side\n\n"
        "Every row on the reviews test split and on social_dev, neither of which trained or "
        "chose anything; a row over seeds gives the mean ± sd with the shipped seed's figure in "
        "brackets (`python -m training.experiments.foundation`, its command in "
        "training/results/foundation/README.md). `ms/post` is segmentation and the forward pass "
        "on the runtime auto picks for one core; `train s` the recorded training time.\n\n"
        + FOUNDATION.read_text(encoding="utf-8")
    )


def _distilled(cfg: dict[str, Any]) -> str:
    if not cfg.get("distill"):
        return ""
    teacher = "a cross-fitted TF-IDF + logistic regression teacher"
    if cfg.get("teacher_model"):
        teacher += f" averaged with `{cfg['teacher_model']}`"
    rows = (
        " (the in-domain rows on their labels alone)" if cfg.get("distill_extra") is False else ""
    )
    weight = cfg["distill"]
    return (f"; trained on the labels and, at weight {weight}, the soft targets of {teacher}{rows}"
            f"{_transfer(cfg)}")  # fmt: skip


def _transfer(cfg: dict[str, Any]) -> str:
    parts = []
    if cfg.get("transfer_variants"):
        parts.append(f"{cfg['transfer_variants']:g} variants of each train text")
    if cfg.get("transfer_text"):
        parts.append(f"the unlabelled texts of `{cfg['transfer_text']}`")
    if not parts:
        return ""
    return f", and on a transfer set of {' and '.join(parts)}, from those soft targets alone"


def _fine_tuned(cfg: dict[str, Any], init_from: dict[str, Any]) -> str:
    base = f"`{init_from.get('path')}` ({init_from.get('version', '')})"
    senta = ""
    if "senta" in str(init_from.get("path", "")):
        senta = (" Baidu's Senta 1.0.3 character BiLSTM (Apache 2.0; converted by `make senta`, "
                 "see NOTICE): characters as written -> embedding 128 -> BiLSTM 128 (forward to "
                 "the last character, backward over the last character alone) -> tanh 96 -> "
                 "dense;")  # fmt: skip
    return f"Fine-tuned (微调) from {base}:{senta} the whole network trained{_distilled(cfg)}"


def _extra_validation(metrics: dict[str, Any]) -> str:
    ev = metrics.get("extra_validation")
    if not ev:
        return ""
    return (
        f"## In-domain posts: `{ev.get('source')}`\n\n"
        "Joined to the validation split for calibration (weight "
        f"{metrics.get('extra_validation_weight', 1)}) and the drift reference (each post once); "
        "never trained on.\n\n| metric | value |\n|---|---|\n"
        + "".join(f"| {k} | {_fmt(ev[k])} |\n" for k in ("accuracy", "macro_f1", "roc_auc", "ece"))
        + f"\nConfusion matrix: {ev['confusion_matrix']}\n\n"
    )


def _ablation() -> str:
    if not ABLATION.exists():
        return ""
    return (
        "\n## The recipe before Senta, step by step\n\nThe word-level BiLSTM trained here from "
        "scratch (shipped before Senta, and the student row above): each row adds one step to "
        "the one above, all at seed 13, uncalibrated (`python -m training.experiments.ablation`)"
        ":\n\n" + ABLATION.read_text(encoding="utf-8")
    )


def _seeds() -> str:
    if not SEEDS.exists():
        return ""
    return (
        "\n## Seeds\n\nThe recipe at three seeds, uncalibrated (`make seeds`). The shipped seed "
        "has the best reviews validation macro-F1; neither social_dev nor the test split chose "
        "it, so its figures there are one draw from the spread the mean row describes.\n\n"
        + SEEDS.read_text(encoding="utf-8")
    )


def _adaptation(out_dir: Path) -> str:
    parts = []
    for name, folder, base in (
        ("adaptation-senta.png", ADAPTATION_SENTA, "Senta itself, nothing trained here"),
        ("adaptation.png", ADAPTATION, "a model trained on reviews only (ablation step 3)"),
    ):
        table, plot = folder / "adaptation.md", folder / "adaptation.png"
        if not table.exists():
            continue
        picture = ""
        if plot.exists():
            shutil.copyfile(plot, out_dir / name)
            picture = f"\n![adaptation]({name})\n"
        parts.append(f"\nFrom {base}:\n\n" + table.read_text(encoding="utf-8") + picture)
    if not parts:
        return ""
    return (
        "\n## Adaptation to a new domain\n\nA base fine-tuned on 50, 100 and 235 social posts "
        "with `python -m training.finetune`, beside TF-IDF + LR trained on the same posts, all "
        "scored on social_dev (`python -m training.experiments.adaptation`; sizes below 235 are "
        "the mean of three seeds).\n" + "".join(parts)
    )


def write_report(
    out_dir: Path,
    metrics: dict[str, Any],
    y_test: np.ndarray,
    test_probs: np.ndarray,
    labels: tuple[str, ...],
) -> Path:
    out_dir = Path(out_dir)
    plot_history(metrics["history"], out_dir / "curves.png")
    test = metrics["test"]
    plot_confusion(test["confusion_matrix"], test["labels"], out_dir / "confusion_matrix.png")
    if len(labels) == 2 and "positive" in labels:
        pos = labels.index("positive")
        plot_roc(
            (y_test == pos).astype(np.int64),
            test_probs[:, pos],
            test["roc_auc"],
            out_dir / "roc.png",
        )
    val = metrics["validation"]
    rows = "\n".join(
        f"| {name} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | "
        f"{v['support']} |"
        for name, v in test["per_label"].items()
    )
    hist = "\n".join(
        f"| {h['epoch']} | {_fmt(h['train_loss'])} | {_fmt(h['val_loss'])} | "
        f"{_fmt(h['val_accuracy'])} | {_fmt(h['val_macro_f1'])} |"
        for h in metrics["history"]
    )
    text = f"""# Model card: sentiment classifier {metrics.get("version", "")}

{
        _architecture(
            metrics.get("train_config", {}), metrics.get("tokenizer", {}), metrics.get("init_from")
        )
    } -> softmax over {list(labels)}.

## Reproduce

```
{metrics.get("command") or "python -m training --out DIR"}
```

Data: `{metrics["source"]}`; rows train {metrics["rows"]["train"]}, validation
{metrics["rows"]["validation"]}, test {metrics["rows"]["test"]} (split by sha1(text) mod 10, see
shared/DATA.md). Bad rows skipped: {metrics["bad_rows"] or "none"}. Vocabulary:
{metrics["vocab_size"]} tokens. Best epoch (validation macro-F1): {metrics["best_epoch"]}; training
took {metrics["train_seconds"]} s on {metrics["environment"]["device"]}.

## Test split (evaluated once, never tuned on)

| metric | validation | test |
|---|---|---|
| accuracy | {_fmt(val["accuracy"])} | {_fmt(test["accuracy"])} |
| macro-F1 | {_fmt(val["macro_f1"])} | {_fmt(test["macro_f1"])} |
| ROC-AUC | {_fmt(val["roc_auc"])} | {_fmt(test["roc_auc"])} |
| ECE (15 bins) | {_fmt(val["ece"])} | {_fmt(test["ece"])} |

| label | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

Confusion matrix (rows true, columns predicted): {test["confusion_matrix"]}

![curves](curves.png) ![confusion](confusion_matrix.png) ![roc](roc.png)

{_extra_validation(metrics)}## Training history

| epoch | train loss | val loss | val accuracy | val macro-F1 |
|---|---|---|---|---|
{hist}

## Limits

A new domain differs from the training data (slang, emoji, topics). Watch the drift metrics
(`sentiment_drift_psi`, `sentiment_oov_ratio`) after deploying to one, and fine-tune on a few
hundred labelled posts from it (`python -m training.finetune --base DIR --data posts.csv`; the
adaptation section below measures what that buys).
{_foundation()}{_seeds()}{_adaptation(out_dir)}{_ablation()}"""
    path = out_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """python -m training.report --model DIR: rewrite an artifact's report from its metrics.

    The test-split probabilities are recomputed with the saved model, and must reproduce the
    accuracy recorded at training time.
    """
    import argparse

    from training.cli import run_main

    p = argparse.ArgumentParser(prog="python -m training.report", description=main.__doc__)
    p.add_argument("--model", required=True, help="artifact directory")
    return run_main(p, argv, lambda inv: _rewrite(inv.args.model))


def _rewrite(model_dir: str) -> int:
    import sys

    from model.artifact import load
    from model.predictor import Predictor
    from training.data import load_source

    loaded = load(model_dir, "cpu")
    metrics = dict(loaded.metrics)
    if "test" not in metrics or "source" not in metrics:
        raise ValueError(f"{model_dir} has no training metrics to report")
    test = load_source(metrics["source"]).test
    pred = Predictor(loaded)
    probs = pred.probabilities(pred.encode(test.texts)).numpy()
    y = np.asarray(test.label_ids(loaded.labels))
    acc = float((probs.argmax(axis=1) == y).mean())
    if abs(acc - metrics["test"]["accuracy"]) > 1e-9:
        print(
            f"error: recomputed test accuracy {acc} != recorded {metrics['test']['accuracy']}",
            file=sys.stderr,
        )
        return 1
    metrics["version"] = loaded.version
    print(
        strict_json.dumps(
            {"report": str(write_report(loaded.path, metrics, y, probs, loaded.labels))}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
