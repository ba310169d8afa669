"""Optuna search (resumable, budgeted), k-fold CV, and oversampling on a skewed sample."""

import csv
import json
import random
from collections import Counter

import numpy as np
import optuna
import pytest
import torch

from model.vocab import Vocab
from training.classification_metrics import classification_report
from training.experiments.search import main as search_main
from training.imbalance import oversample
from training.train import TrainConfig, encode_all, evaluate_ids, train_classifier

POS = ["很好", "喜欢", "满意", "推荐"]
NEG = ["很差", "讨厌", "失望", "垃圾"]
FILL = ["这个", "手机", "物流", "客服", "东西", "包装", "价格", "今天", "我们", "觉得"]


def rows(n_pos: int, n_neg: int, seed: int) -> list[tuple[list[str], int]]:
    rng = random.Random(seed)
    out = []
    for label, n in ((1, n_pos), (0, n_neg)):
        for _ in range(n):
            words = [*rng.sample(FILL, 4), rng.choice(POS if label else NEG)]
            rng.shuffle(words)
            out.append((words, label))
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i, (words, label) in enumerate(rows(150, 150, seed=0)):
            w.writerow(["".join(words) + f"{i}号", "positive" if label else "negative"])
    return path


def test_search_stores_trials_in_sqlite_and_resumes(csv_path, tmp_path, capsys):
    db = tmp_path / "study.db"
    args = ["--source", str(csv_path), "--storage", f"sqlite:///{db}", "--study", "t"]
    args += ["--epochs", "1", "--threads", "1", "--max-train-rows", "120"]
    assert search_main([*args, "--trials", "2"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["trials"] == 2
    assert search_main([*args, "--trials", "1", "--out", str(tmp_path / "best.json")]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{db}")
    values = [t.value for t in study.trials if t.value is not None]
    assert len(values) == 3 and second["trials"] == 3  # the second run continued the study
    assert second["best_value"] == pytest.approx(max(values))
    assert all(0.0 <= v <= 1.0 for v in values)
    assert "--pooling" in second["command"] and "--hidden-size" in second["command"]
    assert json.loads((tmp_path / "best.json").read_text())["best_params"] == study.best_params


def test_search_without_a_budget_is_refused(csv_path, tmp_path, capsys):
    rc = search_main(["--source", str(csv_path), "--storage", f"sqlite:///{tmp_path}/s.db"])
    assert rc == 2
    assert "budget" in capsys.readouterr().err


def test_cross_validation_reports_one_score_per_fold(csv_path, tmp_path, capsys):
    args = ["--source", str(csv_path), "--storage", f"sqlite:///{tmp_path}/cv.db"]
    assert search_main([*args, "--cv-only", "--folds", "3", "--epochs", "1", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["folds"]) == 3
    assert out["mean"] == pytest.approx(np.mean(out["folds"]))
    assert out["std"] == pytest.approx(np.std(out["folds"]))


def test_oversample_balances_classes_and_keeps_every_row():
    data = list(range(10))
    y = [0] * 8 + [1] * 2
    rows_, labels = oversample(data, y, seed=1)
    assert Counter(labels) == {0: 8, 1: 8}
    assert set(rows_) == set(data)  # nothing dropped
    assert all(y[r] == lb for r, lb in zip(rows_, labels, strict=True))  # labels travel with rows
    assert oversample(data, y, seed=1) == (rows_, labels)  # deterministic
    with pytest.raises(ValueError, match="labels"):
        oversample(data, y[:-1])


def test_oversampling_recovers_the_minority_class_of_a_skewed_sample():
    torch.set_num_threads(1)
    train = rows(12, 288, seed=1)  # 4% positive
    test = rows(100, 100, seed=2)
    vocab = Vocab.build([w for w, _ in train], min_freq=1)
    ids = encode_all(vocab, [w for w, _ in train], 16)
    y = [lb for _, lb in train]
    test_ids = encode_all(vocab, [w for w, _ in test], 16)
    test_y = [lb for _, lb in test]
    recall = {}
    for oversampled in (False, True):
        cfg = TrainConfig(
            embed_dim=16,
            hidden_size=16,
            epochs=3,
            patience=3,
            batch_size=32,
            lr=0.005,
            oversample=oversampled,
            seed=5,
        )
        model = train_classifier(
            cfg, vocab, ids, y, ids, y, torch.device("cpu"), progress=False
        ).model
        _, probs = evaluate_ids(model, test_ids, test_y, cfg.labels, torch.device("cpu"))
        report = classification_report(np.asarray(test_y), probs, cfg.labels)
        recall[oversampled] = report["per_label"]["positive"]["recall"]
    assert recall[True] >= recall[False] + 0.3, recall
