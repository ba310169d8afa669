"""Held-out figures for the posts a recipe trains on, by cross-fitting over one of its files.

    python -m training.experiments.crossfit --file training/data/social_train_2.csv --folds 2 \
        --out training/results/crossfit/NAME --compare build/senta-base -- $(TRAIN_FLAGS)

The shipped recipe trains on every labelled post we have, so no post of its own kind is left to
measure it on but social_dev's 119. This splits one of the recipe's --extra-train files into
--folds parts by a hash of the text, trains the recipe once per part with that part left out,
and scores each part with the model that never saw it. Every labelled row then has an
out-of-fold probability: accuracy on the rows the file marks `hard` (sarcasm, negation,
complaint words used as praise) and on the plain ones, ROC-AUC, and ECE, here measured on
hundreds of in-domain posts rather than on social_dev.

It also fits the temperature that would calibrate those out-of-fold probabilities, the in-domain
counterpart of training.calibrate's reviews-validation fit, and gives each ECE's floor: what a
perfectly calibrated model with the same probabilities shows on that many rows (ECE is biased
upwards on small sets). --compare scores artifacts that never saw the file on all of its rows.

`{fold}` in a flag becomes the fold's number: a recipe with teachers gives each fold teachers
that never saw its held-out part either (`--teacher-model runs/crossfit-senta-ft/fold-{fold}`).
Models go under --models (checkpoints stay out of training/results); crossfit.json and
crossfit.md go into --out. --reuse scores folds already trained there.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from model import artifact, strict_json
from model.predictor import Predictor
from training.calibrate import fit_temperature, log_probs_of, scaled_probs
from training.classification_metrics import classification_report, ece_floor
from training.cli import Invocation, run_main
from training.data import LABELS
from training.experiments.seeds import train as train_seed


def fold_of(text: str, folds: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % folds


def with_extra_train(flags: list[str], file: str, replacement: str) -> list[str]:
    """The flags with `file` in --extra-train's list swapped for `replacement`."""
    out, found = list(flags), False
    for i, flag in enumerate(out[:-1]):
        if flag == "--extra-train":
            files = out[i + 1].split(",")
            if file in files:
                out[i + 1] = ",".join(replacement if f == file else f for f in files)
                found = True
    if not found:
        raise ValueError(f"{file} is not in the recipe's --extra-train")
    return out


def figures(probs: np.ndarray, y: np.ndarray, hard: np.ndarray) -> dict[str, Any]:
    right = probs.argmax(axis=1) == y
    report = classification_report(y, probs, LABELS)
    t = fit_temperature(log_probs_of(probs), y)
    return {
        "rows": len(y),
        "accuracy": round(float(right.mean()), 4),
        "hard_accuracy": round(float(right[hard].mean()), 4),
        "plain_accuracy": round(float(right[~hard].mean()), 4),
        "roc_auc": round(float(report["roc_auc"]), 4),
        "ece": round(float(report["ece"]), 4),
        "ece_floor": round(ece_floor(probs), 4),
        "temperature": round(t, 3),
        "ece_at_temperature": round(
            float(classification_report(y, scaled_probs(probs, t), LABELS)["ece"]), 4
        ),
    }


def probabilities(model_dir: Path, texts: list[str]) -> np.ndarray:
    p = Predictor(artifact.load(model_dir), runtime="auto")
    return p.probabilities(p.encode(texts)).numpy().astype(np.float64)


def table(rows: dict[str, dict[str, Any]]) -> str:
    keys = ["rows", "accuracy", "hard_accuracy", "plain_accuracy", "roc_auc", "ece",
            "ece_floor", "temperature", "ece_at_temperature"]  # fmt: skip
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, f in rows.items():
        lines.append(f"| {name} | " + " | ".join(str(f[k]) for k in keys) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.experiments.crossfit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--file", required=True, help="one of the recipe's --extra-train files")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--seed", type=int, default=13, help="every fold's training seed")
    p.add_argument("--out", type=Path, required=True, help="crossfit.json and crossfit.md")
    p.add_argument("--models", type=Path, help="the fold models (default runs/crossfit-NAME)")
    p.add_argument("--jobs", type=int, default=1, help="training processes at a time")
    p.add_argument("--reuse", action="store_true", help="score folds already trained")
    p.add_argument("--compare", default="", help="comma-separated artifacts to score on --file")
    p.add_argument("flags", nargs=argparse.REMAINDER, help="-- then the recipe's training flags")
    return run_main(p, argv, _crossfit)


def _crossfit(inv: Invocation) -> None:
    args = inv.args
    if args.folds < 2:
        raise ValueError("--folds must be at least 2")
    flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
    if any(f in ("--seed", "--out") for f in flags):
        raise ValueError("the recipe's flags must not set --seed or --out: this command does")
    models = args.models or Path("runs") / f"crossfit-{args.out.name}"
    with open(args.file, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    folds = [fold_of(r["text"], args.folds) for r in rows]
    labelled = [i for i, r in enumerate(rows) if r["label"] in LABELS]
    y = np.array([LABELS.index(rows[i]["label"]) for i in labelled])
    hard = np.array([rows[i].get("kind") == "hard" for i in labelled])

    def train(k: int) -> None:
        fold_dir = models / f"fold-{k}"
        if args.reuse and (fold_dir / "config.json").exists():
            return
        fold_dir.parent.mkdir(parents=True, exist_ok=True)
        kept = fold_dir.parent / f"fold-{k}-train.csv"
        with open(kept, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(r for r, fold in zip(rows, folds, strict=True) if fold != k)
        fold_flags = [f.replace("{fold}", str(k)) for f in flags]
        train_seed(with_extra_train(fold_flags, args.file, str(kept)), args.seed, fold_dir,
                   log_path=fold_dir.parent / f"fold-{k}.log")  # fmt: skip

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(train, range(args.folds)))
    oof = np.zeros((len(labelled), len(LABELS)))
    for k in range(args.folds):
        held = [j for j, i in enumerate(labelled) if folds[i] == k]
        oof[held] = probabilities(models / f"fold-{k}", [rows[labelled[j]]["text"] for j in held])
    results = {f"the recipe, out of fold ({args.folds} folds, seed {args.seed})": figures(
        oof, y, hard)}  # fmt: skip
    texts = [rows[i]["text"] for i in labelled]
    for other in filter(None, args.compare.split(",")):
        results[other] = figures(probabilities(Path(other), texts), y, hard)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"file": args.file, "folds": args.folds, "seed": args.seed, "flags": flags,
              "hard_rows": int(hard.sum()), "results": results}  # fmt: skip
    (args.out / "crossfit.json").write_text(strict_json.dumps(record, indent=2))
    text = table(results)
    (args.out / "crossfit.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
