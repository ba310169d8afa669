"""The recipe search starts from the word-level recipe (`make train-word`, shipped before Senta),
and its table reads its trials."""

import re
import shlex
from pathlib import Path

import optuna

from training.cli import NOT_FLAGS, config_kwargs, train_parser
from training.experiments.recipe_search import SHIPPED, suggest, table
from training.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def make_train_argv() -> list[str]:
    """The flags of the Makefile's `train-word` target's command, its variables expanded."""
    text = ROOT.joinpath("Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    variables = dict(re.findall(r"^([A-Z_]+) :?= (.*)$", text, re.M))
    line = re.search(r"^train-word:.*\n\t(.*)$", text, re.M)
    assert line is not None
    command = line.group(1).replace("$(BIN)/python -m training", "")
    command = re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables[m.group(1)], command)
    return shlex.split(command)


def make_train_config() -> tuple[TrainConfig, int]:
    """The TrainConfig and --extra-weight `make train-word` trains with."""
    args = train_parser().parse_args(make_train_argv())
    return TrainConfig(**config_kwargs(args, TrainConfig, NOT_FLAGS)), args.extra_weight


def test_the_first_trial_is_the_word_recipe_make_train_word_builds():
    cfg, weight = suggest(optuna.trial.FixedTrial(SHIPPED))
    shipped, shipped_weight = make_train_config()
    # The search runs every epoch and keeps the best; `make train-word` may stop early instead.
    # The search's trials all ran at seed 13; the seed is chosen apart
    # (training.experiments.seeds).
    assert cfg == TrainConfig(**{**shipped.to_dict(), "patience": cfg.patience,
                                 "labels": shipped.labels, "seed": cfg.seed})  # fmt: skip
    assert weight == shipped_weight


def test_the_table_lists_finished_trials_best_first():
    study = optuna.create_study(direction="maximize")
    for score in (0.8, 0.9):
        trial = study.ask()
        suggest(trial)  # draws every parameter the table shows
        for k in ("val_accuracy", "val_roc_auc", "dev_accuracy", "dev_roc_auc"):
            trial.set_user_attr(k, score)
        study.tell(trial, score)
    rows = table(study).splitlines()
    assert rows[0].startswith("| trial | score |") and len(rows) == 4
    assert [r.split(" | ")[1] for r in rows[2:]] == ["0.9000", "0.8000"]
