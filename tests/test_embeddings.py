"""PPMI-SVD word vectors: words that share contexts end up close, and the special rows are sane."""

import numpy as np

from model.vocab import PAD_ID, Vocab
from training.embeddings import cooccurrence, ppmi_svd_vectors


def corpus() -> list[list[str]]:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(400):
        good = rng.choice(["好", "棒", "赞"])
        bad = rng.choice(["差", "烂", "糟"])
        rows.append(["质量", "真", str(good), "推荐", "购买"])
        rows.append(["服务", "太", str(bad), "退货", "投诉"])
    return rows


def test_cooccurrence_is_symmetric_and_distance_weighted():
    v = Vocab.build([["a", "b", "c"]], min_freq=1)
    m = cooccurrence([["a", "b", "c"]], v, window=2).toarray()
    a, b, c = v.stoi["a"], v.stoi["b"], v.stoi["c"]
    assert np.allclose(m, m.T)
    assert m[a, b] == 1.0
    assert m[a, c] == 0.5


def test_words_with_shared_contexts_are_neighbours():
    rows = corpus()
    v = Vocab.build(rows, min_freq=1)
    vec = ppmi_svd_vectors(rows, v, dim=4)
    assert vec.shape == (len(v), 4)
    assert not vec[PAD_ID].any()
    n = vec / (np.linalg.norm(vec, axis=1, keepdims=True) + 1e-9)

    def sim(x: str, y: str) -> float:
        return float(n[v.stoi[x]] @ n[v.stoi[y]])

    assert sim("好", "棒") > sim("好", "差")
    assert sim("烂", "糟") > sim("烂", "赞")
