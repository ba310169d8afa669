"""A text as the model sees it: ids, kept tokens, token count, OOV count. Imports no torch, so
the service's segmentation workers (consumer.segment_worker) build exactly what the predictor
would."""

from __future__ import annotations

from dataclasses import dataclass

from model.text import Tokenizer
from model.vocab import Vocab


@dataclass(frozen=True, slots=True)
class Encoded:
    """One text after the shared text pipeline; what the model and the drift monitor see."""

    ids: list[int]
    tokens: list[str]  # the tokens behind `ids` (kept after truncation), for explanations
    n_tokens: int  # before truncation; 0 means the text was empty after normalisation
    n_oov: int  # tokens out of the vocabulary among those kept (spelled out, or <unk>)


def encode(tokenizer: Tokenizer, vocab: Vocab, max_len: int, text: str) -> Encoded:
    tokens = tokenizer.tokenize(text)
    ids, kept, n_oov = vocab.lookup(tokens, max_len)
    return Encoded(ids=ids, tokens=kept, n_tokens=len(tokens), n_oov=n_oov)


def encode_or_error(tokenizer: Tokenizer, vocab: Vocab, max_len: int, text: str) -> Encoded | str:
    """`encode`, or the error's text: a tokenizer bug must cost only the post that hit it."""
    try:
        return encode(tokenizer, vocab, max_len, text)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
