"""Fine-tuning: ULMFiT measures change only what they should; adapting a classifier to new data."""

import csv
import dataclasses
import json
import random

import pytest
import torch

from model import artifact
from model.network import ClassifierConfig, SentimentClassifier
from training import lm as lm_artifact
from training.finetune import (
    Ulmfit,
    adapt_classifier,
    classifier_from_pretrained,
    discriminative_param_groups,
    gradual_unfreezing,
    slanted_triangular,
    small_data_schedule,
    ulmfit_train,
)
from training.finetune import main as finetune_main
from training.pretrain import main as pretrain_main
from training.train import TrainConfig, encode_all, train_classifier

POS = ["很好", "喜欢", "满意", "推荐", "不错"]
NEG = ["很差", "讨厌", "失望", "垃圾", "退货"]
FILL = ["这个", "手机", "物流", "客服", "东西", "包装", "价格", "今天", "我们", "觉得"]
OTHER_FILL = ["酒店", "房间", "早餐", "前台", "位置", "床", "服务员", "晚上", "环境", "隔音"]


def rows(n: int, seed: int, fill: list[str]) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        words = [*rng.sample(fill, 4), rng.choice(POS if label == "positive" else NEG)]
        rng.shuffle(words)
        out.append(("".join(words), label))
    return out


def write_csv(path, data) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(data)


FAST = ["--device", "cpu", "--threads", "1", "--no-progress", "--batch-size", "32"]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft")
    corpus = d / "unlabelled.txt"
    texts = [t for t, _ in rows(600, 1, FILL) + rows(300, 2, OTHER_FILL)]
    corpus.write_text("\n".join(texts), encoding="utf-8")
    out = d / "lm"
    args = ["--corpus", str(corpus), "--out", str(out), "--embed-dim", "16", "--hidden-size", "16"]
    assert pretrain_main([*args, "--epochs", "1", "--min-freq", "1", "--lr", "0.01", *FAST]) == 0
    return out


def _data(pre, n: int = 200):
    data = rows(n, 3, FILL)
    tok_ids = [pre.vocab.encode(list(_segment(t)), 64) for t, _ in data]
    y = [1 if lb == "positive" else 0 for _, lb in data]
    return tok_ids, y


def _segment(text: str):
    from model.text import Tokenizer

    return Tokenizer().tokenize(text)


def test_gradual_unfreezing_trains_the_head_first_then_one_group_per_epoch(lm_dir):
    pre = lm_artifact.load(lm_dir)
    ids, y = _data(pre)
    cfg = TrainConfig(epochs=4, patience=4, batch_size=32, lr=0.01, seed=1)
    model, cfg = classifier_from_pretrained(pre, cfg)
    assert all(torch.equal(model.encoder.state_dict()[k], v) for k, v in pre.encoder_state.items())
    snapshots = []

    def watch(epoch, m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        gradual_unfreezing(epoch, m)

    steps = 4 * -(-len(ids) // 32)
    result = train_classifier(
        cfg,
        pre.vocab,
        ids,
        y,
        ids,
        y,
        torch.device("cpu"),
        model=model,
        progress=False,
        param_groups=discriminative_param_groups(model, cfg.lr, 2.6, cfg.weight_decay),
        schedule=slanted_triangular(steps, 0.1, 32),
        on_epoch_start=watch,
    )
    snapshots.append(result.model.state_dict())
    parts = {"embedding": "encoder.embedding.", "lstm": "encoder.lstm.", "head": "head."}

    def moved(a, b):
        return {
            p
            for p, prefix in parts.items()
            if any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))
        }

    assert moved(snapshots[0], snapshots[1]) == {"head"}  # epoch 1
    assert moved(snapshots[1], snapshots[2]) == {"head", "lstm"}  # epoch 2
    assert moved(snapshots[2], snapshots[3]) == set(parts)  # epoch 3: everything


def test_ulmfit_train_leaves_every_parameter_trainable(lm_dir):
    pre = lm_artifact.load(lm_dir)
    ids, y = _data(pre, 64)
    cfg = TrainConfig(epochs=1, patience=1, batch_size=32, lr=0.01)
    model, cfg = classifier_from_pretrained(pre, cfg)
    result = ulmfit_train(
        model, cfg, Ulmfit(), pre.vocab, ids, y, ids, y, torch.device("cpu"), False
    )
    # Epoch 1 froze the encoder; whoever trains this model next gets it trainable again.
    assert all(p.requires_grad for p in result.model.parameters())


def test_discriminative_rates_fall_by_the_decay_factor_per_group():
    model = SentimentClassifier(
        ClassifierConfig(vocab_size=50, embed_dim=8, hidden_size=8, num_layers=2)
    )
    groups = discriminative_param_groups(model, lr=0.01, lr_decay=2.0, weight_decay=0.1)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["head.weight"])] == pytest.approx(0.01)
    assert lr_of[id(named["encoder.lstm.weight_ih_l1"])] == pytest.approx(0.005)
    assert lr_of[id(named["encoder.lstm.weight_hh_l1_reverse"])] == pytest.approx(0.005)
    assert lr_of[id(named["encoder.lstm.weight_ih_l0"])] == pytest.approx(0.0025)
    assert lr_of[id(named["encoder.embedding.weight"])] == pytest.approx(0.00125)
    assert len(lr_of) == len(named)  # every parameter in exactly one group
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(named["head.bias"]) in no_decay and id(named["head.weight"]) not in no_decay


def test_slanted_triangular_rises_fast_then_decays_slowly():
    f = slanted_triangular(total=100, cut_frac=0.1, ratio=32)
    assert f(0) == pytest.approx(1 / 32)
    assert f(10) == pytest.approx(1.0)
    assert f(5) < f(10) and f(50) < f(10) and f(90) < f(50)
    assert f(100) == pytest.approx(1 / 32)


def test_adapting_a_classifier_reports_old_and_new_test_accuracy(lm_dir, tmp_path):
    write_csv(tmp_path / "old.csv", rows(500, 4, FILL))
    write_csv(tmp_path / "new.csv", rows(240, 5, OTHER_FILL))
    base = tmp_path / "base"
    common = ["--epochs", "6", "--lr", "0.02", "--no-report", *FAST]
    assert (
        finetune_main(
            [
                "--base",
                str(lm_dir),
                "--data",
                str(tmp_path / "old.csv"),
                "--out",
                str(base),
                *common,
            ]
        )
        == 0
    )
    adapted = tmp_path / "adapted"
    assert (
        finetune_main(
            [
                "--base",
                str(base),
                "--data",
                str(tmp_path / "new.csv"),
                "--out",
                str(adapted),
                *common,
            ]
        )
        == 0
    )
    metrics = json.loads((adapted / "metrics.json").read_text(encoding="utf-8"))
    ft = metrics["finetune"]
    base_metrics = json.loads((base / "metrics.json").read_text(encoding="utf-8"))
    assert ft["base_kind"] == "classifier" and ft["head_replaced"] is False
    # The "before" figure is the base model on its own test split, as its metrics recorded it.
    assert ft["old_test_accuracy_before"] == pytest.approx(base_metrics["test"]["accuracy"])
    assert 0.0 <= ft["old_test_accuracy_after"] <= 1.0
    assert metrics["test"]["n"] > 0 and metrics["source"] == str(tmp_path / "new.csv")
    # About 190 training rows: the small-data schedule ran, and the artifact records it.
    small = ft["small_data"]
    assert small["weights"] == "last epoch" and small["epochs"] > 6
    assert metrics["train_config"]["batch_size"] == small["batch_size"] < 64
    assert ft["calibration"]["temperature"] > 0
    # The adapted model keeps the base's vocabulary and tokenizer, so it loads like any other.
    loaded = artifact.load(adapted)
    assert loaded.vocab.itos == artifact.load(base).vocab.itos


def test_a_classifier_from_a_language_model_is_the_same_for_the_same_seed(lm_dir):
    pre = lm_artifact.load(lm_dir)
    torch.manual_seed(1)
    a, _ = classifier_from_pretrained(pre, TrainConfig(seed=5))
    torch.manual_seed(2)  # whatever ran before must not matter
    b, _ = classifier_from_pretrained(pre, TrainConfig(seed=5))
    c, _ = classifier_from_pretrained(pre, TrainConfig(seed=6))
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_a_new_label_set_replaces_only_the_head(lm_dir):
    pre = lm_artifact.load(lm_dir)
    model, _ = classifier_from_pretrained(pre, TrainConfig())
    loaded = artifact.LoadedModel(
        model=model,
        config=model.cfg,
        tokenizer=None,  # type: ignore[arg-type]  # not used by adapt_classifier
        vocab=pre.vocab,
        max_len=64,
        version="v0",
        device=torch.device("cpu"),
        path=lm_dir,
    )
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    cfg = dataclasses.replace(TrainConfig(), labels=("anger", "joy", "sadness"))
    adapted, new_cfg, replaced = adapt_classifier(loaded, cfg)
    assert replaced and adapted.head.out_features == 3 and adapted.cfg.labels == cfg.labels
    assert all(torch.equal(adapted.encoder.state_dict()[k], v) for k, v in before.items())
    assert new_cfg.max_len == 64 and new_cfg.network.hidden_size == model.cfg.hidden_size
    ids = torch.tensor([encode_all(pre.vocab, [["很好", "手机"]], 8)[0]])
    assert adapted(ids, torch.tensor([2])).shape == (1, 3)


def test_learning_curve_runs_every_variant_on_the_same_rows(lm_dir, tmp_path):
    from training.experiments.curve import main as curve_main

    data = tmp_path / "labelled.csv"
    write_csv(data, rows(600, 5, FILL))
    out = tmp_path / "curve"
    args = ["--lm", str(lm_dir), "--source", str(data), "--sizes", "40,80", "--seeds", "1,2"]
    assert curve_main([*args, "--out", str(out), "--epochs", "2", "--threads", "1"]) == 0
    result = json.loads((out / "curve.json").read_text(encoding="utf-8"))
    runs = result["runs"]
    assert sorted({(r["size"], r["seed"], r["variant"]) for r in runs}) == sorted(
        (n, s, v) for n in (40, 80) for s in (1, 2) for v in ("scratch", "embeddings", "pretrained")
    )
    assert all(0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["roc_auc"] <= 1.0 for r in runs)
    summary = {(s["size"], s["variant"]): s for s in result["summary"]}
    assert all(s["runs"] == 2 for s in summary.values())
    acc = [r["accuracy"] for r in runs if r["size"] == 80 and r["variant"] == "pretrained"]
    assert summary[(80, "pretrained")]["accuracy_mean"] == pytest.approx(sum(acc) / 2)
    assert (out / "learning_curve.png").stat().st_size > 0
    assert "LM word vectors only" in (out / "curve.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        curve_main([*args, "--out", str(out), "--variants", "scratch,bogus"])


def test_a_small_set_trains_in_smaller_batches_for_more_steps_without_early_stopping():
    cfg = TrainConfig(batch_size=64, epochs=8, patience=3)
    # 13,936 review rows: 218 steps an epoch, left as they are.
    assert small_data_schedule(cfg, 13_936, 240) is cfg
    # 188 rows (235 posts less validation and test): 3 steps an epoch become 13 of 15 rows.
    small = small_data_schedule(cfg, 188, 240)
    assert (small.batch_size, small.epochs, small.patience) == (15, 19, 19)
    assert -(-188 // small.batch_size) * small.epochs >= 240
    # 40 rows: batches of 8 at least.
    tiny = small_data_schedule(cfg, 40, 240)
    assert tiny.batch_size == 8 and tiny.epochs == 48 and tiny.patience == tiny.epochs
    assert small_data_schedule(cfg, 188, 0) is cfg  # --min-steps 0 keeps the flags
