"""training.augment on real tokens: the shipped pipeline's tokens of social_train, the lexicon."""

from collections import Counter

import pytest

from model import lexicon_cues
from model.text import Tokenizer, TokenizerConfig, read_user_words
from training.__main__ import main as train_main
from training.augment import NEGATION, augment_copies
from training.data import read_file
from training.features import build_vocab
from training.train import TrainConfig

COPIES = 4


@pytest.fixture(scope="module")
def posts():
    rows = read_file("training/data/social_train.csv")
    tok = Tokenizer(TokenizerConfig(user_words=read_user_words("training/data/user_words.txt")))
    general = rows.texts[:60]  # stands in for the reviews: rows before the in-domain ones
    extra = rows.texts[60:]
    texts = general + extra * COPIES
    tokens = tok.tokenize_many(texts)
    vocab = build_vocab(TrainConfig(knowledge=True, oov_chars=True), tokens)
    return texts, tokens, vocab, len(general), len(extra)


def cues(tokens):
    return [lexicon_cues.cue(t) for t in tokens if lexicon_cues.cue(t)]


def test_later_copies_keep_their_cues_and_negations_and_first_copies_stay(posts):
    texts, tokens, vocab, first_extra, n = posts
    out = augment_copies(texts, tokens, first_extra, vocab, 0.3, seed=13)
    assert out[: first_extra + n] == tokens[: first_extra + n]
    changed = 0
    for i in range(first_extra + n, len(texts)):
        assert cues(out[i]) == cues(tokens[i])  # a swap keeps the cue, a drop takes none
        negations = [t for t in tokens[i] if lexicon_cues.cue(t) == NEGATION]
        assert [t for t in out[i] if lexicon_cues.cue(t) == NEGATION] == negations
        assert all(t in vocab for t in out[i] if lexicon_cues.cue(t))
        assert out[i]
        changed += out[i] != tokens[i]
    # At p = 0.3 nearly every copy of a 40-character post differs from its original.
    assert changed > 0.9 * (len(texts) - first_extra - n)
    # The copies of one row differ from each other too, not one variant repeated.
    row = first_extra + next(j for j in range(n) if len(tokens[first_extra + j]) > 15)
    assert len({tuple(out[row + k * n]) for k in range(1, COPIES)}) == COPIES - 1


def test_the_same_seed_gives_the_same_variants_and_zero_gives_none(posts):
    texts, tokens, vocab, first_extra, _ = posts
    a = augment_copies(texts, tokens, first_extra, vocab, 0.3, seed=13)
    assert a == augment_copies(texts, tokens, first_extra, vocab, 0.3, seed=13)
    assert a != augment_copies(texts, tokens, first_extra, vocab, 0.3, seed=14)
    assert augment_copies(texts, tokens, first_extra, vocab, 0.0, seed=13) is tokens


def test_swaps_draw_other_words_of_the_same_cue(posts):
    texts, tokens, vocab, first_extra, n = posts
    out = augment_copies(texts, tokens, first_extra, vocab, 1.0, seed=13)
    before = Counter(t for ts in tokens[first_extra + n :] for t in ts if lexicon_cues.cue(t))
    after = Counter(t for ts in out[first_extra + n :] for t in ts if lexicon_cues.cue(t))
    assert sum(before.values()) == sum(after.values())
    assert set(after) - set(before)  # words the originals did not hold were brought in
    # p = 1 drops each token without a cue with probability 1/2.
    plain = [[sum(not lexicon_cues.cue(x) for x in ts) for ts in rows] for rows in (tokens, out)]
    kept = sum(plain[1][first_extra + n :]) / sum(plain[0][first_extra + n :])
    assert 0.4 < kept < 0.6


def test_an_augment_outside_zero_to_one_stops_training_naming_it(capsys):
    rc = train_main(["--out", "/nonexistent", "--augment", "1.5"])
    assert rc == 2
    assert "augment must be in [0, 1]" in capsys.readouterr().err
