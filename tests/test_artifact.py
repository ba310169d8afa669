"""Save -> load -> same outputs; a corrupt or mismatched artifact is refused with a clear error."""

import json

import pytest
import torch

from model import artifact
from model.artifact import ArtifactError
from model.network import ClassifierConfig, SentimentClassifier
from model.predictor import Predictor
from model.text import Tokenizer, TokenizerConfig
from model.vocab import Vocab

TEXTS = ["这个手机很好用，推荐", "质量太差了，不推荐😡", "", "一般般吧 http://x.cn/a", "好" * 500]


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(1)
    tok = Tokenizer()
    vocab = Vocab.build([tok.tokenize(t) for t in TEXTS * 2], min_freq=1)
    model = SentimentClassifier(
        ClassifierConfig(vocab_size=len(vocab), embed_dim=16, hidden_size=8, pooling="attention")
    )
    version = artifact.save(tmp_path / "m", model, vocab, 64, TokenizerConfig())
    return tmp_path / "m", model, vocab, version


def test_save_load_gives_identical_probabilities(saved):
    path, model, _vocab, version = saved
    loaded = artifact.load(path, "cpu")
    assert loaded.version == version and version.startswith("v")
    pred = Predictor(loaded, batch_size=2)
    ids = [e.ids for e in pred.encode(TEXTS)]
    assert ids[2] == []  # empty after normalisation
    model.eval()
    direct = []
    with torch.no_grad():
        for s in ids:
            s = s or [1]
            direct.append(torch.softmax(model(torch.tensor([s]), torch.tensor([len(s)])), -1)[0])
    torch.testing.assert_close(pred.probabilities(pred.encode(TEXTS)), torch.stack(direct))
    # Input order is kept although batches are sorted by length.
    results = pred.predict(TEXTS)
    assert [r.n_tokens for r in results] == [len(Tokenizer().tokenize(t)) for t in TEXTS]


def test_corrupt_weights_are_refused(saved):
    path = saved[0]
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt"):
        artifact.load(path)


def test_vocabulary_mismatch_is_refused(saved):
    path = saved[0]
    tokens = json.loads((path / "vocab.json").read_text())
    tokens[5], tokens[6] = tokens[6], tokens[5]
    (path / "vocab.json").write_text(json.dumps(tokens, ensure_ascii=False))
    with pytest.raises(ArtifactError, match="vocabulary mismatch"):
        artifact.load(path)


def test_config_that_does_not_fit_the_weights_is_refused(saved):
    path = saved[0]
    cfg = json.loads((path / "config.json").read_text())
    cfg["classifier"]["hidden_size"] = 9
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtifactError, match="do not fit"):
        artifact.load(path)


def test_missing_and_garbage_files_are_refused(saved, tmp_path):
    path = saved[0]
    with pytest.raises(ArtifactError, match="not a directory"):
        artifact.load(tmp_path / "nope")
    (path / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        artifact.load(path)
    (path / "config.json").unlink()
    with pytest.raises(ArtifactError, match="missing config.json"):
        artifact.load(path)


def test_cuda_is_refused_clearly_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal only applies without it")
    with pytest.raises(ValueError, match="CUDA is not available"):
        artifact.resolve_device("cuda")
    assert artifact.resolve_device("auto").type == "cpu"


def test_a_derived_model_carries_its_sources_notice_with_the_change_stated(tmp_path):
    src, out, plain = tmp_path / "src", tmp_path / "out", tmp_path / "plain"
    for d in (src, out, plain):
        d.mkdir()
    (src / artifact.NOTICE).write_text("Contains weights from X, Apache License 2.0.\n")
    artifact.carry_notice(src, out, "fine-tuned by `make train`")
    notice = (out / artifact.NOTICE).read_text()
    assert notice.startswith("Contains weights from X, Apache License 2.0.")
    assert "Modified: fine-tuned by `make train`" in notice
    artifact.carry_notice(plain, out / "x", "anything")  # no NOTICE: nothing to carry
    assert not (out / "x").exists()
