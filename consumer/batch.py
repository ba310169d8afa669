"""One micro-batch through the model: decode, segment, infer once, isolate the posts that fail.

In steps, so the service can overlap them: decoding, then segmentation (in this thread, or in
consumer.tokenizer_pool's worker processes), then one forward pass over the batch.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Message

from consumer import metrics
from consumer.records import DeadLetter, Post, decode, now_ms
from consumer.settings import Settings
from model.encoding import Encoded, encode_or_error
from model.predictor import Prediction, Predictor

log = logging.getLogger(__name__)


def decode_batch(batch: list[Message], s: Settings) -> tuple[list[Post], list[DeadLetter]]:
    """Decode a consumed batch: the posts, and dead letters for what is not a usable post."""
    consumed_at = now_ms()
    posts: list[Post] = []
    dead: list[DeadLetter] = []
    for msg in batch:
        item = decode(
            msg,
            input_format=s.input_format,
            text_field=s.text_field,
            max_bytes=s.max_message_bytes,
            consumed_at_ms=consumed_at,
        )
        if isinstance(item, DeadLetter):
            dead.append(item)
        else:
            posts.append(item)
    return posts, dead


def infer(
    predictor: Predictor, kept: list[tuple[Post, Encoded]], explain_top_k: int = 0
) -> tuple[list[tuple[Post, Prediction]], list[DeadLetter]]:
    """Run the model once over encoded posts: (post, prediction) pairs and inference_error
    dead letters."""
    labelled, dead = predict_encoded(predictor, kept)
    if explain_top_k and labelled:
        explain(predictor, [post for post, _ in labelled], explain_top_k)
    return labelled, dead


def explain(predictor: Predictor, posts: list[Post], top_k: int) -> None:
    """Attach each post's top tokens; off by default because it costs a backward pass.

    An explanation is an extra: if it fails the labels still go out, without `top_tokens`.
    """
    try:
        tops = predictor.explain([p.text for p in posts], top_k)
    except Exception as e:
        log.warning("explanations failed for a batch of %d: %s", len(posts), e)
        return
    for post, top in zip(posts, tops, strict=True):
        post.top_tokens = top


def label_batch(
    predictor: Predictor, posts: list[Post]
) -> tuple[list[tuple[Post, Prediction]], list[DeadLetter]]:
    """Label every post, or turn it into a dead letter (empty_text, inference_error)."""
    kept, dead = encode_posts(predictor, posts)
    labelled, more_dead = predict_encoded(predictor, kept)
    return labelled, dead + more_dead


def encode_posts(
    predictor: Predictor, posts: list[Post]
) -> tuple[list[tuple[Post, Encoded]], list[DeadLetter]]:
    """Segment and encode each post in this thread; see sort_encoded for what is kept."""
    t0 = time.perf_counter()
    lm = predictor.loaded
    encoded = [encode_or_error(lm.tokenizer, lm.vocab, lm.max_len, p.text) for p in posts]
    metrics.PREPROCESS.observe(time.perf_counter() - t0)
    return sort_encoded(posts, encoded)


def sort_encoded(
    posts: list[Post], encoded: list[Encoded | str]
) -> tuple[list[tuple[Post, Encoded]], list[DeadLetter]]:
    """Pair posts with their encodings; a post the tokenizer failed on (an error string) or
    with no tokens left after normalisation becomes a dead letter."""
    dead: list[DeadLetter] = []
    kept: list[tuple[Post, Encoded]] = []
    for post, enc in zip(posts, encoded, strict=True):
        if isinstance(enc, str):
            dead.append(_dead(post, "inference_error", enc))
        elif enc.n_tokens == 0:
            dead.append(_dead(post, "empty_text", "no tokens after normalisation"))
        else:
            kept.append((post, enc))
    return kept, dead


def predict_encoded(
    predictor: Predictor, kept: list[tuple[Post, Encoded]]
) -> tuple[list[tuple[Post, Prediction]], list[DeadLetter]]:
    """The whole batch goes through the model in one call. If that call fails, each post is
    tried on its own so that one poisonous post costs only itself, not its neighbours."""
    if not kept:
        return [], []
    dead: list[DeadLetter] = []
    t1 = time.perf_counter()
    try:
        preds = predictor.predict_encoded([enc for _, enc in kept])
        labelled = [(post, pred) for (post, _), pred in zip(kept, preds, strict=True)]
    except Exception as e:
        log.warning("inference failed on a batch of %d (%s); retrying post by post", len(kept), e)
        labelled = []
        for post, enc in kept:
            try:
                labelled.append((post, predictor.predict_encoded([enc])[0]))
            except Exception as e1:  # routed to the dead-letter topic with the error text
                dead.append(_dead(post, "inference_error", e1))
    metrics.INFERENCE.observe(time.perf_counter() - t1)
    return labelled, dead


def _dead(post: Post, reason: str, error: object) -> DeadLetter:
    src = post.source
    log.warning("dead letter %s at %s: %s", reason, src.coordinates, error)
    if isinstance(error, Exception):
        error = f"{type(error).__name__}: {error}"
    return DeadLetter(
        reason=reason,
        error=str(error),
        key=post.key,
        value=post.raw,
        headers=post.headers,
        source=src,
    )
