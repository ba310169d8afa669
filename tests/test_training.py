"""Training smoke run on generated data, the evaluate and predict CLIs, and bad-row reporting."""

import csv
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from model import artifact
from model.predictor import Predictor
from training.__main__ import main as train_main
from training.data import read_file
from training.pipeline import soft_targets
from training.train import TrainConfig

POS = ["很好", "喜欢", "满意", "推荐", "不错", "漂亮", "快"]
NEG = ["很差", "讨厌", "失望", "垃圾", "退货", "难看", "慢"]
FILL = ["这个", "手机", "物流", "客服", "东西", "包装", "价格", "今天", "我们", "觉得", "真的"]


def synthetic_rows(
    n: int, seed: int, pos: list[str] = POS, neg: list[str] = NEG, suffix: str = "号"
) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        words = [*rng.sample(FILL, 4), rng.choice(pos if label == "positive" else neg)]
        rng.shuffle(words)
        rows.append(("".join(words) + f"{i}{suffix}", label))
    return rows


def write_csv(path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    write_csv(d / "data.csv", synthetic_rows(1200, seed=0))
    out = d / "model"
    rc = train_main(
        [
            "--source",
            str(d / "data.csv"),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--no-progress",
            "--embed-dim",
            "24",
            "--hidden-size",
            "16",
            "--epochs",
            "6",
            "--patience",
            "2",
            "--batch-size",
            "32",
            "--lr",
            "0.01",
            "--min-freq",
            "1",
        ]
    )
    assert rc == 0
    return out, d


def test_training_learns_and_writes_a_complete_artifact(tiny_model):
    out, _ = tiny_model
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]
    assert (
        metrics["rows"]["train"] + metrics["rows"]["validation"] + metrics["rows"]["test"] == 1200
    )
    assert 1 <= metrics["best_epoch"] <= len(metrics["history"])
    for name in (
        "model.safetensors",
        "config.json",
        "vocab.json",
        "reference.json",
        "metrics.json",
        "README.md",
        "curves.png",
        "confusion_matrix.png",
        "roc.png",
    ):
        assert (out / name).is_file(), name
    ref = json.loads((out / "reference.json").read_text())
    assert sum(ref["score_counts"]) == metrics["rows"]["validation"]
    loaded = artifact.load(out)
    assert loaded.reference is not None
    assert loaded.version in (out / "README.md").read_text()
    assert "python -m training" in (out / "README.md").read_text()


def test_best_epoch_is_restored(tiny_model):
    out, _ = tiny_model
    metrics = json.loads((out / "metrics.json").read_text())
    best = max(h["val_macro_f1"] for h in metrics["history"])
    assert metrics["validation"]["macro_f1"] == pytest.approx(best)


def test_evaluate_cli_matches_an_independent_computation(tiny_model, tmp_path):
    out, _ = tiny_model
    rows = synthetic_rows(300, seed=99)
    write_csv(tmp_path / "eval.csv", rows)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            "--model",
            str(out),
            "--data",
            str(tmp_path / "eval.csv"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout)  # stdout is exactly one JSON object
    for key in ("n", "accuracy", "macro_f1", "roc_auc", "per_label", "confusion_matrix"):
        assert key in report
    assert report["n"] == 300
    probs = (
        Predictor(artifact.load(out))
        .probabilities(Predictor(artifact.load(out)).encode([t for t, _ in rows]))
        .numpy()
    )
    y = np.array([1 if lb == "positive" else 0 for _, lb in rows])
    assert report["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(1)))
    assert report["macro_f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert sum(map(sum, report["confusion_matrix"])) == 300
    assert set(report["per_label"]) == {"negative", "positive"}


def test_predict_cli_reads_lines_and_jsonl(tiny_model):
    out, _ = tiny_model
    stdin = '这个手机很好\n{"id": 7, "text": "垃圾东西", "user": "u1"}\n{"id": 8}\n'
    proc = subprocess.run(
        [sys.executable, "-m", "model", "--model", str(out), "--device", "cpu"],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(lines) == 3
    assert lines[0]["label"] in ("positive", "negative") and 0 <= lines[0]["score"] <= 1
    assert lines[1]["id"] == 7 and lines[1]["user"] == "u1" and "label" in lines[1]
    assert lines[2]["id"] == 8 and "error" in lines[2]


def test_bad_rows_are_counted_not_dropped_silently(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes(
        "text,label\n好,positive\n,negative\n差,maybe\n不错,1\n".encode() + b"\xff\xfe,0\n"
    )
    ds = read_file(p)
    assert [e.label for e in ds.examples] == ["positive", "positive"]
    assert ds.bad_rows == {"empty_text": 1, "unknown_label": 1, "undecodable": 1}


def test_bad_training_option_is_a_clear_error(tmp_path, capsys):
    rc = train_main(["--out", str(tmp_path / "x"), "--schedule", "sideways"])
    assert rc == 2
    assert "schedule must be" in capsys.readouterr().err


@pytest.mark.parametrize("distill_extra", [True, False])
def test_in_domain_rows_aim_at_the_teacher_or_at_their_gold_labels(distill_extra):
    general = synthetic_rows(300, seed=3)
    extra = synthetic_rows(40, seed=4) * 3  # an up-weighted in-domain set, after the rest
    texts = [t for t, _ in general + extra]
    y = [int(lb == "positive") for _, lb in general + extra]
    cfg = TrainConfig(distill=0.5, distill_extra=distill_extra)
    soft = soft_targets(texts, y, cfg, general_rows=len(general))
    assert soft is not None and soft.shape == (len(texts), 2)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-9)
    one_hot = np.eye(2)[y]
    # The general rows always learn from the cross-fitted teacher: never exactly one-hot.
    assert not np.any(np.all(soft[: len(general)] == one_hot[: len(general)], axis=1))
    in_domain_gold = np.all(soft[len(general) :] == one_hot[len(general) :], axis=1)
    assert in_domain_gold.all() if not distill_extra else not in_domain_gold.any()
    assert soft_targets(texts, y, TrainConfig(distill=0.0), len(general)) is None


def test_the_model_card_says_which_rows_learn_from_the_teacher():
    from training.report import _architecture

    tok = {"segmenter": "rjieba"}
    both = _architecture({"distill": 0.5, "hidden_size": 8}, tok)
    labels_only = _architecture({"distill": 0.5, "distill_extra": False, "hidden_size": 8}, tok)
    assert "teacher" in both and "labels alone" not in both
    assert "the in-domain rows on their labels alone" in labels_only
    assert "transfer set" not in both
    transfer = _architecture({"distill": 0.5, "transfer_variants": 3, "hidden_size": 8,
                              "transfer_text": "posts.txt"}, tok)  # fmt: skip
    assert "transfer set of 3 variants of each train text and the unlabelled texts of" in transfer


def test_init_from_fine_tunes_the_base_and_keeps_its_vocabulary(tiny_model, tmp_path):
    """微调 from a classifier artifact: the base's vocabulary, tokenizer and network are kept,
    its weights are the starting point, and every --extra-train file is added."""
    base_dir, d = tiny_model
    extra_a, extra_b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(extra_a, synthetic_rows(40, seed=1))
    write_csv(extra_b, [*synthetic_rows(30, seed=2), ("今天下雨", "neutral")])
    out = tmp_path / "tuned"
    args = ["--source", str(d / "data.csv"), "--out", str(out), "--device", "cpu",
            "--threads", "1", "--no-progress", "--no-report", "--epochs", "1",
            "--init-from", str(base_dir), "--extra-train", f"{extra_a},{extra_b}"]  # fmt: skip
    assert train_main(args) == 0
    base, tuned = artifact.load(base_dir), artifact.load(out)
    assert tuned.vocab.itos == base.vocab.itos
    assert tuned.config.network_fields() == {
        **base.config.network_fields(),
        "dropout": 0.4,
        "embed_dropout": 0.2,
    }
    assert tuned.version != base.version
    base_rows = json.loads((base_dir / "metrics.json").read_text())["rows"]["train"]
    assert tuned.metrics["rows"]["train"] == base_rows + 40 + 30
    assert tuned.metrics["bad_rows"] == {f"{extra_b}:unknown_label": 1}
    accuracy = tuned.metrics["test"]["accuracy"]
    assert accuracy >= base.metrics["test"]["accuracy"] - 0.05


def test_init_from_refuses_flags_that_would_build_new_token_tables(tiny_model, tmp_path, capsys):
    base_dir, d = tiny_model
    rc = train_main(["--source", str(d / "data.csv"), "--out", str(tmp_path / "x"),
                     "--init-from", str(base_dir), "--char-features", "true"])  # fmt: skip
    assert rc == 2
    assert "--char-features" in capsys.readouterr().err


def test_new_head_keeps_the_base_encoder_under_another_pooling(tiny_model, tmp_path):
    base_dir, d = tiny_model
    out = tmp_path / "pooled"
    args = ["--source", str(d / "data.csv"), "--out", str(out), "--device", "cpu",
            "--threads", "1", "--no-progress", "--no-report", "--epochs", "1", "--lr", "0",
            "--init-from", str(base_dir), "--new-head", "true", "--pooling", "mean"]  # fmt: skip
    assert train_main(args) == 0
    base, tuned = artifact.load(base_dir), artifact.load(out)
    assert tuned.config.pooling == "mean" and base.config.pooling != "mean"
    for name, weight in base.model.encoder.state_dict().items():
        assert torch.equal(tuned.model.encoder.state_dict()[name], weight), name


def test_a_teacher_model_joins_the_linear_teacher_as_their_mean(tiny_model):
    """--teacher-model: each row's soft target is the mean of the cross-fitted linear model's
    probabilities and the pretrained classifier's."""
    base_dir, _ = tiny_model
    rows = synthetic_rows(200, seed=6)
    texts, y = [t for t, _ in rows], [int(lb == "positive") for _, lb in rows]
    linear = soft_targets(texts, y, TrainConfig(distill=0.5), general_rows=len(texts))
    both = soft_targets(texts, y, TrainConfig(distill=0.5, teacher_model=str(base_dir)), len(texts))
    teacher = Predictor(artifact.load(base_dir))
    probs = teacher.probabilities(teacher.encode(texts)).numpy()
    assert linear is not None and both is not None
    np.testing.assert_allclose(both, (linear + probs) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="distill"):
        TrainConfig(teacher_model=str(base_dir))


def test_char_init_starts_each_shared_characters_vector_from_the_donor(tmp_path):
    from model.network import ClassifierConfig, SentimentClassifier
    from model.text import TokenizerConfig
    from model.vocab import Vocab
    from training.features import char_ids, init_char_vectors, new_classifier

    donor_vocab = Vocab(["<pad>", "<unk>", "好", "差"])
    donor = SentimentClassifier(ClassifierConfig(len(donor_vocab), embed_dim=8, hidden_size=4))
    artifact.save(tmp_path / "donor", donor, donor_vocab, 16, TokenizerConfig(segmenter="chars"))
    cfg = TrainConfig(char_features=True, embed_dim=8, hidden_size=4)
    vocab = Vocab(["<pad>", "<unk>", "很好", "太差", "一般"])
    model = new_classifier(cfg, vocab)
    assert init_char_vectors(model, vocab, cfg.chars_per_token, str(tmp_path / "donor")) == 2
    table, ids = model.encoder.char_embedding, char_ids(vocab, cfg.chars_per_token)
    assert table is not None
    for char, donor_id in (("好", 2), ("差", 3)):
        assert torch.equal(table.weight[ids[char]], donor.encoder.embedding.weight[donor_id])
    assert not torch.equal(table.weight[ids["一"]], torch.zeros(8))  # unknown to the donor: drawn
