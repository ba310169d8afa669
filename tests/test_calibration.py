"""Temperature scaling: recovers a known temperature, fixes an over-confident model, CLI."""

import json

import numpy as np
import pytest
import torch

from model import artifact
from model.network import ClassifierConfig, SentimentClassifier
from model.predictor import batched_probabilities
from training.__main__ import main as train_main
from training.calibrate import calibrate, fit_temperature, fold_temperature, scaled_probs
from training.calibrate import main as calibrate_main
from training.classification_metrics import expected_calibration_error
from training.train import collate


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(6000, 3))
    true_t = 2.5
    p = np.exp(logits / true_t)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert fit_temperature(logits, y) == pytest.approx(true_t, rel=0.1)


def _random_model_and_data(n: int = 3000, seed: int = 0):
    """A model whose sharpened logits define the truth, then made 4x over-confident."""
    torch.manual_seed(seed)
    cfg = ClassifierConfig(vocab_size=40, embed_dim=8, hidden_size=8, pooling="mean", dropout=0.0)
    model = SentimentClassifier(cfg).eval()
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(2, 40, size=rng.integers(3, 12)).tolist() for _ in range(n)]
    fold_temperature(model, 0.05)  # logits x20: spread the random model's outputs
    probs = batched_probabilities(model, seqs, 256, torch.device("cpu"), 2).numpy()
    y = np.array([rng.choice(2, p=row / row.sum()) for row in probs.astype(np.float64)])
    fold_temperature(model, 0.25)  # now 4x over-confident against those labels
    return model, seqs, y


def test_temperature_scaling_lowers_the_ece_of_an_over_confident_model():
    model, seqs, y = _random_model_and_data()
    val, test = slice(0, 1500), slice(1500, None)
    before = batched_probabilities(model, seqs[test], 256, torch.device("cpu"), 2).numpy()
    result = calibrate(model, seqs[val], y[val].tolist(), torch.device("cpu"))
    after = batched_probabilities(model, seqs[test], 256, torch.device("cpu"), 2).numpy()
    assert result["temperature"] == pytest.approx(4.0, rel=0.2)
    assert result["val_ece_after"] < result["val_ece_before"]
    assert result["val_nll_after"] < result["val_nll_before"]
    # Held-out rows, which the temperature never saw, are better calibrated too.
    assert expected_calibration_error(after, y[test]) < expected_calibration_error(before, y[test])
    assert (after.argmax(1) == before.argmax(1)).all()  # accuracy cannot change
    np.testing.assert_allclose(after, scaled_probs(before, result["temperature"]), atol=1e-4)


def test_folding_a_temperature_divides_the_logits():
    model, seqs, _ = _random_model_and_data(n=20)
    ids, lengths = collate(seqs)
    with torch.no_grad():
        base = model(ids, lengths)
        fold_temperature(model, 2.0)
        np.testing.assert_allclose(model(ids, lengths).numpy(), (base / 2.0).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="positive"):
        fold_temperature(model, 0.0)


def test_calibrate_cli_writes_a_calibrated_artifact(tmp_path):
    import random

    rng = random.Random(0)
    words_pos, words_neg = ["好", "棒", "喜欢"], ["差", "烂", "讨厌"]
    lines = ["text,label"]
    for i in range(500):
        label = i % 2
        # noisy labels: 20% of rows carry the other side's word, so certainty is never earned
        side = label if rng.random() > 0.2 else 1 - label
        word = rng.choice(words_pos if side else words_neg)
        lines.append(f"今天{word}的东西{i},{'positive' if label else 'negative'}")
    (tmp_path / "data.csv").write_text("\n".join(lines), encoding="utf-8")
    base = tmp_path / "base"
    args = ["--source", str(tmp_path / "data.csv"), "--out", str(base), "--device", "cpu"]
    args += ["--threads", "1", "--no-progress", "--no-report", "--epochs", "3", "--lr", "0.02"]
    assert train_main([*args, "--embed-dim", "8", "--hidden-size", "8", "--min-freq", "1"]) == 0
    out = tmp_path / "calibrated"
    assert calibrate_main(["--model", str(base), "--out", str(out), "--threads", "1"]) == 0
    loaded = artifact.load(out)
    cal = loaded.metrics["calibration"]
    assert cal["temperature"] > 0 and cal["val_nll_after"] <= cal["val_nll_before"] + 1e-9
    assert loaded.version != artifact.load(base).version  # the head's weights changed
    base_metrics = json.loads((base / "metrics.json").read_text(encoding="utf-8"))
    assert loaded.metrics["test"]["accuracy"] == pytest.approx(base_metrics["test"]["accuracy"])
    assert loaded.metrics["test"]["ece"] == pytest.approx(cal["test_ece_after"])
