"""training.experiments.compare on a tiny labelled set: every baseline trains, scores and is
plotted."""

import csv
import json
import random

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.__main__ import main as train_main
from training.data import load_source
from training.experiments.compare import main as compare_main

POS = ["很好", "喜欢", "满意", "推荐", "不错"]
NEG = ["很差", "讨厌", "失望", "垃圾", "退货"]
FILL = ["这个", "手机", "物流", "客服", "东西", "包装", "价格", "今天", "我们", "觉得"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    rng = random.Random(0)
    for name, n in (("data.csv", 400), ("social_train.csv", 40), ("social_dev.csv", 40)):
        with open(d / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for i in range(n):
                label = i % 2
                words = [*rng.sample(FILL, 4), rng.choice(POS if label else NEG)]
                rng.shuffle(words)
                w.writerow(["".join(words), "positive" if label else "negative"])
    model = d / "model"
    args = ["--source", str(d / "data.csv"), "--out", str(model), "--device", "cpu", "--threads"]
    args += ["1", "--no-progress", "--no-report", "--epochs", "3", "--embed-dim", "16"]
    assert train_main([*args, "--hidden-size", "16", "--lr", "0.01", "--min-freq", "1"]) == 0
    return d, model


def test_compare_trains_every_baseline_and_writes_table_and_plots(setup, capsys):
    d, model = setup
    out = d / "out"
    argv = ["--source", str(d / "data.csv"), "--scratch", str(model), "--out", str(out)]
    argv += ["--social-train", str(d / "social_train.csv")]
    argv += ["--social-dev", str(d / "social_dev.csv")]
    assert compare_main([*argv, "--seed-epochs", "1", "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = printed["test"]
    names = [r["model"] for r in table]
    expected = ["tfidf-word-lr", "tfidf-char-lr", "snownlp-bayes", "seed-lstm", "ours-scratch"]
    assert names == expected
    for r in table:
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["roc_auc"] <= 1.0, r
    # The sentiment word decides every label: the n-gram baselines must get it right.
    by_name = {r["model"]: r for r in table}
    assert by_name["tfidf-word-lr"]["accuracy"] >= 0.95
    assert by_name["tfidf-char-lr"]["accuracy"] >= 0.95
    # The stored scores are the ones the table's ROC-AUC was computed from.
    stored = json.loads((out / "compare.json").read_text(encoding="utf-8"))["rows"]
    test_y = load_source(str(d / "data.csv")).test.label_ids(("negative", "positive"))
    for row in stored:
        assert roc_auc_score(test_y, row["scores"]) == pytest.approx(row["roc_auc"], abs=1e-9)
    assert (out / "compare.png").stat().st_size > 0 and (out / "compare_roc.png").stat().st_size > 0
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert all(f"| {n} |" in md for n in names)

    # The in-domain table: the linear models on the same rows as ours, scored on social_dev.
    social = {r["model"]: r for r in printed["social_dev"]}
    assert list(social) == [
        "tfidf-char-lr, posts x1",
        "strongest linear, posts x10",
        "ours-scratch",
    ]
    assert social["strongest linear, posts x10"]["accuracy"] >= 0.95
    assert all(f"| {n} |" in md.split("social_dev", 1)[1] for n in social)

    # --reuse keeps the baseline rows and scores only the artifacts again.
    argv += ["--model", f"again={model}", "--reuse", "--skip", "seed-lstm"]
    assert compare_main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"]
    again_by_name = {r["model"]: r for r in again}
    assert "seed-lstm" not in again_by_name
    assert again_by_name["snownlp-bayes"] == {
        k: v for k, v in by_name["snownlp-bayes"].items() if k != "scores"
    }
    assert again_by_name["again"]["accuracy"] == pytest.approx(by_name["ours-scratch"]["accuracy"])
    assert np.isfinite(again_by_name["again"]["ece"])
