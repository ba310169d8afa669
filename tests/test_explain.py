"""Explanations: the sentiment word drove a trained model; attention weights; no side effects."""

import itertools
import random

import pytest
import torch

from model import artifact
from model.predictor import Predictor
from model.text import Tokenizer, TokenizerConfig
from model.vocab import Vocab
from training.train import TrainConfig, encode_all, train_classifier

POS = ["喜欢", "满意", "推荐", "漂亮"]
NEG = ["讨厌", "失望", "垃圾", "难看"]
FILL = ["这个", "手机", "物流", "客服", "东西", "包装", "价格", "今天", "我们", "真的", "觉得"]


def rows(n: int, seed: int) -> list[tuple[list[str], int, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POS if label else NEG)
        words = [*rng.sample(FILL, 5), word]
        rng.shuffle(words)
        out.append((words, label, word))
    return out


def trained_predictor(pooling: str) -> Predictor:
    data = rows(500, seed=0)
    vocab = Vocab.build([w for w, _, _ in data], min_freq=1)
    cfg = TrainConfig(
        embed_dim=16,
        hidden_size=16,
        pooling=pooling,
        epochs=5,
        patience=5,
        batch_size=32,
        lr=0.01,
        max_len=16,
        seed=3,
    )
    ids = encode_all(vocab, [w for w, _, _ in data], cfg.max_len)
    y = [lb for _, lb, _ in data]
    torch.set_num_threads(1)
    result = train_classifier(
        cfg, vocab, ids, y, ids[:100], y[:100], torch.device("cpu"), progress=False
    )
    loaded = artifact.LoadedModel(
        model=result.model,
        config=result.model.cfg,
        tokenizer=Tokenizer(TokenizerConfig()),
        vocab=vocab,
        max_len=cfg.max_len,
        version="test",
        device=torch.device("cpu"),
        path=artifact.DEFAULT_DIR,
    )
    return Predictor(loaded, batch_size=7)  # small batches: explanations span several


@pytest.fixture(scope="module")
def gradient_predictor():
    return trained_predictor("max_mean")


@pytest.fixture(scope="module")
def attention_predictor():
    return trained_predictor("attention")


def held_out():
    data = rows(60, seed=99)
    return ["".join(w) for w, _, _ in data], [lb for _, lb, _ in data], [s for _, _, s in data]


# Attention weights are a weaker explanation: BiLSTM states mix the whole text, so attention
# need not sit on the word that decided; gradient x input follows the decision itself.
@pytest.mark.parametrize(
    ("which", "share"), [("gradient_predictor", 0.8), ("attention_predictor", 0.5)]
)
def test_the_sentiment_word_drove_each_correct_decision(which, share, request):
    predictor = request.getfixturevalue(which)
    texts, y, words = held_out()
    preds = predictor.predict(texts)
    top = predictor.explain(texts, top_k=1)
    correct = [i for i, p in enumerate(preds) if (p.label == "positive") == bool(y[i])]
    assert len(correct) >= 50, "the tiny model should have learned the task"
    hits = sum(top[i][0][0] == words[i] for i in correct)
    assert hits >= share * len(correct), [top[i] for i in correct if top[i][0][0] != words[i]]
    # Gradient x input is signed: the word that decided it pushed toward the predicted label.
    assert all(top[i][0][1] > 0 for i in correct if top[i][0][0] == words[i])


def test_scores_are_normalised_and_in_text_order(gradient_predictor, attention_predictor):
    texts, _, _ = held_out()
    tok = Tokenizer()
    for predictor in (gradient_predictor, attention_predictor):
        full = predictor.explain(texts, top_k=None)
        for text, pairs in zip(texts, full, strict=True):
            assert [t for t, _ in pairs] == tok.tokenize(text)[:16]
            assert sum(abs(s) for _, s in pairs) == pytest.approx(1.0, abs=1e-4)
    attention = attention_predictor.explain(texts, top_k=None)
    assert all(s >= 0 for pairs in attention for _, s in pairs)  # softmax weights


def test_top_k_order_empty_text_and_no_side_effects(gradient_predictor):
    long_text = "这个" * 40 + "喜欢"
    texts = ["东西真的垃圾", "", "   ", long_text, "我们喜欢这个"]
    before = gradient_predictor.predict(texts)
    model = gradient_predictor.model
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    out = gradient_predictor.explain(texts, top_k=3)
    assert out[1] == [] and out[2] == []
    assert len(out[0]) == 3 and out[0][0][0] == "垃圾"
    assert out[4][0][0] == "喜欢"
    assert all(abs(a[1]) >= abs(b[1]) for pairs in out for a, b in itertools.pairwise(pairs))
    assert len(gradient_predictor.explain([long_text], top_k=None)[0]) == 16  # max_len tokens
    # A shared model's parameters keep whatever .grad they had: explain only asks for input grads.
    for p, g in zip(model.parameters(), grads, strict=True):
        assert (p.grad is None and g is None) or (
            p.grad is not None and g is not None and torch.equal(p.grad, g)
        )
    assert not model.training
    assert gradient_predictor.predict(texts) == before
