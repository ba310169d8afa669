import pytest
import torch

from model.network import POOLINGS, ClassifierConfig, SentimentClassifier


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_shapes_and_padding_do_not_leak(pooling, bidirectional):
    torch.manual_seed(0)
    cfg = ClassifierConfig(
        vocab_size=50,
        embed_dim=8,
        hidden_size=6,
        num_layers=2,
        bidirectional=bidirectional,
        pooling=pooling,
        labels=("a", "b", "c"),
    )
    m = SentimentClassifier(cfg).eval()
    seq = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 0, 0, 0, 0]])
    out = m(padded, torch.tensor([3, 2]))
    assert out.shape == (2, 3)
    # Packing means padding positions change nothing: the same row alone gives the same logits.
    torch.testing.assert_close(out[0], m(seq, torch.tensor([3]))[0])


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="pooling"):
        ClassifierConfig(vocab_size=10, pooling="sum")
    with pytest.raises(ValueError, match="labels"):
        ClassifierConfig(vocab_size=10, labels=("x",))


def test_zero_length_is_rejected():
    m = SentimentClassifier(ClassifierConfig(vocab_size=10))
    with pytest.raises(ValueError, match="at least one token"):
        m(torch.zeros((1, 3), dtype=torch.long), torch.tensor([0]))
