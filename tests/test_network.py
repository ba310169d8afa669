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


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_peepholes_and_a_hidden_head_ignore_padding_and_train(pooling, bidirectional):
    torch.manual_seed(0)
    cfg = ClassifierConfig(vocab_size=50, embed_dim=8, hidden_size=6, bidirectional=bidirectional,
                           pooling=pooling, peepholes=True, head_hidden=5)  # fmt: skip
    m = SentimentClassifier(cfg).eval()
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 4, 3, 2, 1]])
    out = m(padded, torch.tensor([3, 6]))
    assert out.shape == (2, 2)
    torch.testing.assert_close(out[0], m(torch.tensor([[5, 6, 7]]), torch.tensor([3]))[0])
    out.sum().backward()
    peep = m.encoder.lstm.peephole_l0
    assert peep.grad is not None and peep.grad.abs().sum() > 0


def test_end_pooling_is_the_last_token_of_each_direction():
    torch.manual_seed(0)
    m = SentimentClassifier(ClassifierConfig(vocab_size=20, embed_dim=4, hidden_size=3,
                                             pooling="end", dropout=0.0)).eval()  # fmt: skip
    ids, lengths = torch.tensor([[5, 6, 7, 0], [8, 9, 4, 3]]), torch.tensor([3, 4])
    out, last = m.encoder(ids, lengths)  # (B, T, 6), (B, 6)
    end = m.pool(out, last, ids != 0)
    torch.testing.assert_close(end[0], out[0, 2])
    torch.testing.assert_close(end[1], out[1, 3])
    torch.testing.assert_close(end[:, :3], last[:, :3])  # forward: its final state
    assert not torch.allclose(end[:, 3:], last[:, 3:])  # backward: after the last token only


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="pooling"):
        ClassifierConfig(vocab_size=10, pooling="sum")
    with pytest.raises(ValueError, match="labels"):
        ClassifierConfig(vocab_size=10, labels=("x",))
    with pytest.raises(ValueError, match="num_layers=1"):
        ClassifierConfig(vocab_size=10, peepholes=True, num_layers=2)
    with pytest.raises(ValueError, match="head_hidden"):
        ClassifierConfig(vocab_size=10, head_hidden=-1)


def test_zero_length_is_rejected():
    m = SentimentClassifier(ClassifierConfig(vocab_size=10))
    with pytest.raises(ValueError, match="at least one token"):
        m(torch.zeros((1, 3), dtype=torch.long), torch.tensor([0]))
