"""Language-model pretraining on tiny repetitive text: it learns, saves, and its encoder loads."""

import json
import random

import pytest
import torch

from model.artifact import ArtifactError
from model.network import SentimentClassifier
from training import lm as lm_artifact
from training.pretrain import main as pretrain_main
from training.pretrain import read_text_file, unigram_perplexity, windows

SUBJECTS = ["我们", "你们", "他们", "老师", "朋友"]
VERBS = ["喜欢", "讨厌", "购买", "推荐"]
OBJECTS = ["苹果", "手机", "电脑", "书", "衣服"]


def sentences(n: int, seed: int) -> list[str]:
    # Fixed word order: after 很 comes a verb, after 吃/买 an object; a unigram model cannot know.
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)}很{rng.choice(VERBS)}买{rng.choice(OBJECTS)}，今天天气很好。"
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    corpus = d / "posts.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for text in sentences(500, seed=1):
            f.write(json.dumps({"id": 1, "text": text}, ensure_ascii=False) + "\n")
        f.write("not json\n")
        f.write(json.dumps({"text": ""}) + "\n")
    out = d / "lm"
    rc = pretrain_main(
        [
            "--corpus",
            str(corpus),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--no-progress",
            "--embed-dim",
            "16",
            "--hidden-size",
            "16",
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--lr",
            "0.01",
            "--min-freq",
            "1",
        ]
    )
    assert rc == 0
    return out, corpus


def test_perplexity_falls_below_the_unigram_baseline(tiny_lm):
    out, _ = tiny_lm
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    history = cfg["history"]
    assert len(history) == 3
    assert cfg["heldout_perplexity"] == history[-1]["heldout_perplexity"]
    # Learning shows: later epochs predict held-out text better, and beat word frequencies.
    assert history[-1]["heldout_perplexity"] < history[0]["heldout_perplexity"]
    assert cfg["heldout_perplexity"] < 0.7 * cfg["unigram_perplexity"]
    assert cfg["corpora"][next(iter(cfg["corpora"]))]["heldout_lines"] > 0


def test_encoder_weights_load_into_the_classifier_unchanged(tiny_lm):
    out, _ = tiny_lm
    pre = lm_artifact.load(out)
    model = SentimentClassifier(pre.classifier_config(pooling="attention"))
    model.encoder.load_state_dict(pre.encoder_state, strict=True)
    for name, tensor in pre.encoder_state.items():
        assert torch.equal(model.encoder.state_dict()[name], tensor)
    assert len(pre.vocab) == pre.encoder_sizes["vocab_size"]
    assert "喜欢" in pre.vocab
    with pytest.raises(ValueError, match="fixed by the pretrained encoder"):
        pre.classifier_config(hidden_size=8)


def test_a_mismatched_vocabulary_is_refused(tiny_lm, tmp_path):
    out, _ = tiny_lm
    broken = tmp_path / "lm"
    broken.mkdir()
    for name in ("config.json", "lm.safetensors"):
        (broken / name).write_bytes((out / name).read_bytes())
    tokens = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    (broken / "vocab.json").write_text(json.dumps(tokens[:-1], ensure_ascii=False))
    with pytest.raises(ArtifactError, match="does not match"):
        lm_artifact.load(broken)


def test_jsonl_corpus_skips_lines_without_text(tiny_lm):
    _, corpus = tiny_lm
    lines = read_text_file(corpus)
    assert len(lines) == 500
    assert all("天气" in t for t in lines)


def test_windows_and_unigram_baseline_by_hand():
    assert windows([["a", "b", "c", "d", "e"], ["x"]], 2) == [["a", "b"], ["c", "d"]]
    # classes {0,1,2}: train targets of [2,2] are 2 (forward) and 2 (backward): counts 0,0,2.
    # add-one: p(2) = 3/5, so held-out [2,2] (two predictions of 2) has perplexity 5/3.
    assert unigram_perplexity([[2, 2]], [[2, 2]], k=3) == pytest.approx(5 / 3)


def test_the_lm_embedding_starts_from_the_given_vectors():
    """With PPMI init (the default) the LM's embedding starts from the corpus's vectors; the
    rest of the network, and "none", start from the seed's random draw."""
    import numpy as np

    from model.text import Tokenizer
    from model.vocab import Vocab
    from training.embeddings import ppmi_svd_vectors
    from training.pretrain import PretrainConfig, pretrain

    tok = Tokenizer()
    tokens = [tok.tokenize(t) for t in sentences(200, seed=2)]
    vocab = Vocab.build(tokens, min_freq=1)
    ids = [vocab.encode(t, 32) for t in tokens]
    vecs = ppmi_svd_vectors(tokens, vocab, dim=8)
    # lr 0: the weights after training are the weights it started from.
    cfg = PretrainConfig(embed_dim=8, hidden_size=8, epochs=1, batch_size=64, lr=0.0, max_len=32)
    lm, _ = pretrain(cfg, ids, ids[:10], vocab, torch.device("cpu"), False, embeddings=vecs)
    assert np.allclose(lm.encoder.embedding.weight.detach().numpy(), vecs)
    plain, _ = pretrain(cfg, ids, ids[:10], vocab, torch.device("cpu"), False)
    assert not np.allclose(plain.encoder.embedding.weight.detach().numpy(), vecs)
    with pytest.raises(ValueError, match="init_embeddings"):
        PretrainConfig(init_embeddings="glove")
