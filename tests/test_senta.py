"""Baidu's Senta 1.0.3 converted (training.senta): the NumPy reproduction and the artifact both
give Senta's published outputs, and the artifact reads text exactly as Senta does.

The wheel comes from PyPI (pip download, once per cache directory); its hash is pinned.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import artifact
from model.predictor import Predictor
from training import senta

ROOT = Path(__file__).resolve().parent.parent
WHEEL = ROOT / "build" / "senta" / senta.WHEEL


@pytest.fixture(scope="session")
def wheel() -> Path:
    if not WHEEL.is_file():
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        subprocess.run([*pip, f"Senta=={senta.VERSION}", "-d", str(WHEEL.parent)], check=True)
    assert hashlib.sha256(WHEEL.read_bytes()).hexdigest() == senta.WHEEL_SHA256
    return WHEEL


@pytest.fixture(scope="session")
def paddle(wheel: Path) -> senta.Senta:
    return senta.read_wheel(wheel)


@pytest.fixture(scope="session")
def converted(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    """The artifact with Senta's peepholes (True) and without (False)."""
    out = {}
    for peepholes in (True, False):
        path = tmp_path_factory.mktemp("senta") / f"peepholes-{peepholes}"
        argv = ["--wheel", str(wheel), "--out", str(path), "--peepholes", str(peepholes)]
        assert senta.main(argv) == 0
        out[peepholes] = path
    return out


def test_numpy_forward_gives_sentas_published_outputs(paddle):
    assert paddle.params["embedding_0.w_0"].shape == (10705, 128)
    assert paddle.unk_id == 10701
    for text, p_positive in senta.REFERENCE.items():
        assert senta.numpy_forward(paddle.params, paddle.ids(text)) == pytest.approx(
            p_positive, abs=1e-4
        )


def test_the_artifact_on_the_torch_runtime_gives_sentas_published_outputs(converted):
    loaded = artifact.load(converted[True])
    assert loaded.config.peepholes and loaded.config.pooling == "end"
    predictions = Predictor(loaded, runtime="torch").predict(list(senta.REFERENCE))
    for pred, p_positive in zip(predictions, senta.REFERENCE.values(), strict=True):
        assert pred.score == pytest.approx(p_positive, abs=1e-4)
        assert pred.label == "positive"
    assert "Apache License" in (converted[True] / "NOTICE").read_text(encoding="utf-8")
    assert "Baidu" in (converted[True] / "README.md").read_text(encoding="utf-8")


def _batch(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    return ids, torch.tensor([len(s) for s in seqs])


@pytest.mark.parametrize("peepholes", [True, False])
def test_the_pytorch_network_is_the_numpy_one_in_a_padded_batch(paddle, peepholes):
    model, vocab = senta.convert(paddle, peepholes)
    _, rows = senta.vocabulary(paddle)
    rng = np.random.default_rng(0)
    # ids of ours (1 is <unk>), lengths from 1 to 40 in one batch, so that padding is crossed
    seqs = [rng.integers(1, len(vocab), size=n).tolist() for n in (1, 7, 40, 3, 22)]
    with torch.inference_mode():
        probs = torch.softmax(model(*_batch(seqs)), dim=-1)[:, 1].tolist()
    for seq, p in zip(seqs, probs, strict=True):
        expected = senta.numpy_forward(paddle.params, [rows[i] for i in seq], peepholes)
        assert p == pytest.approx(expected, abs=1e-5)


def test_the_conversion_without_peepholes_loads_runs_and_differs(converted):
    with_peep, without = (
        Predictor(artifact.load(converted[p]), runtime="torch") for p in (True, False)
    )
    assert not without.loaded.config.peepholes
    a, b = (
        np.array([x.score for x in p.predict(list(senta.REFERENCE))]) for p in (with_peep, without)
    )
    assert np.all((b > 0) & (b < 1)) and not np.allclose(a, b, atol=1e-4)


def test_the_artifact_round_trips(paddle, converted, tmp_path):
    model, vocab = senta.convert(paddle)
    loaded = artifact.load(converted[True])
    assert loaded.vocab.itos == vocab.itos
    again = tmp_path / "again"
    version = artifact.save(again, loaded.model, loaded.vocab, loaded.max_len,
                            loaded.tokenizer.config)  # fmt: skip
    reloaded = artifact.load(again)
    assert version == loaded.version  # the same weights, byte for byte
    ids, lengths = _batch([[5, 6, 7], [8, 9, 10, 11, 12]])
    with torch.inference_mode():
        expected = model(ids, lengths)
        torch.testing.assert_close(loaded.model(ids, lengths), expected, rtol=0, atol=0)
        torch.testing.assert_close(reloaded.model(ids, lengths), expected, rtol=0, atol=0)


def test_the_artifact_reads_text_as_senta_does(paddle, converted):
    """Whitespace dropped, characters as written (full-width, Traditional, capitals, emoji),
    unknown characters as Senta's unknown row, the first 256 characters."""
    loaded = artifact.load(converted[True])
    _, rows = senta.vocabulary(paddle)
    texts = [
        "  百度 是\u3000一家\t高科技公司\n",
        "好！！好!! ＡＢC 國家 😂[哈哈] http://t.cn/x @某人 #话题#",
        "𠀀" * 3 + "很好" * 200,
        "<url>",
        "<url> 〇",
    ]
    for text in texts:
        ids = loaded.vocab.encode(loaded.tokenizer.tokenize(text), loaded.max_len)
        assert [rows[i] for i in ids] == paddle.ids(text)
    assert rows[1] == paddle.unk_id and paddle.ids("𠀀") == [paddle.unk_id]
