"""training.loop: one loop for the classifier and the language model, and how it stops."""

import copy
import dataclasses
import random

import pytest
import torch
from torch import nn

from model.text import Tokenizer
from model.vocab import Vocab
from tests.test_pretrain import sentences
from tests.test_training import synthetic_rows
from training.loop import EpochEnd, LoopConfig, fit
from training.pretrain import PretrainConfig, pretrain
from training.train import TrainConfig, _nll, encode_all, train_classifier


def tiny_regression(n: int = 64):
    """A linear model, rows of random inputs, and a batch loss over them."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(n, 4), torch.randn(n, 1)

    def batch_loss(batch: list[int]) -> tuple[torch.Tensor, int]:
        return nn.functional.mse_loss(model(x[batch]), y[batch]), len(batch)

    return model, batch_loss


def loop_config(**changes) -> LoopConfig:
    base = LoopConfig(
        epochs=6, batch_size=8, lr=0.05, weight_decay=0.0, clip=1.0, warmup_frac=0.0, seed=1
    )
    return dataclasses.replace(base, **changes)


def test_early_stopping_ends_on_the_best_epochs_weights():
    model, batch_loss = tiny_regression()
    scores = iter([0.2, 0.9, 0.5, 0.4, 0.95, 0.99])
    weights: dict[int, dict[str, torch.Tensor]] = {}

    def evaluate(end: EpochEnd) -> tuple[dict, float]:
        weights[end.epoch] = copy.deepcopy(model.state_dict())
        return {"epoch": end.epoch, "train_loss": end.train_loss}, next(scores)

    fitted = fit(
        model,
        [1] * 64,
        batch_loss,
        evaluate,
        loop_config(patience=2, keep_best=True),
        progress=False,
    )
    assert [row["epoch"] for row in fitted.history] == [1, 2, 3, 4]  # two epochs below 0.9
    assert fitted.best_epoch == 2
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[2][name])
        assert not torch.equal(value, weights[4][name])
    assert not model.training


def test_without_keep_best_the_last_epochs_weights_stay():
    model, batch_loss = tiny_regression()
    scores = iter([0.9, 0.1, 0.1])
    fitted = fit(
        model,
        [1] * 64,
        batch_loss,
        lambda end: ({"epoch": end.epoch}, next(scores)),
        loop_config(epochs=3),
        progress=False,
    )
    assert fitted.best_epoch == 1 and len(fitted.history) == 3  # no patience: every epoch runs
    last = copy.deepcopy(model.state_dict())
    fit(
        model,
        [1] * 64,
        batch_loss,
        lambda end: ({}, 0.0),
        loop_config(epochs=1, lr=0.0),
        progress=False,
    )
    assert all(torch.equal(v, last[k]) for k, v in model.state_dict().items())


def test_the_warm_up_and_decay_schedule_reach_the_evaluation():
    model, batch_loss = tiny_regression(n=80)  # 10 steps an epoch
    lrs = []

    def evaluate(end: EpochEnd) -> tuple[dict, float]:
        lrs.append(end.lr)
        return {}, 0.0

    fit(
        model,
        [1] * 80,
        batch_loss,
        evaluate,
        loop_config(epochs=2, warmup_frac=0.5),
        progress=False,
    )
    # 20 steps, 10 of warm-up: full rate after epoch 1, linear decay to zero after epoch 2
    assert lrs == pytest.approx([0.05, 0.0])


@pytest.fixture(scope="module")
def lm_data():
    tok = Tokenizer()
    tokens = [tok.tokenize(t) for t in sentences(300, seed=3)]
    vocab = Vocab.build(tokens, min_freq=1)
    ids = [vocab.encode(t, 32) for t in tokens]
    return vocab, ids[:250], ids[250:]


def lm_config(**changes) -> PretrainConfig:
    return PretrainConfig(
        embed_dim=8,
        hidden_size=8,
        max_len=32,
        batch_size=25,
        lr=0.01,
        init_embeddings="none",
        **changes,
    )


def test_the_lm_is_checkpointed_after_every_epoch(lm_data):
    vocab, train_ids, heldout_ids = lm_data
    seen: list[tuple[int, float]] = []

    def checkpoint(lm, history):
        seen.append((len(history), float(lm.encoder.embedding.weight.detach().sum())))

    _, history = pretrain(
        lm_config(epochs=3), train_ids, heldout_ids, vocab, torch.device("cpu"), False, checkpoint
    )
    assert [n for n, _ in seen] == [1, 2, 3]
    assert len({w for _, w in seen}) == 3  # a new state each time, not one object saved thrice
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["heldout_perplexity"] < history[0]["heldout_perplexity"]
    assert all(row["tokens"] == history[0]["tokens"] for row in history)


def test_the_time_budget_stops_an_lm_run_after_the_epoch_it_ends_in(lm_data):
    vocab, train_ids, heldout_ids = lm_data
    calls = []
    _, history = pretrain(
        lm_config(epochs=5, max_minutes=1e-9),
        train_ids,
        heldout_ids,
        vocab,
        torch.device("cpu"),
        False,
        lambda lm, h: calls.append(len(h)),
    )
    assert calls == [1]  # the cut epoch is still evaluated and saved
    (row,) = history
    _, full = pretrain(
        lm_config(epochs=1), train_ids, heldout_ids, vocab, torch.device("cpu"), False
    )
    assert 0 < row["tokens"] < full[0]["tokens"]  # stopped after its first batch


def test_the_classifier_ends_on_its_best_epoch_through_the_same_loop():
    rows = synthetic_rows(240, seed=5)
    random.Random(0).shuffle(rows)
    tok = Tokenizer()
    tokens = [tok.tokenize(t) for t, _ in rows]
    y = [int(label == "positive") for _, label in rows]
    vocab = Vocab.build(tokens[:200], min_freq=1)
    ids = encode_all(vocab, tokens, 32)
    # A rate this high overshoots, so validation macro-F1 stalls and patience 1 stops early.
    cfg = TrainConfig(
        embed_dim=8,
        hidden_size=8,
        epochs=12,
        patience=1,
        lr=0.2,
        batch_size=16,
        init_embeddings="none",
        warmup_frac=0.0,
        schedule="constant",
    )
    result = train_classifier(
        cfg, vocab, ids[:200], y[:200], ids[200:], y[200:], torch.device("cpu"), progress=False
    )
    assert len(result.history) < cfg.epochs  # stopped early
    assert result.best_epoch < len(result.history)
    best, last = result.history[result.best_epoch - 1], result.history[-1]
    assert result.best_val["macro_f1"] == best["val_macro_f1"]
    val_loss = _nll(result.model, ids[200:], y[200:], torch.device("cpu"))
    assert val_loss == pytest.approx(best["val_loss"])
    assert val_loss != pytest.approx(last["val_loss"])
