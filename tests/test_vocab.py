import pytest

from model.vocab import PAD_ID, UNK_ID, Vocab


def test_build_orders_by_frequency_and_cuts():
    v = Vocab.build([["好", "好", "差"], ["好", "差", "一般"], ["罕见"]], min_freq=2, max_size=10)
    assert v.itos == ["<pad>", "<unk>", "好", "差"]
    assert Vocab.build([["a", "b", "b"]], min_freq=1, max_size=3).itos == ["<pad>", "<unk>", "b"]


def test_encode_maps_unknown_and_truncates():
    v = Vocab.build([["我", "喜欢"]] * 2)
    assert v.encode(["我", "讨厌", "喜欢"], max_len=2) == [v.stoi["我"], UNK_ID]
    assert PAD_ID == 0


def test_round_trip(tmp_path):
    v = Vocab.build([["我", "不", "喜欢", "😭"]] * 3)
    v.save(tmp_path / "vocab.json")
    w = Vocab.load(tmp_path / "vocab.json")
    assert w.itos == v.itos and w.fingerprint() == v.fingerprint()


def test_rejects_malformed_vocab():
    with pytest.raises(ValueError, match="must start"):
        Vocab(["a", "b"])
