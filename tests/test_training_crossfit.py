"""training.experiments.crossfit: each fold's model is trained without that fold and scores it."""

import csv
import json

import numpy as np
import pytest

from model import artifact
from model.predictor import Predictor
from tests.test_training import synthetic_rows, write_csv
from tests.test_training_seeds import TINY
from training.classification_metrics import ece_floor, expected_calibration_error
from training.experiments.crossfit import fold_of, with_extra_train
from training.experiments.crossfit import main as crossfit_main


def test_every_labelled_row_is_scored_by_the_fold_model_that_never_saw_it(tmp_path):
    write_csv(tmp_path / "data.csv", synthetic_rows(400, seed=5))
    extra = [(t, lab, "hard" if i % 3 == 0 else "plain")
             for i, (t, lab) in enumerate(synthetic_rows(90, seed=9))]  # fmt: skip
    extra += [(f"明天下午三点开会{i}", "neutral", "plain") for i in range(10)]
    with open(tmp_path / "extra.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "kind"])
        w.writerows(extra)
    models, out = tmp_path / "models", tmp_path / "out"
    flags = ["--", "--source", str(tmp_path / "data.csv"),
             "--extra-train", str(tmp_path / "extra.csv"), *TINY]  # fmt: skip
    argv = ["--file", str(tmp_path / "extra.csv"), "--folds", "2", "--models", str(models),
            "--out", str(out), "--compare", str(models / "fold-0"),
            "--jobs", "2", *flags]  # fmt: skip
    assert crossfit_main(argv) == 0

    for k in (0, 1):
        with open(models / f"fold-{k}-train.csv", encoding="utf-8") as f:
            kept = {r["text"] for r in csv.DictReader(f)}
        assert kept == {t for t, _, _ in extra if fold_of(t, 2) != k}
        n = sum(1 for t, lab, _ in extra if fold_of(t, 2) != k and lab != "neutral")
        assert (
            f"+{n} rows of {models / f'fold-{k}-train.csv'}"
            in (models / f"fold-{k}.log").read_text()
        )

    # The out-of-fold figures, recomputed from the fold models independently.
    labelled = [(t, lab, kind) for t, lab, kind in extra if lab != "neutral"]
    right, hard = [], []
    for t, lab, kind in labelled:
        p = Predictor(artifact.load(models / f"fold-{fold_of(t, 2)}"), runtime="torch")
        right.append(p.predict([t])[0].label == lab)
        hard.append(kind == "hard")
    right_a, hard_a = np.array(right), np.array(hard)
    result = json.loads((out / "crossfit.json").read_text())
    (oof, compared) = result["results"].values()
    assert oof["rows"] == len(labelled) == compared["rows"]
    assert result["hard_rows"] == int(hard_a.sum())
    assert oof["accuracy"] == pytest.approx(right_a.mean(), abs=1e-4)
    assert oof["hard_accuracy"] == pytest.approx(right_a[hard_a].mean(), abs=1e-4)
    assert oof["plain_accuracy"] == pytest.approx(right_a[~hard_a].mean(), abs=1e-4)
    assert oof["temperature"] > 0
    assert len((out / "crossfit.md").read_text().splitlines()) == 2 + 2

    # --reuse scores the trained folds again instead of training them.
    before = (models / "fold-0.log").stat().st_mtime_ns
    assert crossfit_main([*argv[: -len(flags)], "--reuse", *flags]) == 0
    assert (models / "fold-0.log").stat().st_mtime_ns == before
    assert json.loads((out / "crossfit.json").read_text()) == result


def test_a_file_the_recipe_does_not_train_on_is_refused():
    flags = ["--extra-train", "a.csv,b.csv", "--epochs", "2"]
    assert with_extra_train(flags, "b.csv", "b-0.csv") == ["--extra-train", "a.csv,b-0.csv",
                                                          "--epochs", "2"]  # fmt: skip
    with pytest.raises(ValueError, match="c.csv is not in the recipe's --extra-train"):
        with_extra_train(flags, "c.csv", "c-0.csv")


def test_the_ece_floor_is_what_calibrated_labels_show_and_shrinks_with_the_rows():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.5, 1.0, 2000)
    probs = np.stack([1 - p, p], axis=1)
    small, large = ece_floor(probs[:100]), ece_floor(probs)
    assert 0 < large < small
    # Labels drawn from the probabilities give ECEs around the floor; confident wrong ones don't.
    y = (rng.random(100) < p[:100]).astype(int)
    assert expected_calibration_error(probs[:100], y) < 3 * small
    assert expected_calibration_error(probs[:100], np.zeros(100, dtype=int)) > 3 * small
    certain = np.array([[0.0, 1.0]] * 50)
    assert ece_floor(certain) == 0.0
