"""Distillation on a transfer set (training/transfer.py): texts with no labels, learnt from the
teachers' probabilities alone."""

import numpy as np
import pytest
import torch

from model import artifact
from model.predictor import Predictor
from tests.test_training import synthetic_rows, write_csv
from training import transfer
from training.__main__ import main as train_main
from training.data import read_text_file
from training.features import build_vocab
from training.train import UNLABELLED, TrainConfig, train_classifier

# Sentiment words the student's labelled rows never hold: only its teacher and the transfer
# texts know them.
POS_B = ["好评", "开心", "点赞"]
NEG_B = ["差评", "难过", "踩雷"]

SMALL = ["--device", "cpu", "--threads", "1", "--no-progress", "--no-report",
         "--embed-dim", "24", "--hidden-size", "16", "--batch-size", "32", "--lr", "0.01",
         "--min-freq", "1", "--init-embeddings", "none"]  # fmt: skip


def b_rows(n: int, seed: int) -> list[tuple[str, str]]:
    return synthetic_rows(n, seed, POS_B, NEG_B, suffix="回")


def test_variants_are_new_texts_made_from_the_sources_words_and_fixed_by_the_seed():
    texts = [t for t, _ in synthetic_rows(60, seed=1)]
    out = transfer.variants(texts, 3, seed=5)
    assert out == transfer.variants(texts, 3, seed=5)
    assert out != transfer.variants(texts, 3, seed=6)
    # Most of 180 draws differ from their source; duplicates and unchanged ones are left out.
    assert 100 < len(out) <= 180 and len(set(out)) == len(out)
    assert not set(out) & set(texts)
    chars = set("".join(texts))
    assert all(t and set(t) <= chars for t in out)
    assert transfer.variants(texts, 0, seed=5) == []


def test_the_transfer_set_holds_no_train_validation_or_test_text(tmp_path):
    train = [t for t, _ in synthetic_rows(40, seed=2)]
    held = [t for t, _ in synthetic_rows(10, seed=3)]
    unlabelled = tmp_path / "posts.txt"
    unlabelled.write_text("\n".join([held[0], train[0], "全新的帖子", "全新的帖子", ""]) + "\n")
    labelled = tmp_path / "posts.csv"
    write_csv(labelled, [("另一条帖子", "positive"), (held[1], "negative")])
    out = transfer.build(train, 2, f"{unlabelled},{labelled}", held, seed=1)
    assert out.count("全新的帖子") == 1 and "另一条帖子" in out
    assert not set(out) & (set(train) | set(held))
    assert read_text_file(labelled) == ["另一条帖子", held[1]]


def test_rows_without_a_label_learn_from_the_soft_targets_alone():
    """A batch of transfer rows only has no cross-entropy term: the model moves to where the
    teacher points, even against the labelled rows' majority."""
    cfg = TrainConfig(distill=0.5, epochs=3, lr=0.02, batch_size=16, token_dropout=0.0,
                      init_embeddings="none", embed_dim=8, hidden_size=8)  # fmt: skip
    tokens = [["好"], ["差"]] * 8 + [["新词"]] * 32
    vocab = build_vocab(cfg, tokens)
    ids = [[vocab.stoi[t] for t in row] for row in tokens]
    y = [1, 0] * 8 + [UNLABELLED] * 32
    soft = np.array([[0.0, 1.0], [1.0, 0.0]] * 8 + [[0.9, 0.1]] * 32)
    result = train_classifier(cfg, vocab, ids, y, ids[:16], y[:16], torch.device("cpu"),
                              progress=False, soft_targets=soft)  # fmt: skip
    with torch.no_grad():
        p = torch.softmax(result.model(torch.tensor([ids[-1]]), torch.tensor([1])), -1)
    assert float(p[0, 0]) > 0.7
    with pytest.raises(ValueError, match="distill"):
        TrainConfig(transfer_variants=1)


@pytest.fixture(scope="module")
def b_teacher(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    write_csv(d / "data.csv", b_rows(600, seed=0))
    assert train_main(["--source", str(d / "data.csv"), "--out", str(d / "model"),
                       "--epochs", "4", *SMALL]) == 0  # fmt: skip
    return d / "model"


@pytest.mark.parametrize("with_transfer", [True, False])
def test_a_student_learns_what_only_its_teacher_knows_through_the_transfer_set(
    b_teacher, tmp_path, with_transfer
):
    """The student's labels hold sentiment words A; its teacher learnt words B. Unlabelled
    posts with B words carry the teacher's knowledge over; without them the student is near
    chance on B posts."""
    write_csv(tmp_path / "data.csv", synthetic_rows(600, seed=4))
    posts = tmp_path / "posts.txt"
    posts.write_text("\n".join(t for t, _ in b_rows(600, seed=7)) + "\n", encoding="utf-8")
    flags = ["--distill", "0.5", "--teacher-model", str(b_teacher)]
    if with_transfer:
        flags += ["--transfer-text", str(posts), "--transfer-variants", "1"]
    out = tmp_path / "student"
    assert train_main(["--source", str(tmp_path / "data.csv"), "--out", str(out),
                       "--epochs", "4", *SMALL, *flags]) == 0  # fmt: skip
    unseen = b_rows(200, seed=9)
    student = Predictor(artifact.load(out))
    probs = student.probabilities(student.encode([t for t, _ in unseen])).numpy()
    gold = np.array([lb == "positive" for _, lb in unseen])
    accuracy = float(((probs[:, 1] > 0.5) == gold).mean())
    if with_transfer:
        assert accuracy > 0.9
    else:
        assert accuracy < 0.75
