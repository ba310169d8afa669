"""Social-style variants of the in-domain rows' repeated copies (`TrainConfig.augment`).

`--extra-weight 10` repeats each in-domain post ten times, and ten identical copies teach the
network those posts' exact words. With `augment` P > 0 the first copy of each row stays as
written and every later copy is a variant:

- each sentiment word, degree word, emoji and emoticon is swapped, with probability P, for another
  of the same lexicon cue (training.knowledge's lexicon) drawn from the vocabulary, the frequent
  words of that cue more often;
- each token without a cue is dropped with probability P / 2.

Negations are never touched and a swap keeps the cue, so a variant says what its row said with
other words: what the copies teach is the cues and the shape of the post, not its vocabulary.
This runs on tokens after the vocabulary is built, so the vocabulary and the word vectors are the
unaugmented data's, and a seed fixes every variant.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from model import lexicon_cues
from model.text import PLACEHOLDERS
from model.vocab import Vocab

NEGATION = lexicon_cues.CUES.index("negation")
# Words a swap may bring in for each cue: the most frequent of the training data's.
POOL_SIZE = 300


def swap_pools(vocab: Vocab, counts: Counter[str]) -> dict[int, tuple[list[str], list[int]]]:
    """For each cue but negation: vocabulary tokens with it, and their weights (train count + 1,
    so that a polar emoji the data never showed can still be drawn)."""
    by_cue: dict[int, list[str]] = defaultdict(list)
    for token in vocab.itos:
        c = lexicon_cues.cue(token)
        if c and c != NEGATION:
            by_cue[c].append(token)
    pools = {}
    for c, tokens in by_cue.items():
        tokens.sort(key=lambda t: (-counts[t], t))
        kept = tokens[:POOL_SIZE]
        pools[c] = (kept, [counts[t] + 1 for t in kept])
    return pools


def variant(
    tokens: list[str],
    p: float,
    pools: dict[int, tuple[list[str], list[int]]],
    rng: random.Random,
) -> list[str]:
    out = []
    for token in tokens:
        c = lexicon_cues.cue(token)
        if c == NEGATION or token in PLACEHOLDERS:
            out.append(token)
        elif c:
            pool = pools.get(c)
            if pool and rng.random() < p:
                out.append(rng.choices(pool[0], pool[1])[0])
            else:
                out.append(token)
        elif rng.random() >= p / 2:
            out.append(token)
    return out or tokens  # a post is never emptied


def augment_copies(
    texts: list[str],
    token_lists: list[list[str]],
    first_extra: int,
    vocab: Vocab,
    p: float,
    seed: int,
) -> list[list[str]]:
    """`token_lists` with every repeated row from `first_extra` on (a later copy of an in-domain
    row) replaced by a variant; the rows before `first_extra` and each first copy are kept."""
    if p <= 0:
        return token_lists
    counts = Counter(t for tokens in token_lists for t in tokens)
    pools = swap_pools(vocab, counts)
    rng = random.Random(seed)
    seen: set[str] = set()
    out = list(token_lists)
    for i in range(first_extra, len(texts)):
        if texts[i] in seen:
            out[i] = variant(token_lists[i], p, pools, rng)
        seen.add(texts[i])
    return out
